"use strict";
// Curator page: one queued item at a time. Keys c / o / u / x label it and load the next, s skips, z undoes my
// last label, f / g open the full-size visible / UV image, ? shows every key. Skips, undo and the progress
// counter live in this tab's sessionStorage (a session is a tab).
const KEYS = { c: "crystal", o: "other", u: "uncertain", x: "unusable" };
// Why an item is in the queue (axis_core.routing): disagreements, and agreements that are likely wrong.
const REASONS = {
  disagreement: "model and user disagree",
  near_threshold: "agreement, model near its threshold",
  modes_disagree: "agreement, visible and UV disagree",
  unreliable_user: "agreement, user often overturned",
};
const KINDS = { ml_crystal_human_other: "ML crystal, user other", ml_other_human_crystal: "ML other, user crystal", agreement: "agreement" };
let current = null;
let busy = false;

const session = {
  get(key, fallback) { try { return JSON.parse(sessionStorage.getItem("axis-curate-" + key)) ?? fallback; } catch (e) { return fallback; } },
  set(key, value) { sessionStorage.setItem("axis-curate-" + key, JSON.stringify(value)); },
};

function setText(id, text) { document.getElementById(id).textContent = text; }
function byId(id) { return document.getElementById(id); }

function filterQuery() {
  const q = new URLSearchParams({ limit: "1" });
  const plate = byId("f-plate").value, kind = byId("f-kind").value, sort = byId("f-sort").value;
  const min = byId("f-min").value, max = byId("f-max").value;
  if (plate) q.set("plate", plate);
  if (kind) q.set("kind", kind);
  if (min !== "") q.set("min_p", String(Number(min) / 100));
  if (max !== "") q.set("max_p", String(Number(max) / 100));
  if (byId("f-others").checked) q.set("others", "true");
  if (sort !== "priority") q.set("sort", sort);
  for (const id of session.get("skipped", [])) q.append("skip", String(id));
  return q;
}

function filtersActive() {
  return ["f-plate", "f-kind", "f-min", "f-max"].some((id) => byId(id).value !== "") || byId("f-others").checked;
}

function renderProgress() {
  setText("session-done", String(session.get("done", 0)));
  setText("session-skipped", String(session.get("skipped", []).length));
  byId("undo").disabled = busy || !session.get("undo", []).length;
}

function fillPlates(plates) {
  const select = byId("f-plate");
  const chosen = select.value;
  select.replaceChildren(el("option", { value: "", text: "all" }), ...plates.map((p) => el("option", { value: p, text: p })));
  if (chosen && !plates.includes(chosen)) select.append(el("option", { value: chosen, text: chosen }));
  select.value = chosen;
}

async function loadNext() {
  const page = await api("/v1/queue?" + filterQuery().toString());
  const item = page.items.length ? await api("/v1/items/" + page.items[0].id) : null;
  // the count changes together with the item shown, never before it
  setText("queue-count", String(page.count));
  setText("matching", filtersActive() || session.get("skipped", []).length ? page.matching + " match the filters and are not skipped" : "");
  setText("rule", "an item is decided by " + page.consensus_min + " agreeing curator" + (page.consensus_min > 1 ? "s" : ""));
  fillPlates(page.plates);
  current = item;
  if (item) show(item); else showEmpty(page);
  renderProgress();
}

function showEmpty(page) {
  byId("work").hidden = true;
  byId("empty").hidden = false;
  document.body.dataset.queue = "empty";
  const skipped = session.get("skipped", []).length;
  const done = session.get("done", 0);
  let title = "Nothing left to curate. Thank you!";
  let text = "You labelled " + done + " item" + (done === 1 ? "" : "s") + " in this session.";
  if (page.count > 0 && filtersActive()) { title = "No item matches the filters"; text = page.count + " other items are open for you. " + text; }
  else if (page.count > 0 && skipped) { title = "Only skipped items are left"; text = "You skipped " + skipped + "; " + text; }
  setText("empty-title", title);
  setText("empty-text", text + " New disagreements arrive as plates are imaged and scored.");
  byId("empty-unskip").hidden = !skipped;
  byId("empty-clear").hidden = !filtersActive();
  byId("empty-undo").hidden = !session.get("undo", []).length;
}

function setBusy(value) {
  busy = value;
  document.body.dataset.state = value ? "busy" : "ready";
  document.querySelectorAll(".labels button, #skip").forEach((b) => (b.disabled = value));
  renderProgress();
}

