"use strict";
// Plate map: wells coloured by the fused ML crystal probability (alpha computed by the API on a
// non-linear scale: alpha = clamp((p-0.4)/0.6,0,1)^0.7, so < 40 % is invisible), or by users' scores.
const barcode = decodeURIComponent(location.pathname.split("/").pop());
let plate = null;

function wellTitle(w) {
  if (w.probability === null) return w.well + ": not scored";
  let t = w.well + ": " + pct(w.probability) + " crystal · " + (w.model_name || "model") + " v" + (w.model_version || "?");
  if (w.user_score) t += " · user: " + w.user_score.raw_class;
  return t;
}

function paint() {
  const users = document.getElementById("show-users").checked;
  for (const w of plate.wells) {
    const node = document.getElementById("well-" + w.well);
    if (users) node.style.background = w.user_score ? w.user_score.colour : "transparent";
    else node.style.background = w.fill;
  }
  renderLegend(users);
}

function renderLegend(users) {
  const legend = document.getElementById("legend");
  legend.replaceChildren();
  if (users) {
    for (const [name, colour] of Object.entries(plate.legend)) {
      const sw = el("span", { class: "swatch" });
      sw.style.background = colour;
      legend.append(el("span", {}, sw, name.replaceAll("_", " ")), " ");
    }
    return;
  }
  legend.append("ML P(crystal): ");
  for (const p of [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]) {
    const a = Math.pow(Math.min(1, Math.max(0, (p - 0.4) / 0.6)), 0.7);
    const step = el("span", { class: "step", title: pct(p) });
    step.style.background = "rgba(0,150,60," + a.toFixed(3) + ")";
    legend.append(el("span", { class: "tick" }, step, el("span", { text: Math.round(p * 100) + " %" })));
  }
}

function render() {
  document.getElementById("title").textContent = "Plate " + plate.barcode;
  document.getElementById("summary").textContent =
    plate.plate_type + "-well · " + plate.scored_wells + " wells scored (latest inspection per well)";
  document.getElementById("scale").textContent = "scale: " + plate.colour_scale;
  const grid = document.getElementById("grid");
  grid.className = "plate-grid w" + plate.plate_type;
  grid.style.gridTemplateColumns = "auto repeat(" + plate.columns + ", auto)";
  grid.replaceChildren(el("span"));
  for (let c = 1; c <= plate.columns; c++) grid.append(el("span", { class: "lab", text: String(c) }));
  plate.wells.forEach((w, i) => {
    if (i % plate.columns === 0) grid.append(el("span", { class: "lab", text: plate.rows[w.row] }));
    const node = el("div", {
      class: "well" + (w.probability === null ? " unscored" : ""),
      id: "well-" + w.well,
      title: wellTitle(w),
      "data-probability": w.probability === null ? "" : String(w.probability),
      "data-model-version": w.model_version || "",
      role: "button",
      "aria-label": wellTitle(w),
    });
    node.addEventListener("mouseenter", () => { document.getElementById("hover-info").textContent = wellTitle(w); });
    node.addEventListener("click", () => openWell(w));
    grid.append(node);
  });
  paint();
}

async function openWell(w) {
  document.querySelectorAll(".well.selected").forEach((n) => n.classList.remove("selected"));
  document.getElementById("well-" + w.well).classList.add("selected");
  const detail = document.getElementById("detail");
  detail.replaceChildren(el("h2", { text: "Well " + w.well }), el("div", { class: "muted", text: "loading…" }));
  let h;
  try { h = await api("/v1/plates/" + encodeURIComponent(barcode) + "/wells/" + w.well); }
  catch (e) { detail.replaceChildren(el("h2", { text: "Well " + w.well }), el("div", { class: "muted", text: e.message })); return; }
  const latest = h.images.filter((i) => !w.drops.length || i.inspection_id === w.drops[0].inspection_id);
  const thumbs = el("div", { class: "thumbs", id: "well-images" }, ...latest.map((i) => {
    const pic = el("img", { src: imageUrl(i.image_uri, 320), alt: i.imaging_mode });
    const caption = el("figcaption", { text: i.imaging_mode + " · " + when(i.imaged_at) });
    addPatchOverlay(pic, i.image_uri, i.imaging_mode, caption);  // m toggles it
    return el("figure", {}, pic, caption);
  }));
  const scoreRows = h.image_scores.map((s) => el("tr", {}, el("td", { text: when(s.scored_at) }),
    el("td", { text: s.imaging_mode }), el("td", { text: pct(s.probability) }),
    el("td", { text: s.model_name + " v" + s.model_version })));
  const userRows = h.user_scores.map((u) => {
    const sw = el("span", { class: "swatch" });
    sw.style.background = u.colour;
    return el("tr", {}, el("td", { text: when(u.scored_at) }), el("td", {}, sw, u.raw_class), el("td", { text: u.user_id }));
  });
  const curatorRows = h.curator_labels.map((c) => el("tr", {}, el("td", { text: when(c.created_at) }),
    el("td", { text: c.label }), el("td", { text: c.curator }), el("td", { text: c.comment || "" })));
  detail.replaceChildren(
    el("h2", { text: "Well " + w.well + " · " + wellTitle(w).split(": ").slice(1).join(": ") }), thumbs,
    el("h2", { text: "ML scores per image and model version" }),
    el("table", {}, el("thead", {}, el("tr", {}, el("th", { text: "scored" }), el("th", { text: "mode" }),
      el("th", { text: "P(crystal)" }), el("th", { text: "model" }))), el("tbody", {}, ...scoreRows)),
    el("h2", { text: "User scores" }),
    userRows.length ? el("table", {}, el("tbody", {}, ...userRows)) : el("div", { class: "muted", text: "none" }),
    el("h2", { text: "Curator labels" }),
    curatorRows.length ? el("table", {}, el("tbody", {}, ...curatorRows)) : el("div", { class: "muted", text: "none" }));
}

document.getElementById("show-users").addEventListener("change", paint);
renderHeader("plates")
  .then(() => api("/v1/plates/" + encodeURIComponent(barcode)))
  .then((data) => { plate = data; render(); })
  .catch((e) => { document.getElementById("summary").textContent = e.message; });
