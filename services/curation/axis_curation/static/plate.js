"use strict";
// Plate map: each well filled by the fused ML crystal probability (the API's alpha of one green: none below 40 %,
// rising quickly above) and ringed in the colour of its latest user score; a red dot marks wells where the
// model's label (at its threshold) and the user's label disagree. The round buttons show the plate as of an
// earlier imaging; ?well=A1 opens a well, ?round=N a round.
const barcode = decodeURIComponent(location.pathname.split("/").pop());
const params = new URLSearchParams(location.search);
let plate = null;
let me = null;

function wellTitle(w) {
  let t = w.well + ": ";
  t += w.probability == null ? "not scored" : "ML " + pct(w.probability) + " " + (w.ml_label || "") + " (" + (w.model_name || "model") + " v" + (w.model_version || "?") + ")";
  if (w.user_score) t += " · user: " + classTitle(w.user_score.raw_class) + " (" + w.user_score.label + ")";
  if (w.disagrees) t += " · disagree";
  return t;
}

function paint() {
  const view = document.getElementById("view").value;
  const onlyDis = document.getElementById("only-disagree").checked;
  for (const w of plate.wells) {
    const node = document.getElementById("well-" + w.well);
    const ring = view !== "ml" && w.user_score ? plate.legend[w.user_score.raw_class] || w.user_score.colour : null;
    node.style.background = view === "users" ? (ring || "transparent") : (w.fill || "transparent");
    node.classList.toggle("ring", Boolean(ring) && view === "both");
    node.style.borderColor = ring && view === "both" ? ring : "";
    node.classList.toggle("disagree", Boolean(w.disagrees) && view === "both");
    node.classList.toggle("dimmed", onlyDis && !w.disagrees);
  }
  renderLegend(view);
}

function renderLegend(view) {
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  if (view !== "users") {
    const ml = el("div", { class: "legend-block", id: "legend-ml" }, el("b", { text: "ML P(crystal), fill: " }));
    for (const p of [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]) {
      const a = Math.pow(Math.min(1, Math.max(0, (p - 0.4) / 0.6)), 0.7);
      const step = el("span", { class: "step", title: pct(p) });
      step.style.background = "rgba(0,150,60," + a.toFixed(3) + ")";
      ml.append(el("span", { class: "tick" }, step, el("span", { text: Math.round(p * 100) + " %" })));
    }
    ml.append(el("span", { class: "muted", text: " " + plate.colour_scale }));
    legend.append(ml);
  }
  if (view !== "ml") {
    const users = el("div", { class: "legend-block", id: "legend-users" }, el("b", { text: view === "users" ? "Users' scores: " : "Users' scores, ring: " }));
    for (const c of plate.classes) {
      const sw = el("span", { class: view === "users" ? "swatch" : "ring-swatch" });
      if (view === "users") sw.style.background = c.colour; else sw.style.borderColor = c.colour;
      users.append(el("span", { class: "cls", title: c.name + " → " + c.label }, sw, c.title + " "));
    }
    legend.append(users);
  }
  if (view === "both") legend.append(el("div", { class: "legend-block" }, el("span", { class: "mark" }), "ML label and user label disagree (" + plate.disagreements + " wells)"));
  legend.append(el("div", { class: "legend-block muted", text: "dashed outline: not scored in this round" }));
}

function renderRounds() {
  const box = document.getElementById("rounds");
  box.replaceChildren(el("span", { class: "muted", text: "imaging: " }));
  for (const r of plate.rounds) {
    const b = el("button", { type: "button", class: r.index === plate.selected ? "active" : "", "data-round": String(r.index),
      title: r.inspections + " inspections, " + utc(r.started_at) + " – " + utc(r.ended_at), text: when(r.started_at) });
    b.addEventListener("click", () => load(r.index));
    box.append(b);
  }
}

