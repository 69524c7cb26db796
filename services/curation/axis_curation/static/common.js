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
  const data = text ? JSON.parse(text) : null;
  if (!resp.ok) {
    const msg = data && (data.message || (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)));
    throw new Error(msg || resp.statusText);
  }
  return data;
}

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
function when(iso) { return iso ? new Date(iso).toISOString().replace("T", " ").slice(0, 16) + " UTC" : "–"; }

async function renderHeader(active) {
  const me = await api("/v1/me");
  const nav = el("nav", {},
    el("a", { href: "/curate", class: active === "curate" ? "active" : "" , text: "Curate" }),
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