function probRow(name, p, threshold, label, model) {
  const cls = label === "crystal" ? "is-crystal" : "is-other";
  return el("div", { class: "prob-row " + cls, "data-mode": name },
    el("span", { class: "prob-mode", text: name }),
    el("span", { class: "prob-value", text: pct(p) }),
    el("span", { class: "prob-label", text: label + (threshold !== null && threshold !== undefined ? " at " + pct(threshold) : "") }),
    el("span", { class: "prob-model muted", text: model || "" }));
}

function show(item) {
  byId("empty").hidden = true;
  byId("work").hidden = false;
  document.body.dataset.queue = "item";
  setText("item-id", "#" + item.id);
  setText("kind", KINDS[item.kind] || item.kind.replaceAll("_", " "));
  setText("reason", REASONS[item.reason] || item.reason);
  setText("priority", pct(item.priority) + " chance the model is overturned");
  const probs = byId("ml-probs");
  probs.replaceChildren(probRow("fused", item.ml_probability, item.threshold, item.ml_label, ""));
  for (const m of item.mode_scores) probs.append(probRow(modeName(m.mode), m.probability, m.threshold, m.label, m.model_name + " v" + m.model_version));
  setText("model", item.model_name + " v" + item.model_version);
  const us = byId("user-score");
  us.replaceChildren(el("span", { class: "swatch" }), classTitle(item.human_class) + " (" + item.human_label + ") by " + item.user_id);
  us.firstChild.style.background = item.human_colour;
  setText("drop", item.plate_barcode + " " + item.well + " drop " + item.drop);
  byId("well-link").href = "/plates/" + encodeURIComponent(item.plate_barcode) + "?well=" + encodeURIComponent(item.well) + "&item=" + item.id;
  setText("inspection", item.inspection_id);
  const others = byId("others");
  others.replaceChildren();
  const theirs = item.labels.filter((l) => l.curator !== window.me.username);
  if (!theirs.length) others.append(el("span", { class: "muted", text: "none yet" }));
  for (const l of theirs) others.append(el("div", { class: "other-label" }, el("b", { class: "lab-" + l.label, text: l.label }), " by " + l.curator + " · ", timeEl("span", l.created_at), l.comment ? " · “" + l.comment + "”" : ""));
  const pair = byId("images");
  pair.replaceChildren();
  const images = item.images.slice().sort(byMode);
  if (!images.length) pair.append(el("div", { class: "empty", text: "no images recorded for this inspection" }));
  for (const img of images) {
    const title = modeName(img.imaging_mode) + " · " + item.well + " · " + when(img.imaged_at);
    const pic = el("img", { src: imageUrl(img.image_uri, 1200), alt: img.imaging_mode + " image of " + item.well, "data-mode": img.imaging_mode, class: "zoomable", title: "click: full size (original)" });
    pic.addEventListener("click", () => openViewer(img.image_uri, title));
    const caption = el("figcaption", {}, modeName(img.imaging_mode) + " · ", timeEl("span", img.imaged_at), " · ",
      el("button", { type: "button", class: "link", text: "full size (" + (img.imaging_mode === "uv" ? "g" : "f") + ")", onclick: () => openViewer(img.image_uri, title) }));
    pair.append(el("figure", {}, pic, caption));
    addPatchOverlay(pic, img.image_uri, img.imaging_mode, caption);  // m toggles it
  }
  renderHistory(item);
  byId("comment").value = "";
}

function renderHistory(item) {
  const strip = byId("history");
  strip.replaceChildren();
  setText("history-note", item.history.length + " inspection" + (item.history.length === 1 ? "" : "s") + ", oldest first");
  for (const h of item.history) {
    const first = h.images.slice().sort(byMode)[0];
    const fig = el("figure", { class: h.current ? "current" : "", "data-inspection": h.inspection_id });
    if (first) {
      const pic = el("img", { src: imageUrl(first.image_uri, 200), alt: "inspection " + h.inspection_id, class: "zoomable" });
      pic.addEventListener("click", () => openViewer(first.image_uri, modeName(first.imaging_mode) + " · " + item.well + " · " + when(h.imaged_at)));
      fig.append(pic);
    }
    const cls = h.label === "crystal" ? "is-crystal" : "is-other";
    fig.append(el("figcaption", {}, timeEl("span", h.imaged_at), el("br"),
      el("span", { class: cls, text: h.fused_probability === null ? "not scored" : pct(h.fused_probability) + " " + (h.label || "") }),
      h.current ? el("b", { text: " · this item" }) : null));
    strip.append(fig);
  }
}

