"use strict";
// Datasets page: the recorded versions (QC report, downloads, diff to the previous version) and the export jobs.
const DS_CLASSES = ["crystal", "other", "unresolved"];
const DS_MODES = ["visible", "uv"];
const DS_FILES = [
  ["manifest.jsonl", "Manifest (JSON Lines)"], ["card.md", "Dataset card"], ["qc_report.json", "QC report (JSON)"],
  ["qc_report.md", "QC report (table)"], ["removed.jsonl", "Removed items"],
];
let dsSelected = "";
let dsJobsTimer = null;
let dsUnfinished = new Set();

function dsMode(m) { return m === "uv" ? "UV" : m; }
function dsLabel(k) {
  const [c, m] = k.split("/");
  return m ? c + " · " + dsMode(m) : (DS_MODES.includes(c) ? dsMode(c) : c);
}
function dsOrdered(keys, preferred) {
  const all = new Set(keys);
  return preferred.filter((k) => all.has(k)).concat([...all].filter((k) => !preferred.includes(k)).sort());
}
function dsNum(n, attrs = {}) { return el("td", Object.assign({ class: "num", text: String(n ?? 0) }, attrs)); }
function dsPath(name, version) { return "/v1/datasets/" + encodeURIComponent(name) + "/" + encodeURIComponent(version); }

async function loadDatasets() {
  const data = await api("/v1/datasets");
  const body = document.getElementById("datasets");
  body.replaceChildren(...data.datasets.map((d) => {
    const key = d.name + "/" + d.version;
    const open = el("button", { class: "ghost", type: "button", text: "QC report", "data-open": key });
    const row = el("tr", { "data-key": key, class: key === dsSelected ? "selected" : "" },
      el("td", { text: d.name }), el("td", { text: d.version }), el("td", { text: d.purpose }),
      dsNum((d.counts.all || {}).images ?? "–"),
      el("td", { title: d.manifest_uri }, el("code", { text: d.manifest_sha256.slice(0, 16) + "…" })),
      el("td", { text: when(d.created_at) + " · " + d.created_by }), el("td", {}, open));
    row.addEventListener("click", () => showDataset(d.name, d.version));
    return row;
  }));
  if (!data.datasets.length) body.append(el("tr", {}, el("td", { colspan: "7", class: "muted", text: "no datasets yet" })));
}

function countsHeader(first, classes, modes, pairs, last) {
  const cells = [...first.map((t) => el("th", { text: t, class: t === "stage" || t === "split" ? "" : "num" }))];
  for (const k of [...classes, ...modes, ...pairs]) cells.push(el("th", { class: "num", text: dsLabel(k) }));
  if (last) cells.push(el("th", { text: last }));
  return el("thead", {}, el("tr", {}, ...cells));
}

function countCells(c, classes, modes, pairs) {
  return [...classes.map((k) => dsNum(c.by_class[k])), ...modes.map((k) => dsNum(c.by_mode[k])),
    ...pairs.map((k) => dsNum((c.by_class_mode || {})[k]))];
}

