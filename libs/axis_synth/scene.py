"""Resolution-free geometry of a drop: drop outline, crystals, droplets, precipitate and dust.

All lengths are fractions of the image's short side with the origin at the image centre, so the
same scene renders at 224 px and at real size, in visible light and in UV, with everything in the
same place. The geometry depends only on the drop (spec + domain + drop seed); growth scales the
crystals at render time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from axis_synth.domain import Domain
from axis_synth.spec import DropSpec


@dataclass(frozen=True)
class Crystal:
    """A convex crystal outline with the growth at which it appears and its UV brightness."""

    verts: np.ndarray
    onset: float
    uv_gain: float
    kind: str

    def grown(self, growth: float) -> np.ndarray | None:
        """Outline at a drop growth in [0, 1], scaled about its centre; None before it appears."""
        if growth <= self.onset:
            return None
        g = (growth - self.onset) / (1.0 - self.onset)
        s = 0.35 + 0.65 * min(g, 1.0)
        c = self.verts.mean(axis=0)
        return c + (self.verts - c) * s


@dataclass(frozen=True)
class DropShape:
    """Ellipse with two low harmonics of the radius (an irregular oval)."""

    cx: float
    cy: float
    a: float
    b: float
    angle: float
    h2: float
    p2: float
    h3: float
    p3: float


@dataclass(frozen=True)
class Scene:
    """Everything drawn for one drop, independent of mode and image size."""

    drop: DropShape
    well_centre: tuple[float, float]
    gradient_angle: float
    light_angle: float
    crystals: list[Crystal] = field(default_factory=list)
    droplets: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))
    dust: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    debris: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    precipitate: float = 0.0
    texture_seed: int = 0


def _rot(points: np.ndarray, angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return points @ np.array([[c, s], [-s, c]])


def _points_in_drop(rng: np.random.Generator, drop: DropShape, n: int, max_rho: float) -> np.ndarray:
    """Uniform random points inside the drop's ellipse, up to ``max_rho`` of its radius."""
    r = max_rho * np.sqrt(rng.random(n))
    t = rng.random(n) * 2.0 * np.pi
    local = np.stack([drop.a * r * np.cos(t), drop.b * r * np.sin(t)], axis=1)
    return _rot(local, drop.angle) + np.array([drop.cx, drop.cy])


def _spread_points(rng: np.random.Generator, drop: DropShape, sizes: np.ndarray, max_rho: float) -> np.ndarray:
    """Points inside the drop, re-drawn a few times so that objects of these sizes rarely overlap."""
    pts = _points_in_drop(rng, drop, len(sizes), max_rho)
    for i in range(1, len(sizes)):
        for _ in range(20):
            gap = np.linalg.norm(pts[:i] - pts[i], axis=1) - 0.6 * (sizes[:i] + sizes[i])
            if gap.min() > 0:
                break
            pts[i] = _points_in_drop(rng, drop, 1, max_rho)[0]
    return pts


def _outline(rng: np.random.Generator, kind: str, length: float) -> np.ndarray:
    """Convex outline of a crystal habit, centred at the origin, long axis along x."""
    h = length / 2.0
    if kind == "prism":  # elongated hexagon, like the sample's crystals
        w = h * rng.uniform(0.55, 0.9)
        c = w * rng.uniform(0.4, 0.8)
        pts = [(-h, 0), (-h + c, w), (h - c, w), (h, 0), (h - c, -w), (-h + c, -w)]
    elif kind == "bipyramid":  # rhombus with truncated tips
        w = h * rng.uniform(0.6, 0.95)
        t = h * rng.uniform(0.1, 0.25)
        pts = [(-h, -t * 0.6), (-h, t * 0.6), (0, w), (h, t * 0.6), (h, -t * 0.6), (0, -w)]
    elif kind == "needle":
        w = max(h * rng.uniform(0.05, 0.09), 0.0028)
        tip = w * 1.5
        pts = [(-h, 0), (-h + tip, w), (h - tip, w), (h, 0), (h - tip, -w), (-h + tip, -w)]
    else:  # "block": a rectangle with chamfered corners
        w = h * rng.uniform(0.5, 0.95)
        c = min(h, w) * rng.uniform(0.15, 0.35)
        pts = [(-h + c, -w), (h - c, -w), (h, -w + c), (h, w - c), (h - c, w), (-h + c, w), (-h, w - c), (-h, -w + c)]
    out = np.asarray(pts, dtype=np.float64)
    out += rng.normal(0.0, length * 0.02, out.shape)
    return out