function render() {
  document.getElementById("title").textContent = "Plate " + plate.barcode;
  const r = plate.rounds[plate.selected];
  document.getElementById("summary").textContent = plate.plate_type + "-well · " + plate.scored_wells + " wells scored · " +
    plate.disagreements + " disagreements · as of the imaging of " + when(r.started_at) + " (" + (plate.selected + 1) + " of " + plate.rounds.length + ")";
  renderRounds();
  const grid = document.getElementById("grid");
  grid.className = "plate-grid w" + plate.plate_type;
  grid.style.gridTemplateColumns = "auto repeat(" + plate.columns + ", auto)";
  grid.replaceChildren(el("span"));
  for (let c = 1; c <= plate.columns; c++) grid.append(el("span", { class: "lab", text: String(c) }));
  plate.wells.forEach((w, i) => {
    if (i % plate.columns === 0) grid.append(el("span", { class: "lab", text: plate.rows[w.row] }));
    const node = el("div", {
      class: "well" + (w.probability == null ? " unscored" : ""),
      id: "well-" + w.well,
      title: wellTitle(w),
      "data-probability": w.probability == null ? "" : String(w.probability),
      "data-model-version": w.model_version || "",
      "data-disagrees": w.disagrees ? "true" : "false",
      role: "button",
      "aria-label": wellTitle(w),
    });
    node.addEventListener("mouseenter", () => { document.getElementById("hover-info").textContent = wellTitle(w); });
    node.addEventListener("click", () => openWell(w));
    grid.append(node);
  });
  paint();
}

function table(headers, rows, id) {
  if (!rows.length) return el("div", { class: "muted", text: "none" });
  return el("table", { id }, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))), el("tbody", {}, ...rows));
}