async function label(value) {
  if (!current || busy) return;
  setBusy(true);
  try {
    const comment = byId("comment").value;
    const res = await api("/v1/items/" + current.id + "/labels", { method: "POST", body: { label: value, comment } });
    session.set("done", session.get("done", 0) + 1);
    session.set("undo", session.get("undo", []).concat([current.id]).slice(-50));
    await loadNext();
    setText("flash", "labelled #" + res.item.id + " " + value + " → item is " + res.item.status + " (z undoes)");
  } catch (e) {
    setText("flash", "could not save: " + e.message);
  } finally {
    setBusy(false);
  }
}

async function skip() {
  if (!current || busy) return;
  setBusy(true);
  try {
    const id = current.id;
    session.set("skipped", session.get("skipped", []).concat([id]).slice(-400));
    await loadNext();
    setText("flash", "skipped #" + id);
  } catch (e) { setText("flash", e.message); } finally { setBusy(false); }
}

async function undo() {
  const stack = session.get("undo", []);
  if (!stack.length || busy) return;
  setBusy(true);
  const id = stack[stack.length - 1];
  try {
    const res = await api("/v1/items/" + id + "/labels/mine", { method: "DELETE" });
    session.set("undo", stack.slice(0, -1));
    session.set("done", Math.max(0, session.get("done", 0) - 1));
    current = await api("/v1/items/" + id);
    show(current);
    setText("queue-count", String(res.remaining));
    setText("flash", "took back my label " + res.label + " of #" + id + " → item is " + res.item.status + "; label it again");
  } catch (e) {
    session.set("undo", stack.slice(0, -1));
    setText("flash", "could not undo: " + e.message);
  } finally { setBusy(false); }
}

function toggleHelp(show) { byId("help").hidden = show === undefined ? !byId("help").hidden : !show; }

function openMode(mode) {
  if (!current) return;
  const img = current.images.find((i) => i.imaging_mode === mode);
  if (img) openViewer(img.image_uri, modeName(mode) + " · " + current.well + " · " + when(img.imaged_at));
}

document.addEventListener("keydown", (ev) => {
  const t = ev.target;
  const typing = t && (t.tagName === "TEXTAREA" || t.tagName === "SELECT" || (t.tagName === "INPUT" && !["range", "checkbox"].includes(t.type)));
  if (typing) {
    if (ev.key === "Escape") t.blur();
    return;
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (viewerKey(ev)) return;
  if (!byId("help").hidden) { if (ev.key === "Escape" || ev.key === "?") { ev.preventDefault(); toggleHelp(false); } return; }
  const key = ev.key.length === 1 ? ev.key.toLowerCase() : ev.key;
  const value = KEYS[key];
  if (value) { ev.preventDefault(); label(value); }
  else if (key === "s") { ev.preventDefault(); skip(); }
  else if (key === "z") { ev.preventDefault(); undo(); }
  else if (key === "f") { ev.preventDefault(); openMode("visible"); }
  else if (key === "g") { ev.preventDefault(); openMode("uv"); }
  else if (key === "p" && current) { location.href = byId("well-link").href; }
  else if (ev.key === "?") { ev.preventDefault(); toggleHelp(true); }
});
document.querySelectorAll(".labels button").forEach((b) => b.addEventListener("click", () => label(b.dataset.label)));
byId("skip").addEventListener("click", skip);
byId("undo").addEventListener("click", undo);
byId("empty-undo").addEventListener("click", undo);
byId("help-button").addEventListener("click", () => toggleHelp(true));
byId("help-close").addEventListener("click", () => toggleHelp(false));
byId("empty-reload").addEventListener("click", () => loadNext());
byId("empty-unskip").addEventListener("click", () => { session.set("skipped", []); loadNext(); });
const clearFilters = () => { byId("filters").reset(); loadNext(); };
byId("f-clear").addEventListener("click", clearFilters);
byId("empty-clear").addEventListener("click", clearFilters);
byId("filters").addEventListener("change", () => loadNext().catch((e) => setText("flash", e.message)));
byId("filters").addEventListener("submit", (ev) => { ev.preventDefault(); loadNext(); });

async function start() {
  await loadNext();
  // /curate?item=N (from a well of the plate map): that item first, when it is still open for me
  const wanted = new URLSearchParams(location.search).get("item");
  if (wanted && (!current || String(current.id) !== wanted)) {
    try {
      const item = await api("/v1/items/" + encodeURIComponent(wanted));
      if (item.status === "open" && !item.my_label) { current = item; show(item); }
      else setText("flash", "item #" + wanted + " is " + item.status + (item.my_label ? ", you labelled it " + item.my_label : ""));
    } catch (e) { setText("flash", "item #" + wanted + ": " + e.message); }
  }
}

renderHeader("curate").then((me) => { window.me = me; return start(); }).then(() => setBusy(false)).catch((e) => setText("flash", e.message));