def _place(outline: np.ndarray, angle: float, centre: np.ndarray) -> np.ndarray:
    return _rot(outline, angle) + centre


def _onsets(rng: np.random.Generator, n: int, spread: float) -> np.ndarray:
    on = rng.uniform(0.0, spread, n)
    if n:
        on[0] = 0.0
    return on


def _single_crystals(rng: np.random.Generator, spec: DropSpec, domain: Domain, drop: DropShape) -> list[Crystal]:
    n = 1 if spec.subtype == "single" else int(rng.integers(2, 6))
    lo, hi = domain.crystal_size
    lengths = rng.uniform(lo, hi, n)
    centres = _spread_points(rng, drop, lengths, 0.72)
    onsets = _onsets(rng, n, 0.4)
    out = []
    for i in range(n):
        kind = str(rng.choice(["prism", "prism", "bipyramid", "block"]))
        shape = _outline(rng, kind, lengths[i])
        out.append(Crystal(_place(shape, rng.uniform(0, np.pi), centres[i]), onsets[i], rng.uniform(0.8, 1.1), "facet"))
    return out


def _needles(rng: np.random.Generator, spec: DropSpec, domain: Domain, drop: DropShape) -> list[Crystal]:
    lo, hi = domain.crystal_size
    out = []
    if spec.subtype == "clusters":
        hubs = _points_in_drop(rng, drop, int(rng.integers(1, 4)), 0.6)
        onsets = _onsets(rng, len(hubs), 0.3)
        for hub, onset in zip(hubs, onsets, strict=True):
            for _ in range(int(rng.integers(5, 13))):
                length = rng.uniform(0.6, 1.2) * hi
                ang = rng.uniform(0, 2 * np.pi)
                centre = hub + 0.5 * length * np.array([np.cos(ang), np.sin(ang)])
                out.append(Crystal(_place(_outline(rng, "needle", length), ang, centre), onset, 0.9, "needle"))
        return out
    n = int(rng.integers(4, 13))
    centres = _points_in_drop(rng, drop, n, 0.75)
    onsets = _onsets(rng, n, 0.4)
    for i in range(n):
        length = rng.uniform(0.7, 1.5) * (lo + hi) / 2.0
        shape = _outline(rng, "needle", length)
        out.append(Crystal(_place(shape, rng.uniform(0, np.pi), centres[i]), onsets[i], 0.9, "needle"))
    return out


def _microcrystals(rng: np.random.Generator, spec: DropSpec, domain: Domain, drop: DropShape) -> list[Crystal]:
    lo = domain.crystal_size[0]
    if spec.subtype == "clumps":
        hubs = _points_in_drop(rng, drop, int(rng.integers(2, 5)), 0.65)
        centres = np.concatenate(
            [hub + rng.normal(0.0, lo * 0.4, (int(rng.integers(8, 20)), 2)) for hub in hubs],
            axis=0,
        )
    else:
        centres = _points_in_drop(rng, drop, int(rng.integers(30, 90)), 0.9)
    onsets = _onsets(rng, len(centres), 0.3)
    out = []
    for i, c in enumerate(centres):
        kind = str(rng.choice(["block", "bipyramid", "prism"]))
        shape = _outline(rng, kind, lo * rng.uniform(0.3, 0.6))
        out.append(Crystal(_place(shape, rng.uniform(0, np.pi), c), onsets[i], rng.uniform(0.6, 1.0), "micro"))
    return out


def _droplets(rng: np.random.Generator, spec: DropSpec, drop: DropShape) -> np.ndarray:
    if spec.subtype == "dense_droplets":
        n, rlo, rhi = int(rng.integers(40, 90)), 0.005, 0.018
    else:
        n, rlo, rhi = int(rng.integers(8, 25)), 0.008, 0.035
    r = np.exp(rng.uniform(np.log(rlo), np.log(rhi), n))
    xy = _points_in_drop(rng, drop, n, 0.9)
    return np.concatenate([xy, r[:, None]], axis=1)


