"use strict";
// Patch-map overlay: where the model sees crystals. Each patch's contribution to the crystal logit
// (axis_model.patchmap) is drawn over the image: green pushes towards crystal, magenta away; the key m
// toggles the overlay. Without a map server the images are shown as before.

function containedRect(img) {
  // the drawn image inside an <img> with object-fit: contain
  const bw = img.clientWidth, bh = img.clientHeight;
  const nw = img.naturalWidth || bw, nh = img.naturalHeight || bh;
  const s = Math.min(bw / nw, bh / nh);
  const w = nw * s, h = nh * s;
  return { left: img.offsetLeft + (bw - w) / 2, top: img.offsetTop + (bh - h) / 2, width: w, height: h };
}

function drawPatchMap(map) {
  const canvas = document.createElement("canvas");
  canvas.className = "patch-overlay";
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
  const canvas = drawPatchMap(map);
  const place = () => {
    const r = containedRect(img);
    Object.assign(canvas.style, { left: r.left + "px", top: r.top + "px", width: r.width + "px", height: r.height + "px" });
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
