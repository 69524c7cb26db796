"use strict";
// Full-size image viewer: the original object from the store (no downscaling), zoom with the wheel or + / -,
// pan by dragging or with the arrow keys, 0 fits, contrast and brightness sliders (UV images are dark), Esc closes.
const viewer = { open: false, scale: 1, x: 0, y: 0, node: null, img: null };

function buildViewer() {
  const img = el("img", { id: "viewer-img", alt: "full-size image", draggable: "false" });
  const contrast = el("input", { type: "range", id: "viewer-contrast", min: "50", max: "400", value: "100", "aria-label": "contrast" });
  const bright = el("input", { type: "range", id: "viewer-brightness", min: "50", max: "400", value: "100", "aria-label": "brightness" });
  const info = el("span", { id: "viewer-info", class: "muted" });
  const bar = el("div", { class: "viewer-bar" },
    el("span", { id: "viewer-title" }), info,
    el("label", {}, "contrast ", contrast), el("label", {}, "brightness ", bright),
    el("button", { id: "viewer-fit", type: "button", text: "fit (0)", onclick: () => fitViewer() }),
    el("button", { id: "viewer-close", type: "button", text: "close (Esc)", onclick: () => closeViewer() }));
  const stage = el("div", { class: "viewer-stage", id: "viewer-stage" }, img);
  const node = el("div", { class: "viewer", id: "viewer", hidden: "", role: "dialog", "aria-label": "full-size image" }, bar, stage);
  const filter = () => { img.style.filter = "contrast(" + contrast.value + "%) brightness(" + bright.value + "%)"; };
  contrast.addEventListener("input", filter);
  bright.addEventListener("input", filter);
  stage.addEventListener("wheel", (ev) => { ev.preventDefault(); zoomViewer(ev.deltaY < 0 ? 1.25 : 0.8, ev); }, { passive: false });
  let drag = null;
  stage.addEventListener("pointerdown", (ev) => { drag = { x: ev.clientX - viewer.x, y: ev.clientY - viewer.y }; stage.setPointerCapture(ev.pointerId); });
  stage.addEventListener("pointermove", (ev) => { if (drag) { viewer.x = ev.clientX - drag.x; viewer.y = ev.clientY - drag.y; placeViewer(); } });
  stage.addEventListener("pointerup", () => { drag = null; });
  img.addEventListener("load", () => { info.textContent = img.naturalWidth + " × " + img.naturalHeight + " px (original)"; fitViewer(); });
  document.body.append(node);
  viewer.node = node; viewer.img = img;
  return node;
}

function placeViewer() {
  viewer.img.style.transform = "translate(" + viewer.x + "px, " + viewer.y + "px) scale(" + viewer.scale + ")";
  // zoomed far in, show the stored pixels as they are rather than smoothed
  viewer.img.style.imageRendering = viewer.scale >= 3 ? "pixelated" : "auto";
  viewer.node.dataset.scale = viewer.scale.toFixed(3);
}

function fitViewer() {
  const stage = document.getElementById("viewer-stage");
  const w = viewer.img.naturalWidth || 1, h = viewer.img.naturalHeight || 1;
  viewer.scale = Math.min(stage.clientWidth / w, stage.clientHeight / h);
  viewer.x = (stage.clientWidth - w * viewer.scale) / 2;
  viewer.y = (stage.clientHeight - h * viewer.scale) / 2;
  placeViewer();
}

function zoomViewer(factor, at) {
  const stage = document.getElementById("viewer-stage").getBoundingClientRect();
  const cx = at && at.clientX !== undefined ? at.clientX - stage.left : stage.width / 2;
  const cy = at && at.clientY !== undefined ? at.clientY - stage.top : stage.height / 2;
  const next = Math.min(32, Math.max(0.05, viewer.scale * factor));
  viewer.x = cx - (cx - viewer.x) * (next / viewer.scale);
  viewer.y = cy - (cy - viewer.y) * (next / viewer.scale);
  viewer.scale = next;
  placeViewer();
}

function openViewer(uri, title) {
  const node = viewer.node || buildViewer();
  document.getElementById("viewer-title").textContent = title;
  document.getElementById("viewer-info").textContent = "loading the original…";
  viewer.img.removeAttribute("src");
  viewer.img.src = imageUrl(uri);  // no max_side: the stored bytes (TIFF etc. converted to PNG losslessly)
  node.hidden = false;
  viewer.open = true;
}

function closeViewer() {
  if (viewer.node) viewer.node.hidden = true;
  viewer.open = false;
}

// keys of the viewer; returns true when it handled the key (the page's own keys are off while it is open)
function viewerKey(ev) {
  if (!viewer.open) return false;
  const step = 60;
  const k = ev.key;
  if (k === "Escape") closeViewer();
  else if (k === "+" || k === "=") zoomViewer(1.25);
  else if (k === "-") zoomViewer(0.8);
  else if (k === "0") fitViewer();
  else if (k === "ArrowLeft") { viewer.x += step; placeViewer(); }
  else if (k === "ArrowRight") { viewer.x -= step; placeViewer(); }
  else if (k === "ArrowUp") { viewer.y += step; placeViewer(); }
  else if (k === "ArrowDown") { viewer.y -= step; placeViewer(); }
  else return true;  // every other key is swallowed while the viewer is open
  ev.preventDefault();
  return true;
}
