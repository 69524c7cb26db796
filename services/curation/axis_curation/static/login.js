"use strict";
document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const err = document.getElementById("login-error");
  err.textContent = "";
  const body = JSON.stringify({
    username: document.getElementById("username").value,
    password: document.getElementById("password").value,
  });
  const resp = await fetch("/v1/login", { method: "POST", body, credentials: "same-origin",
    headers: { "Content-Type": "application/json" } });
  if (!resp.ok) { err.textContent = resp.status === 401 ? "Unknown user or wrong password." : "Login failed (" + resp.status + ")."; return; }
  const me = await resp.json();
  const home = me.role === "curator" || me.role === "admin" ? "/curate" : "/plates";
  const next = new URLSearchParams(location.search).get("next");
  // only local paths: never redirect to another site
  location.href = next && next.startsWith("/") && !next.startsWith("//") && !next.startsWith("/\\") ? next : home;
});