async function openWell(w) {
  document.querySelectorAll(".well.selected").forEach((n) => n.classList.remove("selected"));
  document.getElementById("well-" + w.well).classList.add("selected");
  const url = new URL(location.href);
  url.searchParams.set("well", w.well);
  history.replaceState(null, "", url);
  const detail = document.getElementById("detail");
  detail.replaceChildren(el("h2", { text: "Well " + w.well }), el("div", { class: "muted", text: "loading…" }));
  let h;
  try { h = await api("/v1/plates/" + encodeURIComponent(barcode) + "/wells/" + w.well); }
  catch (e) { detail.replaceChildren(el("h2", { text: "Well " + w.well }), el("div", { class: "muted", text: e.message })); return; }
  // inspections of the well, newest first; the one of the selected round is marked
  const inspections = new Map();
  for (const f of h.fused_scores) inspections.set(f.inspection_id, { id: f.inspection_id, drop: f.drop, at: f.imaged_at, fused: f, images: [] });
  for (const i of h.images) {
    if (!inspections.has(i.inspection_id)) inspections.set(i.inspection_id, { id: i.inspection_id, drop: i.drop, at: i.imaged_at, fused: null, images: [] });
    inspections.get(i.inspection_id).images.push(i);
  }
  const ordered = [...inspections.values()].sort((a, b) => parseTime(b.at) - parseTime(a.at));
  const shown = new Set(w.drops.map((d) => d.inspection_id));
  const atOf = (id) => (inspections.get(id) || {}).at;
  const series = el("div", { class: "strip", id: "well-series" }, ...ordered.slice().reverse().map((insp) => {
    const fig = el("figure", { class: shown.has(insp.id) ? "current" : "", "data-inspection": insp.id });
    const first = insp.images.slice().sort(byMode)[0];
    if (first) {
      const pic = el("img", { src: imageUrl(first.image_uri, 200), alt: modeName(first.imaging_mode), class: "zoomable" });
      pic.addEventListener("click", () => openViewer(first.image_uri, modeName(first.imaging_mode) + " · " + w.well + " · " + when(insp.at)));
      fig.append(pic);
    }
    const f = insp.fused;
    fig.append(el("figcaption", {}, timeEl("span", insp.at), el("br"), el("span", { class: f && f.label === "crystal" ? "is-crystal" : "is-other", text: f ? pct(f.fused_probability) + " " + f.label : "not scored" })));
    return fig;
  }));
  const latest = h.images.filter((i) => shown.has(i.inspection_id)).sort(byMode);
  const thumbs = el("div", { class: "thumbs", id: "well-images" }, ...latest.map((i) => {
    const pic = el("img", { src: imageUrl(i.image_uri, 320), alt: i.imaging_mode, class: "zoomable" });
    pic.addEventListener("click", () => openViewer(i.image_uri, modeName(i.imaging_mode) + " · " + w.well + " · " + when(i.imaged_at)));
    const caption = el("figcaption", {}, modeName(i.imaging_mode) + " · ", timeEl("span", i.imaged_at));
    addPatchOverlay(pic, i.image_uri, i.imaging_mode, caption);  // m toggles it
    return el("figure", {}, pic, caption);
  }));
  const scoreRows = h.image_scores.map((s) => el("tr", { "data-inspection": s.inspection_id }, timeEl("td", s.imaged_at),
    el("td", { text: String(s.drop) }), el("td", { text: modeName(s.imaging_mode) }), el("td", { class: "num", text: pct(s.probability) }),
    el("td", { class: s.probability >= s.threshold ? "is-crystal" : "is-other", text: (s.probability >= s.threshold ? "crystal" : "other") + " at " + pct(s.threshold) }),
    el("td", { text: s.model_name + " v" + s.model_version }), timeEl("td", s.scored_at)));
  const userRows = h.user_scores.map((u) => {
    const sw = el("span", { class: "swatch" });
    sw.style.background = plate.legend[u.raw_class] || u.colour;
    return el("tr", { "data-inspection": u.inspection_id || "" }, timeEl("td", u.imaged_at || atOf(u.inspection_id)),
      el("td", {}, sw, u.title || classTitle(u.raw_class)), el("td", { text: u.human_label }), el("td", { text: u.user_id }), timeEl("td", u.scored_at));
  });
  const curatorRows = h.curator_labels.map((c) => el("tr", { "data-inspection": c.inspection_id }, timeEl("td", atOf(c.inspection_id)),
    el("td", { class: "lab-" + c.label, text: c.label }), el("td", { text: c.curator }), el("td", { text: c.comment || "" }), timeEl("td", c.created_at)));
  const canCurateHere = canCurate(me);
  const items = (h.queue_items || []).map((q) => el("li", {}, canCurateHere && q.status === "open"
    ? el("a", { href: "/curate?item=" + q.item_id, text: "queue item #" + q.item_id }) : el("span", { text: "queue item #" + q.item_id }),
    " · " + q.status + " · " + (q.reason || "") + " · inspection of " + when(atOf(q.inspection_id))));
  detail.replaceChildren(...[
    el("h2", { text: "Well " + w.well + " · " + wellTitle(w).split(": ").slice(1).join(": ") }), thumbs,
    el("h2", { text: "This well over time" }), series,
    el("h2", { text: "ML scores per image and model version" }),
    table(["imaged", "drop", "mode", "P(crystal)", "label", "model", "scored"], scoreRows, "well-ml-scores"),
    el("h2", { text: "User scores" }), table(["imaged", "class", "label", "user", "scored"], userRows, "well-user-scores"),
    el("h2", { text: "Curator labels" }), table(["imaged", "label", "curator", "comment", "labelled"], curatorRows, "well-curator-labels"),
    items.length ? el("h2", { text: "In the curator queue" }) : null, items.length ? el("ul", { id: "well-queue" }, ...items) : null,
  ].filter(Boolean));
}

async function load(round) {
  const q = round === undefined || round === null ? "" : "?round=" + round;
  plate = await api("/v1/plates/" + encodeURIComponent(barcode) + q);
  const url = new URL(location.href);
  if (round === undefined || round === null) url.searchParams.delete("round"); else url.searchParams.set("round", String(round));
  history.replaceState(null, "", url);
  render();
  const well = new URL(location.href).searchParams.get("well");
  const w = well && plate.wells.find((x) => x.well === well.toUpperCase());
  if (w) openWell(w);
}

document.getElementById("view").addEventListener("change", paint);
document.getElementById("only-disagree").addEventListener("change", paint);
document.addEventListener("keydown", (ev) => { viewerKey(ev); });
renderHeader("plates")
  .then((m) => { me = m; return load(params.get("round")); })
  .catch((e) => { document.getElementById("summary").textContent = e.message; });
