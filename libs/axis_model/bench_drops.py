"""Synthetic real-size drop images for the inference benchmark: clear cases and searched borderline ones."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

REAL_SIZE = (2295, 1920)


def render_drop(
    rng: np.random.Generator, crystal: bool, size: tuple[int, int] = REAL_SIZE, *, contrast: float = 1.0
) -> bytes:
    """A simple visible-light drop as an RGB JPEG: bright straight-edged crystals if ``crystal``, else dark blobs.

    ``contrast`` < 1 blends the crystals or blobs into the drop (0 = a clear drop): hard, borderline cases.
    """
    w, h = size[0] // 4, size[1] // 4
    img = Image.new("L", (w, h), int(rng.integers(165, 195)))
    draw = ImageDraw.Draw(img)
    cx, cy = w / 2 + rng.normal(0, w * 0.03), h / 2 + rng.normal(0, h * 0.03)
    rx, ry = w * rng.uniform(0.33, 0.4), h * rng.uniform(0.35, 0.42)
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=int(rng.integers(195, 215)), outline=90, width=6)
    if crystal:
        drop = np.asarray(img, dtype=np.float32)
        for _ in range(int(rng.integers(2, 6))):
            px, py = cx + rng.uniform(-0.55, 0.55) * rx, cy + rng.uniform(-0.55, 0.55) * ry
            radius, sides, angle = rng.uniform(25, 70), int(rng.integers(3, 7)), rng.uniform(0, np.pi)
            pts = [
                (
                    px + radius * np.cos(angle + 2 * np.pi * k / sides),
                    py + radius * np.sin(angle + 2 * np.pi * k / sides),
                )
                for k in range(sides)
            ]
            draw.polygon(pts, fill=int(rng.integers(235, 256)), outline=15, width=4)
        if contrast != 1.0:
            blend = drop + contrast * (np.asarray(img, dtype=np.float32) - drop)
            img = Image.fromarray(np.clip(np.round(blend), 0, 255).astype(np.uint8))
    else:
        blobs = Image.new("L", (w, h), 0)
        bdraw = ImageDraw.Draw(blobs)
        for _ in range(int(rng.integers(6, 20))):
            px, py = cx + rng.uniform(-0.7, 0.7) * rx, cy + rng.uniform(-0.7, 0.7) * ry
            r = rng.uniform(10, 40)
            bdraw.ellipse((px - r, py - r * rng.uniform(0.6, 1.4), px + r, py + r), fill=int(rng.integers(60, 130)))
        blobs = blobs.filter(ImageFilter.GaussianBlur(rng.uniform(4, 8)))
        dark = np.asarray(blobs, np.float32) * contrast
        img = Image.fromarray(np.clip(np.round(np.asarray(img, np.float32) - dark), 0, 255).astype(np.uint8))
    noisy = np.asarray(img, dtype=np.float32) + rng.normal(0, 3, (h, w)).astype(np.float32)
    gray = Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).resize(size, Image.Resampling.BILINEAR)
    # pale green-grey like the real samples
    rgb = Image.merge("RGB", (gray.point(lambda v: int(v * 0.95)), gray, gray.point(lambda v: int(v * 0.92))))
    buf = io.BytesIO()
    rgb.save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def synthetic_set(n: int, seed: int, size: tuple[int, int] = REAL_SIZE) -> tuple[list[bytes], np.ndarray]:
    """n JPEGs (real size by default), alternating crystal (label 0) and other (label 1)."""
    rng = np.random.default_rng(seed)
    labels = np.array([i % 2 for i in range(n)], dtype=np.int64)
    return [render_drop(rng, crystal=bool(lab == 0), size=size) for lab in labels], labels


def borderline_drops(
    probability: Callable[[bytes], float],
    n: int,
    seed: int,
    size: tuple[int, int] = REAL_SIZE,
    *,
    band: tuple[float, float] = (0.2, 0.8),
    steps: int = 8,
) -> tuple[list[bytes], list[float]]:
    """n 'other' drops whose precipitate contrast is bisected until ``probability`` lands in ``band``.

    A trained model scores the clear cases ~0 or ~1, where softmax saturation hides numeric errors; these
    images sit where a change of the log-odds shows in full in the probability. Returns the images and the
    probabilities found (an image may end outside the band if ``steps`` run out).
    """
    images, probs = [], []
    for k in range(n):
        lo, hi = 0.3, 1.0  # contrast: low -> a clear drop (p ~ 1 for crystal), high -> dark precipitate (p ~ 0)
        data, p = b"", float("nan")
        for _ in range(steps):
            mid = (lo + hi) / 2
            data = render_drop(np.random.default_rng([seed, k]), crystal=False, size=size, contrast=mid)
            p = probability(data)
            if band[0] <= p <= band[1]:
                break
            lo, hi = (mid, hi) if p > band[1] else (lo, mid)
        images.append(data)
        probs.append(p)
    return images, probs
