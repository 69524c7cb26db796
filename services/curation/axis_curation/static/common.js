// Shared helpers of the AXIS Loop curation pages (plain JS, no build step).
"use strict";

async function api(path, options = {}) {
  const opts = Object.assign({ credentials: "same-origin", headers: {} }, options);
  if (opts.body && typeof opts.body !== "string") {
    opts.body = JSON.stringify(opts.body);
    opts.headers["Content-Type"] = "application/json";
  }
  const resp = await fetch(path, opts);
  if (resp.status === 401) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    throw new Error("not logged in");
  }
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text.slice(0, 200) }; }
  if (!resp.ok) {
    const msg = data && (data.message || (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)));
    const err = new Error(msg || resp.statusText);
    err.status = resp.status;
    throw err;
  }
  return data;
}

// One order of imaging modes on every page: visible first, then UV.
const MODES = ["visible", "uv"];
function modeName(m) { return m === "uv" ? "UV" : m === "visible" ? "visible" : m; }
function byMode(a, b) { return MODES.indexOf(a.imaging_mode || a.mode) - MODES.indexOf(b.imaging_mode || b.mode); }
// user-score classes as people write them: single_crystals -> Single crystals
function classTitle(raw) { const t = String(raw || "").replaceAll("_", " "); return t.charAt(0).toUpperCase() + t.slice(1); }

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function pct(p) { return p === null || p === undefined ? "–" : (100 * p).toFixed(1) + " %"; }
function imageUrl(uri, maxSide) { return "/v1/images?uri=" + encodeURIComponent(uri) + (maxSide ? "&max_side=" + maxSide : ""); }
// Times arrive as ISO 8601 with an offset (UTC from the API); a time without one is taken as UTC, never as local.
function parseTime(iso) {
  if (!iso) return null;
  const s = String(iso);
  return new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(s) ? s : s + "Z");
}
const _clock = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
  minute: "2-digit", hour12: false, timeZoneName: "short" });
// shown in the viewer's own time zone, with the zone named; the UTC time is in the element's title
function when(iso) { const d = parseTime(iso); return d ? _clock.format(d) : "–"; }
function utc(iso) { const d = parseTime(iso); return d ? d.toISOString().replace("T", " ").slice(0, 19) + " UTC" : ""; }
function timeEl(tag, iso, attrs = {}) { return el(tag, Object.assign({ text: when(iso), title: utc(iso) }, attrs)); }

function canCurate(me) { return me.role === "curator" || me.role === "admin"; }

async function renderHeader(active) {
  const me = await api("/v1/me");
  document.body.dataset.role = me.role;
  const nav = el("nav", {},
    canCurate(me) ? el("a", { href: "/curate", class: active === "curate" ? "active" : "", text: "Curate" }) : null,
    el("a", { href: "/plates", class: active === "plates" ? "active" : "", text: "Plates" }),
    el("a", { href: "/datasets", class: active === "datasets" ? "active" : "", text: "Datasets" }));
  const logout = el("button", { id: "logout", text: "Log out", onclick: async () => {
    await fetch("/v1/logout", { method: "POST", credentials: "same-origin" });
    location.href = "/login";
  } });
  const header = el("header", { class: "top" }, el("span", { class: "brand", text: "AXIS Loop" }), nav,
    el("span", { class: "spacer" }), el("span", { class: "who", id: "who", text: me.username + " · " + me.role }), logout);
  document.body.prepend(header);
  return me;
}
