"""Image measurements from bytes (decode, size, grey-level statistics, focus, hashes) and the QC verdict."""

from __future__ import annotations

import io
import math
import re
import warnings

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from axis_core.dataset.config import ImageQCConfig
from axis_core.dataset.model import ImageFailure, ImageMeasurement, ImageStats, sha256_hex
from axis_core.dataset.phash import dhash, phash


def _to_gray8(img: Image.Image) -> NDArray[np.uint8]:
    """8-bit grayscale array; 16-bit and float images are scaled to 0-255."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        return np.clip(arr * (255.0 / top), 0, 255).round().astype(np.uint8)
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        return np.clip(arr, 0, 255).round().astype(np.uint8)
    return np.asarray(img.convert("L"), dtype=np.uint8)


def laplacian_variance(gray: NDArray[np.uint8]) -> float:
    """Variance of the 4-neighbour Laplacian: low for blurred (out-of-focus) images."""
    g = gray.astype(np.float32)
    if g.shape[0] < 3 or g.shape[1] < 3:
        return 0.0
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4.0 * g[1:-1, 1:-1]
    return float(lap.var())


def measure_image(data: bytes, *, analysis_max_side: int = 1024) -> ImageMeasurement:
    """Decode image bytes and measure them; an undecodable image gives an ImageFailure with the reason."""
    digest = sha256_hex(data)
    if not data:
        return ImageFailure(reason="empty file", sha256=digest)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            width, height = img.size
            factor = max(1, math.ceil(max(width, height) / analysis_max_side))
            if factor > 1 and img.format == "JPEG":
                # let the JPEG decoder scale down while decoding: much faster on multi-megapixel images
                img.draft("L", (width // factor, height // factor))
            img.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # drop object reprs ("<_io.BytesIO object at 0x...>") so that the reason is the same on every run
        message = re.sub(r"\s*<[^<>]* at 0x[0-9a-fA-F]+>", "", str(exc))
        return ImageFailure(reason=f"undecodable image: {type(exc).__name__}: {message}", sha256=digest)
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    gray_img = Image.fromarray(_to_gray8(img))
    scale = max(gray_img.size) / analysis_max_side
    if scale > 1:
        gray_img = gray_img.reduce(math.ceil(scale))
    gray = np.asarray(gray_img, dtype=np.uint8)
    n = float(gray.size) or 1.0
    return ImageStats(
        sha256=digest,
        width=width,
        height=height,
        mean=float(gray.mean()),
        std=float(gray.std()),
        white_fraction=float(np.count_nonzero(gray == 255) / n),
        black_fraction=float(np.count_nonzero(gray == 0) / n),
        laplacian_var=laplacian_variance(gray),
        phash=phash(gray_img),
        dhash=dhash(gray_img),
    )


def qc_verdict(stats: ImageStats, cfg: ImageQCConfig) -> tuple[str, str] | None:
    """(reason code, detail) when an image fails QC, or None when it passes."""
    if not (cfg.min_width <= stats.width <= cfg.max_width and cfg.min_height <= stats.height <= cfg.max_height):
        return (
            "bad_size",
            f"{stats.width}x{stats.height} outside {cfg.min_width}-{cfg.max_width} x {cfg.min_height}-{cfg.max_height}",
        )
    if stats.std < cfg.min_std:
        return "blank", f"grey-level std {stats.std:.3g} < {cfg.min_std}"
    if stats.white_fraction > cfg.max_white_fraction:
        return "saturated", f"{stats.white_fraction:.1%} of pixels at 255 > {cfg.max_white_fraction:.1%}"
    if stats.black_fraction > cfg.max_black_fraction:
        return "saturated_black", f"{stats.black_fraction:.1%} of pixels at 0 > {cfg.max_black_fraction:.1%}"
    if stats.laplacian_var < cfg.min_laplacian_var:
        return "out_of_focus", f"Laplacian variance {stats.laplacian_var:.3g} < {cfg.min_laplacian_var}"
    return None
