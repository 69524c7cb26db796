"use strict";
// Curator page: one queued disagreement at a time; keys c / o / u / x label it and load the next.
const KEYS = { c: "crystal", o: "other", u: "uncertain", x: "unusable" };
// Why an item is in the queue (axis_core.routing): disagreements, and agreements that are likely wrong.
const REASONS = {
  disagreement: "model and user disagree",
  near_threshold: "agreement, model near its threshold",
  modes_disagree: "agreement, visible and UV disagree",
  unreliable_user: "agreement, user often overturned",
};
let current = null;
let busy = false;

function setText(id, text) { document.getElementById(id).textContent = text; }

async function loadNext() {
  const page = await api("/v1/queue?limit=1");
  const item = page.items.length ? await api("/v1/items/" + page.items[0].id) : null;
  setText("queue-count", String(page.count));
  setText("rule", "an item is decided by " + page.consensus_min + " agreeing curator" + (page.consensus_min > 1 ? "s" : ""));
  current = item;
  if (!item) {
    document.getElementById("work").hidden = true;
    document.getElementById("empty").hidden = false;
    return;
  }
  show(item);
}

function setBusy(value) {
  busy = value;
  document.body.dataset.state = value ? "busy" : "ready";
  document.querySelectorAll(".labels button").forEach((b) => (b.disabled = value));
}

function show(item) {
  document.getElementById("empty").hidden = true;
  document.getElementById("work").hidden = false;
  setText("item-id", "#" + item.id);
  setText("kind", item.kind.replaceAll("_", " "));
  setText("reason", REASONS[item.reason] || item.reason);
  setText("priority", pct(item.priority) + " chance the model is overturned");
  setText("ml-prob", pct(item.ml_probability));
  setText("model", item.model_name + " v" + item.model_version);
  setText("ml-label", item.ml_label);
  const us = document.getElementById("user-score");
  us.replaceChildren(el("span", { class: "swatch" }), item.human_class + " (" + item.human_label + ") by " + item.user_id);
  us.firstChild.style.background = item.human_colour;
  setText("drop", item.plate_barcode + " " + item.well + " drop " + item.drop);
  setText("inspection", item.inspection_id);
  setText("label-count", String(item.label_count));
  const pair = document.getElementById("images");
  pair.replaceChildren();
  const modes = ["visible", "uv"];
  const images = item.images.slice().sort((a, b) => modes.indexOf(a.imaging_mode) - modes.indexOf(b.imaging_mode));
  if (!images.length) pair.append(el("div", { class: "empty", text: "no images recorded for this inspection" }));
  for (const img of images) {
    const pic = el("img", { src: imageUrl(img.image_uri, 1200), alt: img.imaging_mode + " image of " + item.well });
    const caption = el("figcaption", { text: (img.imaging_mode === "uv" ? "UV" : "visible") + " · " + when(img.imaged_at) });
    pair.append(el("figure", {}, pic, caption));
    addPatchOverlay(pic, img.image_uri, img.imaging_mode, caption);  // m toggles it
  }
  document.getElementById("comment").value = "";
  setText("flash", "");
}

async function label(value) {
  if (!current || busy) return;
  setBusy(true);
  try {
    const comment = document.getElementById("comment").value;
    const res = await api("/v1/items/" + current.id + "/labels", { method: "POST", body: { label: value, comment } });
    await loadNext();
    setText("flash", "labelled #" + res.item.id + " " + value + " → item is " + res.item.status);
  } catch (e) {
    setText("flash", "could not save: " + e.message);
  } finally {
    setBusy(false);
  }
}

document.addEventListener("keydown", (ev) => {
  const t = ev.target;
  if (t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT")) {
    if (ev.key === "Escape") t.blur();
    return;
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const value = KEYS[ev.key.toLowerCase()];
  if (value) { ev.preventDefault(); label(value); }
});
document.querySelectorAll(".labels button").forEach((b) => b.addEventListener("click", () => label(b.dataset.label)));

renderHeader("curate").then(loadNext).then(() => setBusy(false)).catch((e) => setText("flash", e.message));