function renderReport(report) {
  const stages = document.getElementById("qc-stages");
  const splits = document.getElementById("qc-splits");
  const warnings = document.getElementById("qc-warnings");
  if (!report || report.error || !report.stages) {
    stages.replaceChildren(el("tbody", {}, el("tr", {}, el("td", { class: "error", text: "QC report unavailable: " + ((report && report.error) || "missing") }))));
    splits.replaceChildren();
    warnings.replaceChildren();
    return;
  }
  const all = [...report.stages.flatMap((s) => [s.before, s.after]), ...Object.values(report.splits)];
  const classes = dsOrdered(all.flatMap((c) => Object.keys(c.by_class)), DS_CLASSES);
  const modes = dsOrdered(all.flatMap((c) => Object.keys(c.by_mode)), DS_MODES);
  const pairs = dsOrdered(all.flatMap((c) => Object.keys(c.by_class_mode || {})), classes.flatMap((k) => modes.map((m) => k + "/" + m)));
  const first = report.stages[0].before;
  const rows = [el("tr", { class: "muted" }, el("td", { text: "input" }), el("td"), el("td"), el("td"), dsNum(first.total),
    ...countCells(first, classes, modes, pairs), el("td"))];
  for (const s of report.stages) {
    const reasons = Object.entries(s.removed_by_reason).map(([k, v]) => k.replaceAll("_", " ") + " " + v).join(", ");
    rows.push(el("tr", { "data-stage": s.stage }, el("td", { text: s.stage.replaceAll("_", " ") }),
      el("td", { class: "num", text: s.enabled ? "on" : "off" }), dsNum(s.before.total), dsNum(s.removed), dsNum(s.after.total),
      ...countCells(s.after, classes, modes, pairs), el("td", { text: reasons || "–" })));
  }
  stages.replaceChildren(countsHeader(["stage", "", "in", "removed", "out"], classes, modes, pairs, "removed by reason"),
    el("tbody", {}, ...rows));
  splits.replaceChildren(countsHeader(["split", "plates", "images"], classes, modes, pairs, ""),
    el("tbody", {}, ...Object.entries(report.splits).map(([name, c]) => el("tr", { "data-split": name },
      el("td", { text: name }), dsNum(c.plates), dsNum(c.total), ...countCells(c, classes, modes, pairs), el("td")))));
  warnings.replaceChildren(...(report.warnings || []).map((w) => el("li", { text: "warning: " + w })));
}

function itemList(title, items, extra) {
  if (!items.length) return null;
  return el("details", {}, el("summary", { text: title }),
    el("table", {}, el("tbody", {}, ...items.map((r) => el("tr", {}, el("td", {}, el("code", { text: r.image_uri })),
      el("td", { text: r.label }), el("td", { text: r.split }), el("td", { class: "muted", text: extra ? extra(r) : "" }))))));
}

function renderDiff(diff) {
  const box = document.getElementById("diff");
  if (!diff.previous) { box.replaceChildren(el("p", { class: "muted", text: "This is the first version of " + diff.name + "." })); return; }
  const it = diff.items;
  const summary = el("p", { id: "diff-summary" }, el("strong", { text: "Compared with version " + diff.previous + ": " }),
    (diff.same_manifest ? "the same manifest (identical rows). " : "") + "+" + it.added + " added, −" + it.removed +
    " removed, " + it.relabelled + " relabelled, " + it.moved + " moved to another split.");
  const rows = [];
  for (const [split, keys] of Object.entries(diff.counts)) {
    const order = ["images", ...DS_CLASSES, ...DS_MODES];
    const rank = (k) => (order.includes(k) ? order.indexOf(k) : order.length);
    for (const [k, v] of Object.entries(keys).sort((a, b) => rank(a[0]) - rank(b[0]) || a[0].localeCompare(b[0]))) {
      const sign = v.change > 0 ? "+" : "";
      rows.push(el("tr", {}, el("td", { text: split }), el("td", { text: dsLabel(k) }), dsNum(v.before), dsNum(v.after),
        dsNum(sign + v.change, { class: "num " + (v.change > 0 ? "up" : v.change < 0 ? "down" : "") })));
    }
  }
  const counts = el("div", { class: "scroll" }, el("table", { id: "diff-counts" },
    el("thead", {}, el("tr", {}, el("th", { text: "split" }), el("th", { text: "count" }), el("th", { class: "num", text: "before" }),
      el("th", { class: "num", text: "after" }), el("th", { class: "num", text: "change" }))), el("tbody", {}, ...rows)));
  const more = (n) => (n > diff.listed_at_most ? " (first " + diff.listed_at_most + ")" : "");
  const lists = [
    itemList("Added (" + it.added + ")" + more(it.added), diff.added),
    itemList("Removed (" + it.removed + ")" + more(it.removed), diff.removed),
    itemList("Relabelled (" + it.relabelled + ")" + more(it.relabelled), diff.relabelled, (r) => "was " + r.was),
    itemList("Moved (" + it.moved + ")" + more(it.moved), diff.moved, (r) => "was " + r.was)];
  box.replaceChildren(summary, counts, ...lists.filter(Boolean));
}