def _specks(
    rng: np.random.Generator, n: int, centres: np.ndarray, spread: float, size: tuple[float, float]
) -> np.ndarray:
    """Rows (x, y, sigma, darkness) of small dark specks scattered around ``centres``."""
    if n == 0:
        return np.zeros((0, 4))
    idx = rng.integers(0, len(centres), n)
    xy = centres[idx] + rng.normal(0.0, spread, (n, 2))
    sigma = rng.uniform(size[0], size[1], n)
    dark = rng.uniform(0.2, 0.7, n)
    return np.concatenate([xy, sigma[:, None], dark[:, None]], axis=1)


def _fibre(rng: np.random.Generator, drop: DropShape) -> np.ndarray:
    """A curved fibre as a chain of overlapping specks (debris, not a crystal: curved and soft)."""
    start = _points_in_drop(rng, drop, 1, 0.8)[0]
    n = int(rng.integers(20, 45))
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0.0, 0.3, n))
    step = 0.0025
    xy = start + np.cumsum(step * np.stack([np.cos(heading), np.sin(heading)], axis=1), axis=0)
    return np.concatenate([xy, np.full((n, 1), 0.0022), np.full((n, 1), 0.3)], axis=1)


def build_scene(spec: DropSpec, domain: Domain, seed: int) -> Scene:
    """Geometry of a drop from its spec, the facility's domain and the drop seed."""
    rng = np.random.default_rng([spec.drop_seed if spec.drop_seed is not None else seed, 7])
    rlo, rhi = domain.drop_radius
    a = rng.uniform(rlo, rhi)
    drop = DropShape(
        cx=rng.uniform(-0.1, 0.1),
        cy=rng.uniform(-0.1, 0.1),
        a=a,
        b=a * rng.uniform(0.72, 0.95),
        angle=rng.uniform(0, np.pi),
        h2=rng.uniform(0.0, 0.04),
        p2=rng.uniform(0, 2 * np.pi),
        h3=rng.uniform(0.0, 0.03),
        p3=rng.uniform(0, 2 * np.pi),
    )
    well = (float(rng.normal(0.0, 0.03)), float(rng.normal(0.0, 0.03)))
    n_dust = int(rng.poisson(12 * domain.dust))
    dust = _specks(rng, n_dust, np.zeros((1, 2)), 0.3, (0.0015, 0.0045))
    # drawn before the outcome-specific content so the same drop seed gives the same drop for every outcome
    gradient_angle = float(rng.uniform(0, 2 * np.pi))
    light_angle = float(rng.uniform(0, 2 * np.pi))
    texture_seed = int(rng.integers(0, 2**31 - 1))
    scene_kwargs: dict[str, object] = {}
    crystals: list[Crystal] = []
    if spec.outcome == "single_crystals":
        crystals = _single_crystals(rng, spec, domain, drop)
    elif spec.outcome == "needles":
        crystals = _needles(rng, spec, domain, drop)
    elif spec.outcome == "microcrystals":
        crystals = _microcrystals(rng, spec, domain, drop)
    elif spec.outcome == "phase_separation":
        scene_kwargs["droplets"] = _droplets(rng, spec, drop)
    elif spec.outcome == "precipitate":
        scene_kwargs["precipitate"] = 1.0 if spec.subtype == "heavy" else 0.45
    elif spec.outcome == "clear" and spec.subtype == "debris":
        centres = _points_in_drop(rng, drop, int(rng.integers(1, 4)), 0.8)
        clumps = _specks(rng, int(rng.integers(6, 20)), centres, 0.008, (0.002, 0.006))
        fibres = [_fibre(rng, drop) for _ in range(int(rng.integers(1, 3)))]
        scene_kwargs["debris"] = np.concatenate([clumps, *fibres], axis=0)
    return Scene(
        drop=drop,
        well_centre=well,
        gradient_angle=gradient_angle,
        light_angle=light_angle,
        crystals=crystals,
        dust=dust,
        texture_seed=texture_seed,
        **scene_kwargs,  # type: ignore[arg-type]
    )
