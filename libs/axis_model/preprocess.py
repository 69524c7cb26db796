"""Fast image preprocessing: bytes -> grayscale -> 3 x size x size float32, ImageNet-normalised."""

from __future__ import annotations

import io
import os
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


class ImageRejected(ValueError):
    """An image that cannot be scored; ``reason`` says why (the service dead-letters it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class PreprocessConfig(BaseModel):
    """How an image becomes model input; stored in every bundle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    size: int = Field(default=518, ge=14)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    max_pixels: int = Field(default=60_000_000, ge=1)
    # 16-bit images: "full_range" maps 0..65535 to 0..255; "stretch" maps the image's min..max to 0..255
    # (for 12-bit data stored in 16-bit containers, which full range would render nearly black).
    high_bit_depth: Literal["full_range", "stretch"] = "full_range"
    # Colour JPEGs are always decoded to their luma (Y) channel only: the gray image that decoding to RGB and
    # converting gives (1-2 levels apart only where the RGB decode clips: 1 pixel of 4.4 M in the sample),
    # 30 % faster. draft_factor > 0 also DCT-decodes them at the smallest 1/2, 1/4 or 1/8 scale that stays
    # >= draft_factor * size: 2-5x faster again, but the pixels differ from a full decode + bicubic resize
    # (at 224 px from 2295x1920: 17-37 % of pixels, up to 20-36 levels at edges), which moved a trained
    # benchmark model's probabilities by 0.018-0.035, as much as +-1 level of noise does. 0 (the default)
    # keeps the reference's pixels.
    draft_factor: float = Field(default=0.0, ge=0.0)


def _open(data: bytes) -> Image.Image:
    if not data:
        raise ImageRejected("empty image: 0 bytes")
    try:
        # No warnings.catch_warnings here: it is not thread-safe, and decoding runs on worker threads.
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageRejected(f"image too large (decompression-bomb guard): {exc}") from None
    except UnidentifiedImageError:
        raise ImageRejected(f"undecodable image: not a recognised JPEG/PNG/TIFF ({len(data)} bytes)") from None
    except Exception as exc:  # PIL raises many types for malformed headers
        raise ImageRejected(f"undecodable image: {type(exc).__name__}: {exc}") from None


def _scale_to_u8(arr: np.ndarray, full_scale: float, config: PreprocessConfig) -> np.ndarray:
    """High bit depth -> uint8 by the full range of the type (or the image's own range), never by clipping."""
    a = arr.astype(np.float32)
    lo, hi = (float(a.min()), float(a.max())) if config.high_bit_depth == "stretch" else (0.0, full_scale)
    if hi <= lo:
        return np.zeros(a.shape, dtype=np.uint8)
    return np.clip((a - lo) * (255.0 / (hi - lo)) + 0.5, 0, 255).astype(np.uint8)


def _full_scale(arr: np.ndarray) -> float:
    """The value that means 'white' for an array of this type and content."""
    if arr.dtype.kind in "iu":
        return float(np.iinfo(arr.dtype).max) if arr.dtype.itemsize <= 2 or arr.max() > 65535 else 65535.0
    top = float(arr.max()) if arr.size else 1.0
    return 1.0 if top <= 1.0 else (255.0 if top <= 255.0 else 65535.0)


def _to_gray_u8(img: Image.Image, config: PreprocessConfig) -> np.ndarray:
    """Any PIL mode -> HxW uint8 grayscale, scaling high bit depths properly (PIL's convert('L') would clip)."""
    if img.mode.startswith("I;16"):
        return _scale_to_u8(np.asarray(img), 65535.0, config)
    if img.mode in ("I", "F"):
        arr = np.asarray(img)
        return _scale_to_u8(arr, _full_scale(arr), config)
    if img.mode != "L":
        img = img.convert("L")
    return np.asarray(img, dtype=np.uint8)


