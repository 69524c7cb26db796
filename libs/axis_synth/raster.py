"""Vectorised numpy rasterisers for the shapes of a drop scene (polygons, circles, blobs, ellipses)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

F32 = np.float32


@dataclass(frozen=True)
class Frame:
    """Maps scene units (fractions of the short side, origin at the image centre) to pixels."""

    width: int
    height: int

    @property
    def scale(self) -> float:
        """Pixels per scene unit."""
        return float(min(self.width, self.height))

    def to_px(self, xy: np.ndarray) -> np.ndarray:
        """Scene coordinates (..., 2) to pixel coordinates (..., 2)."""
        out = np.asarray(xy, dtype=np.float64) * self.scale
        out[..., 0] += self.width / 2.0
        out[..., 1] += self.height / 2.0
        return out

    def unit_grid(self) -> tuple[np.ndarray, np.ndarray]:
        """Scene coordinates of every pixel centre, as float32 (x row vector, y column vector)."""
        s = self.scale
        x = ((np.arange(self.width, dtype=F32) + 0.5) - self.width / 2.0) / s
        y = ((np.arange(self.height, dtype=F32) + 0.5) - self.height / 2.0) / s
        return x[None, :], y[:, None]


@dataclass(frozen=True)
class Crop:
    """A rectangular window of the image with the pixel-centre coordinates inside it."""

    ys: slice
    xs: slice
    x: np.ndarray
    y: np.ndarray


def crop_around(frame: Frame, xmin: float, xmax: float, ymin: float, ymax: float, pad: float) -> Crop | None:
    """Window covering a pixel-space box plus padding, clipped to the image; None when it falls outside."""
    x0 = max(int(np.floor(xmin - pad)), 0)
    x1 = min(int(np.ceil(xmax + pad)) + 1, frame.width)
    y0 = max(int(np.floor(ymin - pad)), 0)
    y1 = min(int(np.ceil(ymax + pad)) + 1, frame.height)
    if x1 <= x0 or y1 <= y0:
        return None
    x = np.arange(x0, x1, dtype=F32)[None, :] + F32(0.5)
    y = np.arange(y0, y1, dtype=F32)[:, None] + F32(0.5)
    return Crop(slice(y0, y1), slice(x0, x1), x, y)


@dataclass(frozen=True)
class PolygonField:
    """Signed distance (pixels, negative inside) of a convex polygon and the index of the nearest edge."""

    crop: Crop
    dist: np.ndarray
    edge: np.ndarray
    normals: np.ndarray
    inradius: float


def polygon_field(frame: Frame, verts_px: np.ndarray, pad: float, crop: Crop | None = None) -> PolygonField | None:
    """Half-plane distance field of a convex polygon (pixels, either winding), on ``crop`` or its own window."""
    v = np.asarray(verts_px, dtype=np.float64)
    if crop is None:
        crop = crop_around(frame, v[:, 0].min(), v[:, 0].max(), v[:, 1].min(), v[:, 1].max(), pad)
    if crop is None:
        return None
    nxt = np.roll(v, -1, axis=0)
    e = nxt - v
    normals = np.stack([e[:, 1], -e[:, 0]], axis=1)
    normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-9)
    centre = v.mean(axis=0)
    offs = np.einsum("ij,ij->i", normals, v)
    if np.einsum("ij,j->i", normals, centre).mean() > offs.mean():
        normals, offs = -normals, -offs
    nx = normals[:, 0].astype(F32)[:, None, None]
    ny = normals[:, 1].astype(F32)[:, None, None]
    d = crop.x[None] * nx + crop.y[None] * ny - offs.astype(F32)[:, None, None]
    edge = d.argmax(axis=0)
    dist = np.take_along_axis(d, edge[None], axis=0)[0]
    inradius = float(max(-(normals @ centre - offs).max(), 0.5))
    return PolygonField(crop, dist, edge, normals, inradius)


def circle_dist(frame: Frame, cx: float, cy: float, r: float, pad: float) -> tuple[Crop, np.ndarray] | None:
    """Signed distance (pixels) to a circle's boundary inside a padded window around it."""
    crop = crop_around(frame, cx - r, cx + r, cy - r, cy + r, pad)
    if crop is None:
        return None
    d = np.sqrt((crop.x - F32(cx)) ** 2 + (crop.y - F32(cy)) ** 2) - F32(r)
    return crop, d


def stamp_blobs(frame: Frame, target: np.ndarray, blobs_px: np.ndarray, sign: float) -> None:
    """Multiply ``target`` by (1 + sign * a * gauss) for each blob row (x, y, sigma, a), all in pixels."""
    for x, y, s, a in blobs_px:
        crop = crop_around(frame, x, x, y, y, 3.0 * s + 1.0)
        if crop is None:
            continue
        g = np.exp(-((crop.x - F32(x)) ** 2 + (crop.y - F32(y)) ** 2) / F32(2.0 * s * s))
        target[crop.ys, crop.xs] *= 1.0 + F32(sign * a) * g


def smoothstep(lo: float, hi: float, x: np.ndarray) -> np.ndarray:
    """Hermite step from 0 at ``lo`` to 1 at ``hi``."""
    t = np.clip((x - F32(lo)) / F32(hi - lo), 0.0, 1.0)
    return t * t * (F32(3.0) - F32(2.0) * t)


def value_noise(rng: np.random.Generator, frame: Frame, cell_px: float) -> np.ndarray:
    """Smooth random field in [0, 1]: uniform noise on a grid of ``cell_px`` cells, bilinearly upsampled."""
    gw = max(int(np.ceil(frame.width / max(cell_px, 1.0))) + 1, 2)
    gh = max(int(np.ceil(frame.height / max(cell_px, 1.0))) + 1, 2)
    small = rng.random((gh, gw), dtype=F32)
    img = Image.fromarray(small).resize((frame.width, frame.height), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=F32)


def blur_uint8(arr: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of a uint8 image (H, W) or (H, W, 3) with PIL; a no-op for tiny sigma."""
    if sigma < 0.2:
        return arr
    img = Image.fromarray(arr)
    return np.asarray(img.filter(ImageFilter.GaussianBlur(radius=sigma)))
