"use strict";
async function loadDatasets() {
  const data = await api("/v1/datasets");
  const body = document.getElementById("datasets");
  body.replaceChildren(...data.datasets.map((d) => el("tr", {},
    el("td", { text: d.name }), el("td", { text: d.version }), el("td", { text: d.purpose }),
    el("td", { text: String((d.counts.all || {}).images ?? "–") }),
    el("td", { title: d.manifest_uri }, el("code", { text: d.manifest_sha256.slice(0, 16) + "…" })),
    el("td", { text: when(d.created_at) + " · " + d.created_by }))));
  if (!data.datasets.length) body.append(el("tr", {}, el("td", { colspan: "6", class: "muted", text: "no datasets yet" })));
}
document.getElementById("export-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const out = document.getElementById("export-result");
  const v = (id) => document.getElementById(id).value.trim();
  let config = {};
  try { config = v("config") ? JSON.parse(v("config")) : {}; } catch (e) { out.textContent = "config is not JSON: " + e.message; return; }
  const body = { name: v("name"), purpose: v("purpose"), config };
  if (v("version")) body.version = v("version");
  if (v("plates")) body.plates = v("plates").split(",").map((s) => s.trim()).filter(Boolean);
  out.textContent = "building…";
  try {
    const res = await api("/v1/datasets", { method: "POST", body });
    out.textContent = "exported " + res.name + " " + res.version + "\n" + res.manifest_uri + "\nremoved: " + JSON.stringify(res.removed_by_stage);
    loadDatasets();
  } catch (e) { out.textContent = "export failed: " + e.message; }
});
renderHeader("datasets").then((me) => {
  document.getElementById("export-panel").hidden = me.role !== "admin";
  return loadDatasets();
});
