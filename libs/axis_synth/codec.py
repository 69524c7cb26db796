"""Encode rendered drops as JPEG/PNG bytes and write real-size JPEG files."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from axis_synth.domain import Domain
from axis_synth.render import render
from axis_synth.spec import DropSpec, Mode


def _as_image(img: Image.Image | np.ndarray) -> Image.Image:
    return img if isinstance(img, Image.Image) else Image.fromarray(np.asarray(img, dtype=np.uint8))


def to_jpeg_bytes(img: Image.Image | np.ndarray, quality: int = 90) -> bytes:
    """Baseline JPEG bytes of an RGB image (as an imager would store it)."""
    if not 1 <= quality <= 100:
        raise ValueError(f"JPEG quality must be 1..100, got {quality}")
    buf = io.BytesIO()
    _as_image(img).convert("RGB").save(buf, format="JPEG", quality=quality, optimize=False)
    return buf.getvalue()


def to_png_bytes(img: Image.Image | np.ndarray) -> bytes:
    """Lossless PNG bytes of an image."""
    buf = io.BytesIO()
    _as_image(img).save(buf, format="PNG")
    return buf.getvalue()


def real_size_jpeg(spec: DropSpec, domain: Domain, mode: Mode, seed: int, quality: int = 90) -> bytes:
    """JPEG bytes of the drop at the domain's real imager size (about 2300x1920)."""
    return to_jpeg_bytes(render(spec, domain, mode, seed, size=domain.real_size), quality)


def write_jpeg(
    path: str | Path,
    spec: DropSpec,
    domain: Domain,
    mode: Mode,
    seed: int,
    size: tuple[int, int] | None = None,
    quality: int = 90,
) -> Path:
    """Render and write one JPEG file (real imager size unless ``size`` is given); returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    img = render(spec, domain, mode, seed, size=size if size is not None else domain.real_size)
    out.write_bytes(to_jpeg_bytes(img, quality))
    return out
