"use strict";
async function loadPlates() {
  const data = await api("/v1/plates");
  const body = document.getElementById("plates");
  body.replaceChildren(...data.plates.map((p) => el("tr", {},
    el("td", {}, el("a", { href: "/plates/" + encodeURIComponent(p.plate_barcode), text: p.plate_barcode })),
    el("td", { text: p.plate_type + "-well" }), el("td", { text: String(p.wells) }), timeEl("td", p.first_imaged_at), timeEl("td", p.last_imaged_at))));
  if (!data.plates.length) body.append(el("tr", {}, el("td", { colspan: "5", class: "muted", text: "No scored plates yet: plates appear here once the inference service has scored their images." })));
}
document.getElementById("open-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const code = document.getElementById("barcode").value.trim();
  if (code) location.href = "/plates/" + encodeURIComponent(code);
});
renderHeader("plates").then(loadPlates).catch((e) => {
  document.getElementById("plates").replaceChildren(el("tr", {}, el("td", { colspan: "4", class: "error", text: e.message })));
});
