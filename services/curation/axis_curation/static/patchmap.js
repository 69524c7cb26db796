"use strict";
// Patch-map overlay: where the model sees crystals. Each patch's contribution to the crystal logit
// (axis_model.patchmap) is drawn over the image: green pushes towards crystal, magenta away; the key m
// toggles the overlay. Without a map server the images are shown as before.

function drawPatchMap(map) {
  // the grid covers the whole image (the model sees it resized to a square)
  const canvas = document.createElement("canvas");
  canvas.width = map.cols;
  canvas.height = map.rows;
  const flat = map.contributions.flat();
  const scale = Math.max(...flat.map((v) => Math.abs(v))) || 1;
  const ctx = canvas.getContext("2d");
  const data = ctx.createImageData(map.cols, map.rows);
  flat.forEach((v, i) => {
    const rgb = v > 0 ? [40, 230, 100] : [220, 60, 220];
    data.data.set([...rgb, Math.round(Math.min(1, Math.abs(v) / scale) * 170)], i * 4);
  });
  ctx.putImageData(data, 0, 0);
  canvas.title = "patch part of the crystal logit " + map.patch_part.toFixed(2) + " (CLS " + map.cls_part.toFixed(2) +
    ", bias " + map.bias_part.toFixed(2) + "); P(crystal) " + pct(map.probability) + " by " + map.model_name +
    " v" + map.model_version;
  return canvas;
}

async function addPatchOverlay(img, uri, mode, caption) {
  let map;
  try { map = await api("/v1/patch-map?uri=" + encodeURIComponent(uri) + "&mode=" + encodeURIComponent(mode)); }
  catch (e) { return null; }  // no map server, or no model yet: the plain image stays
  if (!img.parentElement) return null;
  const grid = drawPatchMap(map);
  // an overlay with the image's own aspect ratio and object-fit, laid over the <img> box, lines up with the
  // drawn image whether the page shows it contained (curator view) or cropped (well thumbnails)
  const canvas = document.createElement("canvas");
  canvas.className = "patch-overlay";
  canvas.title = grid.title;
  const place = () => {
    const nw = img.naturalWidth || map.cols, nh = img.naturalHeight || map.rows;
    const k = 256 / Math.max(nw, nh);
    canvas.width = Math.max(1, Math.round(nw * k));
    canvas.height = Math.max(1, Math.round(nh * k));
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = true;
    ctx.drawImage(grid, 0, 0, canvas.width, canvas.height);
    const cs = getComputedStyle(img);
    Object.assign(canvas.style, {
      left: img.offsetLeft + "px", top: img.offsetTop + "px", width: img.clientWidth + "px",
      height: img.clientHeight + "px", objectFit: cs.objectFit, objectPosition: cs.objectPosition,
    });
  };
  img.parentElement.classList.add("has-patch-map");
  img.after(canvas);
  if (img.complete) place(); else img.addEventListener("load", place);
  window.addEventListener("resize", place);
  if (caption) caption.append(" · map: patch part " + map.patch_part.toFixed(2) + " of logit " + map.margin.toFixed(2));
  return map;
}

document.addEventListener("keydown", (ev) => {
  const t = ev.target;
  if (t && (t.tagName === "TEXTAREA" || t.tagName === "INPUT")) return;
  if (ev.key === "m" && !ev.ctrlKey && !ev.metaKey && !ev.altKey) {
    document.body.dataset.overlay = document.body.dataset.overlay === "off" ? "on" : "off";
  }
});