def _tiff_fallback(data: bytes, config: PreprocessConfig) -> np.ndarray:
    """TIFFs PIL cannot read (16-bit RGB, multi-sample): tifffile, first page, channel mean."""
    import tifffile

    try:
        arr = np.asarray(tifffile.imread(io.BytesIO(data), key=0))
    except Exception as exc:
        raise ImageRejected(f"undecodable TIFF: {type(exc).__name__}: {exc}") from None
    if arr.ndim == 3:
        arr = arr.mean(axis=-1).astype(arr.dtype) if arr.shape[-1] in (3, 4) else arr[0]
    if arr.ndim != 2 or arr.size == 0:
        raise ImageRejected(f"unsupported TIFF layout {arr.shape}")
    if arr.size > config.max_pixels:
        raise ImageRejected(f"image too large: {arr.size} pixels > limit {config.max_pixels}")
    return arr if arr.dtype == np.uint8 else _scale_to_u8(arr, _full_scale(arr), config)


def decode_gray(data: bytes, config: PreprocessConfig) -> np.ndarray:
    """Decode JPEG/PNG/TIFF bytes to a HxW uint8 grayscale array (colour JPEGs: luma channel only)."""
    img = _open(data)
    width, height = img.size
    if width <= 0 or height <= 0:
        raise ImageRejected(f"image has no pixels ({width}x{height})")
    if width * height > config.max_pixels:
        raise ImageRejected(
            f"image too large: {width}x{height} = {width * height} pixels > limit {config.max_pixels} "
            "(decompression-bomb guard; raise max_pixels if such images are real)"
        )
    if img.format == "JPEG":
        # Luma only (a no-op for gray or CMYK JPEGs); with draft_factor, also a DCT-domain downscale by 1/2,
        # 1/4 or 1/8 while staying >= draft_factor * size.
        target = int(round(config.size * config.draft_factor)) if config.draft_factor > 0 else None
        img.draft("L", (target, target) if target else None)
    try:
        img.load()
        return _to_gray_u8(img, config)
    except ImageRejected:
        raise
    except Exception as exc:
        if img.format == "TIFF":
            return _tiff_fallback(data, config)
        raise ImageRejected(f"truncated or corrupt {img.format or 'image'}: {type(exc).__name__}: {exc}") from None


def normalise(gray: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """HxW uint8 grayscale at model size -> 3xHxW float32, ImageNet mean/std per channel."""
    x = gray.astype(np.float32) * np.float32(1.0 / 255.0)
    mean = np.asarray(config.mean, dtype=np.float32)[:, None, None]
    inv_std = (1.0 / np.asarray(config.std, dtype=np.float32))[:, None, None]
    return (x[None, :, :] - mean) * inv_std


def resize_gray(gray: np.ndarray, size: int) -> np.ndarray:
    """Bicubic resize of a grayscale array to size x size (aspect ratio not kept, as in AXIS)."""
    if gray.shape == (size, size):
        return gray
    return np.asarray(Image.fromarray(gray, mode="L").resize((size, size), Image.Resampling.BICUBIC))


def preprocess_bytes(data: bytes, config: PreprocessConfig) -> np.ndarray:
    """Image file bytes -> model input (3 x size x size float32); raises ImageRejected."""
    return normalise(resize_gray(decode_gray(data, config), config.size), config)


def preprocess_batch(items: Sequence[bytes], config: PreprocessConfig, *, parallel: bool = True) -> np.ndarray:
    """Several image files -> N x 3 x size x size float32 (raises ImageRejected for the first bad one, in order).

    With ``parallel`` the images are decoded and resized on one thread per CPU core (PIL releases the GIL while
    it decodes and resamples): the same pixels, about 2x faster on 2 cores while the model is not running.
    """
    out = np.empty((len(items), 3, config.size, config.size), dtype=np.float32)

    def fill(i: int) -> None:
        out[i] = preprocess_bytes(items[i], config)

    if parallel and len(items) > 1 and _cpu_count() > 1:
        for future in [_decode_pool().submit(fill, i) for i in range(len(items))]:
            future.result()
    else:
        for i in range(len(items)):
            fill(i)
    return out


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _decode_pool() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=_cpu_count(), thread_name_prefix="axis-decode")
        return _pool


def _forget_pool_after_fork() -> None:
    # A forked child inherits the executor object but not its threads: start a fresh one there when needed.
    global _pool, _pool_lock
    _pool, _pool_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def random_flip(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Training augmentation: horizontal and/or vertical flip, each with p=0.5 (no crops: they cut crystals out)."""
    out = pixels
    if rng.random() < 0.5:
        out = out[..., :, ::-1]
    if rng.random() < 0.5:
        out = out[..., ::-1, :]
    return np.ascontiguousarray(out)
