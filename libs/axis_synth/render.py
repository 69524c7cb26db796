"""Render a drop scene as a visible-light or UV image (uint8 RGB), deterministically per seed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from axis_synth.domain import Domain
from axis_synth.raster import (
    F32,
    Frame,
    blur_uint8,
    circle_dist,
    polygon_field,
    smoothstep,
    stamp_blobs,
    value_noise,
)
from axis_synth.scene import Scene, build_scene
from axis_synth.spec import MODES, DropSpec, Mode

_BROWN = np.array([0.93, 0.74, 0.50], dtype=F32)
_REF_SIDE = 224.0


@dataclass(frozen=True)
class _Fields:
    """Full-image fields shared by both modes."""

    x: np.ndarray
    y: np.ndarray
    well_out: np.ndarray
    well_wall: np.ndarray
    rho: np.ndarray
    inside: np.ndarray
    rim: np.ndarray
    rim_w: float


def _size(domain: Domain, size: tuple[int, int] | None) -> tuple[int, int]:
    w, h = size if size is not None else domain.image_size
    if w < 16 or h < 16:
        raise ValueError(f"image size must be at least 16x16 pixels, got {(w, h)}")
    return int(w), int(h)


def _fields(scene: Scene, domain: Domain, frame: Frame) -> _Fields:
    x, y = frame.unit_grid()
    dx, dy = x - F32(scene.well_centre[0]), y - F32(scene.well_centre[1])
    if domain.well_shape == "round":
        w = np.sqrt(dx * dx + dy * dy) / F32(domain.well_radius)
    else:
        w = ((dx / F32(domain.well_radius)) ** 8 + (dy / F32(domain.well_radius)) ** 8) ** F32(0.125)
    d = scene.drop
    c, s = F32(np.cos(d.angle)), F32(np.sin(d.angle))
    xr = ((x - F32(d.cx)) * c + (y - F32(d.cy)) * s) / F32(d.a)
    yr = (-(x - F32(d.cx)) * s + (y - F32(d.cy)) * c) / F32(d.b)
    theta = np.arctan2(yr, xr)
    wobble = F32(1.0) + F32(d.h2) * np.cos(2 * theta + F32(d.p2)) + F32(d.h3) * np.cos(3 * theta + F32(d.p3))
    rho = np.sqrt(xr * xr + yr * yr) / wobble
    rim_w = max(0.006, 0.9 / frame.scale) / d.a
    inside = np.clip((1.0 - rho) / F32(rim_w) + F32(0.5), 0.0, 1.0)
    rim = np.exp(-(((rho - F32(1.0)) / F32(rim_w)) ** 2))
    wall_w = max(0.008, 1.0 / frame.scale) / domain.well_radius
    return _Fields(
        x=x,
        y=y,
        well_out=smoothstep(1.0, 1.0 + 3 * wall_w, w),
        well_wall=np.exp(-(((w - F32(1.0)) / F32(wall_w)) ** 2)),
        rho=rho,
        inside=inside,
        rim=rim,
        rim_w=rim_w,
    )


def _precipitate(scene: Scene, frame: Frame, f: _Fields) -> tuple[np.ndarray, np.ndarray]:
    """(density, grains) of the precipitate texture inside the drop; same for both modes."""
    rng = np.random.default_rng([scene.texture_seed, 11])
    heavy = scene.precipitate > 0.7
    grains = value_noise(rng, frame, max(1.0, 0.006 * frame.scale))
    thr = F32(0.45 if heavy else 0.6)
    grains = np.clip((grains - thr) / (F32(1.0) - thr), 0.0, 1.0)
    cloud = value_noise(rng, frame, 0.09 * frame.scale)
    mask = f.inside * (F32(1.0) - smoothstep(0.8, 1.0, f.rho))
    density = F32(scene.precipitate) * mask * (F32(0.35) + F32(0.9) * cloud)
    return density, grains


def _crystal_layers(
    scene: Scene,
    domain: Domain,
    frame: Frame,
    growth: float,
    visible: np.ndarray | None,
    uv: np.ndarray | None,
    mask: np.ndarray | None,
) -> None:
    """Draw the grown crystals into whichever of the visible transmission, UV and mask arrays are given."""
    light = np.array([np.cos(scene.light_angle), np.sin(scene.light_angle)])
    ew = max(0.7, 0.0025 * frame.scale)
    for crystal in scene.crystals:
        verts = crystal.grown(growth)
        if verts is None:
            continue
        vpx = frame.to_px(verts)
        pf = polygon_field(frame, vpx, pad=2.0 + 2.0 * ew)
        if pf is None:
            continue
        ys, xs = pf.crop.ys, pf.crop.xs
        cov = np.clip(F32(0.5) - pf.dist, 0.0, 1.0)
        if mask is not None:
            mask[ys, xs] |= cov > 0.5
            if visible is None and uv is None:
                continue
        facing = (pf.normals @ light).astype(F32)[pf.edge]
        shadow = np.maximum(-facing, 0.0)
        # top face: the outline shrunk and shifted towards the light, so the far side shows its side facets
        top = np.zeros_like(cov)
        top_line = np.zeros_like(cov)
        if crystal.kind == "facet":
            c = vpx.mean(axis=0)
            tf = polygon_field(frame, c + (vpx - c) * 0.72 + light * 0.18 * pf.inradius, 0.0, crop=pf.crop)
            if tf is not None:
                top = np.clip(F32(0.5) - tf.dist, 0.0, 1.0) * cov
                top_line = np.exp(-((tf.dist / F32(ew)) ** 2)) * cov
        sides = cov - top
        if visible is not None:
            # dark edge, thicker on the side facing away from the light (a wedge of shadow)
            width = F32(ew) + F32(0.3 * pf.inradius) * shadow**1.5
            band = smoothstep(-1.0, 1.0, pf.dist + width)
            edge = band * np.exp(-((np.maximum(pf.dist, 0.0) / F32(ew)) ** 2))
            dark = sides * (F32(0.35) + F32(0.65) * shadow) - top * F32(0.12)
            out = (F32(1.0) - F32(domain.facet_contrast) * dark) * (F32(1.0) - F32(domain.edge_contrast) * edge)
            out *= F32(1.0) - F32(0.2 * domain.edge_contrast) * top_line
            visible[ys, xs] *= out
        if uv is not None:
            lit = (F32(0.8) + F32(0.3) * np.maximum(facing, 0.0)) * sides + top
            edge = np.exp(-((pf.dist / F32(ew)) ** 2)) * np.maximum(facing, 0.0)
            uv[ys, xs] += F32(domain.uv_crystal * crystal.uv_gain) * (lit + F32(0.3) * edge)


def _droplets(scene: Scene, frame: Frame, visible: np.ndarray | None, uv: np.ndarray | None) -> None:
    for x, y, r in scene.droplets:
        cx, cy = frame.to_px(np.array([x, y]))
        rp = r * frame.scale
        hit = circle_dist(frame, cx, cy, rp, pad=2.0)
        if hit is None:
            continue
        crop, d = hit
        inside = np.clip(F32(0.5) - d, 0.0, 1.0)
        if visible is not None:
            ring = np.exp(-((d / F32(max(0.7, 0.16 * rp))) ** 2))
            hx, hy = cx - 0.3 * rp, cy - 0.3 * rp
            hl = np.exp(-((crop.x - F32(hx)) ** 2 + (crop.y - F32(hy)) ** 2) / F32(2 * (0.3 * rp) ** 2 + 0.5))
            visible[crop.ys, crop.xs] *= (F32(1.0) - F32(0.45) * ring) * (
                F32(1.0) + inside * (F32(0.14) * hl - F32(0.04))
            )
        if uv is not None:
            uv[crop.ys, crop.xs] *= F32(1.0) - F32(0.3) * inside


def _blobs_px(frame: Frame, rows: np.ndarray, strength: float) -> np.ndarray:
    if len(rows) == 0:
        return rows
    xy = frame.to_px(rows[:, :2])
    sigma = np.maximum(rows[:, 2] * frame.scale, 0.55)
    return np.concatenate([xy, sigma[:, None], (rows[:, 3] * strength)[:, None]], axis=1)


def _noisy_uint8(arr: np.ndarray, blur: float, noise: float, rng: np.random.Generator) -> np.ndarray:
    u8 = np.clip(arr * F32(255.0) + F32(0.5), 0, 255).astype(np.uint8)
    u8 = blur_uint8(u8, blur)
    if noise <= 0.0:
        return u8
    n = rng.standard_normal(u8.shape, dtype=F32) * F32(noise)
    return np.clip(u8.astype(F32) + n + F32(0.5), 0, 255).astype(np.uint8)


def _visible(scene: Scene, domain: Domain, frame: Frame, growth: float, rng: np.random.Generator) -> np.ndarray:
    f = _fields(scene, domain, frame)
    t = np.ones((frame.height, frame.width), dtype=F32)
    t *= (F32(1.0) - F32(domain.well_darkness) * f.well_out) * (F32(1.0) - F32(0.3) * f.well_wall)
    band = smoothstep(0.72, 1.0, f.rho) ** 2 * f.inside
    halo = np.exp(-(((f.rho - F32(1.0 + 3 * f.rim_w)) / F32(3 * f.rim_w)) ** 2))
    t *= (
        F32(1.0)
        - F32(domain.drop_tone) * f.inside
        - F32(0.45 * domain.drop_rim) * band
        - F32(0.4 * domain.drop_rim) * f.rim
        + F32(0.04) * halo
    )
    tint = np.ones((1, 1, 3), dtype=F32)
    if scene.precipitate > 0:
        density, grains = _precipitate(scene, frame, f)
        t *= F32(1.0) - np.clip(density * (F32(0.85) * grains + F32(0.2) * F32(scene.precipitate)), 0.0, 0.9)
        amount = np.clip(density * (F32(0.5) + grains), 0.0, 1.0)[..., None]
        tint = F32(1.0) - amount * (F32(1.0) - _BROWN)
    _droplets(scene, frame, t, None)
    _crystal_layers(scene, domain, frame, growth, t, None, None)
    stamp_blobs(frame, t, _blobs_px(frame, scene.debris, 1.0), -1.0)
    stamp_blobs(frame, t, _blobs_px(frame, scene.dust, 0.8), -1.0)
    ga = scene.gradient_angle
    exposure = 1.0 + rng.normal(0.0, 0.025)
    light = (
        F32(exposure)
        + F32(2.0 * domain.gradient) * (f.x * F32(np.cos(ga)) + f.y * F32(np.sin(ga)))
        - F32(2.0 * domain.vignette) * (f.x * f.x + f.y * f.y)
    )
    rgb = (t * light)[..., None] * np.asarray(domain.illumination, dtype=F32) * tint
    scale = frame.scale / _REF_SIDE
    return _noisy_uint8(rgb, domain.blur_sigma * scale, domain.noise, rng)


def _uv(scene: Scene, domain: Domain, frame: Frame, growth: float, rng: np.random.Generator) -> np.ndarray:
    f = _fields(scene, domain, frame)
    r2 = f.x * f.x + f.y * f.y
    u = F32(domain.uv_background) * (F32(1.0) - F32(0.6) * f.well_out) * (F32(1.0) - F32(0.8) * r2)
    core = np.clip(F32(1.0) - f.rho * f.rho, 0.0, 1.0)
    u = u + F32(domain.uv_drop_glow) * (F32(1.0) - smoothstep(0.7, 1.12, f.rho)) * (F32(0.85) + F32(0.3) * core)
    if scene.precipitate > 0:
        density, grains = _precipitate(scene, frame, f)
        u = u + F32(domain.uv_precipitate) * density * (F32(0.5) + grains)
    _droplets(scene, frame, None, u)
    _crystal_layers(scene, domain, frame, growth, None, u, None)
    u *= F32(1.0 + rng.normal(0.0, 0.03))
    if domain.uv_border > 0:
        b = int(round(domain.uv_border * frame.scale))
        u[:b] = 0.0
        u[-b:] = 0.0
        u[:, :b] = 0.0
        u[:, -b:] = 0.0
    scale = frame.scale / _REF_SIDE
    grey = _noisy_uint8(u, domain.uv_blur_sigma * scale, domain.uv_noise, rng)
    return np.repeat(grey[..., None], 3, axis=2)


def render_array(
    spec: DropSpec, domain: Domain, mode: Mode, seed: int, size: tuple[int, int] | None = None
) -> np.ndarray:
    """The drop as an (H, W, 3) uint8 array; ``size`` is (width, height), default the domain's image size."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    if mode == "uv" and not domain.has_uv:
        raise ValueError(f"domain {domain.name!r} has no UV imager (has_uv is false)")
    frame = Frame(*_size(domain, size))
    scene = build_scene(spec, domain, seed)
    rng = np.random.default_rng([seed, 3, MODES.index(mode)])
    if mode == "visible":
        return _visible(scene, domain, frame, spec.growth, rng)
    return _uv(scene, domain, frame, spec.growth, rng)


def render(spec: DropSpec, domain: Domain, mode: Mode, seed: int, size: tuple[int, int] | None = None) -> Image.Image:
    """The drop as an RGB PIL image (visible light or UV); same arguments give the same pixels."""
    return Image.fromarray(render_array(spec, domain, mode, seed, size))


def crystal_mask(spec: DropSpec, domain: Domain, seed: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """Boolean (H, W) mask of the crystals drawn for this drop and growth (same in both modes)."""
    frame = Frame(*_size(domain, size))
    scene = build_scene(spec, domain, seed)
    mask = np.zeros((frame.height, frame.width), dtype=bool)
    _crystal_layers(scene, domain, frame, spec.growth, None, None, mask)
    return mask