async function showDataset(name, version) {
  dsSelected = name + "/" + version;
  for (const tr of document.querySelectorAll("#datasets tr")) tr.classList.toggle("selected", tr.dataset.key === dsSelected);
  const d = await api(dsPath(name, version));
  document.getElementById("detail").hidden = false;
  document.getElementById("detail-title").textContent = "Dataset " + name + " · version " + version;
  const facts = [["purpose", d.purpose], ["images", String((d.counts.all || {}).images ?? "–")],
    ["created", when(d.created_at) + " by " + d.created_by], ["manifest sha256", d.manifest_sha256], ["manifest", d.manifest_uri]];
  document.getElementById("detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  document.getElementById("downloads").replaceChildren(...DS_FILES.map(([f, label]) =>
    el("a", { href: dsPath(name, version) + "/files/" + f, download: name + "-" + version + "-" + f, "data-file": f, text: "⬇ " + label })));
  renderReport(d.qc_report);
  const box = document.getElementById("diff");
  box.replaceChildren(el("p", { class: "muted", text: "comparing…" }));
  try { renderDiff(await api(dsPath(name, version) + "/diff")); } catch (e) { box.replaceChildren(el("p", { class: "error", text: "diff failed: " + e.message })); }
  if (location.hash !== "#" + dsSelected) history.replaceState(null, "", "#" + dsSelected);
  document.getElementById("detail").scrollIntoView({ block: "start" });
}

async function loadJobs() {
  clearTimeout(dsJobsTimer);
  let data;
  try { data = await api("/v1/datasets/jobs?limit=20"); } catch (e) { return; }
  const panel = document.getElementById("jobs-panel");
  panel.hidden = !data.jobs.length;
  const unfinished = new Set(data.jobs.filter((j) => j.state === "queued" || j.state === "running").map((j) => j.id));
  document.getElementById("jobs").replaceChildren(...data.jobs.map((j) => {
    const bar = j.state === "running" && j.items_total
      ? el("progress", { max: String(j.items_total), value: String(j.items_done) }) : null;
    const figures = j.state === "running" ? " " + j.items_done + " / " + j.items_total : "";
    const version = j.state === "succeeded" ? el("button", { class: "link-dark", type: "button", text: j.name + " " + j.version,
      onclick: () => showDataset(j.name, j.version) }) : document.createTextNode(j.name + " " + j.version);
    return el("tr", { "data-job": String(j.id), "data-state": j.state },
      el("td", { text: "#" + j.id }), el("td", {}, version), el("td", {}, el("span", { class: "state state-" + j.state, text: j.state })),
      el("td", { text: j.state === "running" || j.state === "queued" ? j.stage : j.state === "succeeded" ? "done" : j.stage }),
      el("td", {}, ...[bar, figures].filter(Boolean)), el("td", { class: j.state === "failed" ? "error" : "muted", text: j.message || "" }),
      el("td", { text: when(j.started_at || j.created_at) }));
  }));
  const finishedNow = [...dsUnfinished].some((id) => !unfinished.has(id));
  dsUnfinished = unfinished;
  if (finishedNow) loadDatasets();
  if (unfinished.size) dsJobsTimer = setTimeout(loadJobs, 1500);
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
  out.textContent = "starting…";
  try {
    const job = await api("/v1/datasets", { method: "POST", body });
    out.textContent = "export job #" + job.id + " started: " + job.name + " version " + job.version + " (progress above)";
    loadJobs();
  } catch (e) { out.textContent = "export refused: " + e.message; }
});

renderHeader("datasets").then(async (me) => {
  document.getElementById("export-panel").hidden = me.role !== "admin";
  await loadDatasets();
  loadJobs();
  const hash = decodeURIComponent(location.hash.slice(1));
  const slash = hash.lastIndexOf("/");
  if (slash > 0) showDataset(hash.slice(0, slash), hash.slice(slash + 1));
});
