"""Image bytes -> model input: formats, bit depths, real-size JPEGs and rejected images."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
from axis_model.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ImageRejected,
    PreprocessConfig,
    decode_gray,
    preprocess_batch,
    preprocess_bytes,
    random_flip,
)
from PIL import Image
from sample_images import samples_dir

pytestmark = pytest.mark.unit

SAMPLES = samples_dir()


def _encode(img: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _gradient(h: int = 64, w: int = 80) -> np.ndarray:
    return np.tile(np.linspace(0, 255, w, dtype=np.float64), (h, 1)).round().astype(np.uint8)


def test_gray_png_becomes_three_identical_normalised_channels() -> None:
    gray = _gradient()
    x = preprocess_bytes(_encode(Image.fromarray(gray), "PNG"), PreprocessConfig(size=28))
    assert x.shape == (3, 28, 28) and x.dtype == np.float32
    for c in range(3):
        raw = x[c] * IMAGENET_STD[c] + IMAGENET_MEAN[c]
        np.testing.assert_allclose(raw, x[0] * IMAGENET_STD[0] + IMAGENET_MEAN[0], atol=1e-5)
    white = preprocess_bytes(_encode(Image.new("L", (30, 30), 255), "PNG"), PreprocessConfig(size=14))
    np.testing.assert_allclose(white[:, 0, 0], [(1 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD, strict=True)])


def test_rgb_jpeg_and_tiff_decode_to_the_same_gray_as_png() -> None:
    rgb = Image.fromarray(np.stack([_gradient()] * 3, axis=-1))
    cfg = PreprocessConfig(size=28)
    png = preprocess_bytes(_encode(rgb, "PNG"), cfg)
    tif = preprocess_bytes(_encode(rgb, "TIFF"), cfg)
    jpg = preprocess_bytes(_encode(rgb, "JPEG", quality=95), cfg)  # luma channel only
    np.testing.assert_array_equal(png, tif)
    assert np.abs(png - jpg).mean() < 0.03  # about one gray level


def test_16bit_gray_tiff_is_scaled_not_clipped() -> None:
    gray8 = _gradient()
    gray16 = gray8.astype(np.uint16) * 257  # same picture, full 16-bit range
    buf = io.BytesIO()
    tifffile.imwrite(buf, gray16)
    cfg = PreprocessConfig(size=28)
    decoded = decode_gray(buf.getvalue(), cfg)
    assert decoded.min() == 0 and decoded.max() == 255
    np.testing.assert_array_equal(decoded, gray8)
    np.testing.assert_allclose(
        preprocess_bytes(buf.getvalue(), cfg), preprocess_bytes(_encode(Image.fromarray(gray8), "PNG"), cfg), atol=1e-6
    )


def test_16bit_rgb_tiff_falls_back_to_tifffile() -> None:
    gray16 = _gradient().astype(np.uint16) * 257
    buf = io.BytesIO()
    tifffile.imwrite(buf, np.stack([gray16] * 3, axis=-1))
    np.testing.assert_array_equal(decode_gray(buf.getvalue(), PreprocessConfig(size=28)), _gradient())


def test_12bit_data_in_16bit_tiff_can_be_stretched() -> None:
    gray12 = (_gradient().astype(np.uint16) * 16).clip(0, 4095)
    buf = io.BytesIO()
    tifffile.imwrite(buf, gray12)
    decoded = decode_gray(buf.getvalue(), PreprocessConfig(size=28, high_bit_depth="stretch"))
    assert decoded.min() == 0 and decoded.max() == 255


@pytest.mark.skipif(not (SAMPLES / "axis-sample-visible.jpg").exists(), reason="real samples not present")
def test_real_size_jpegs_default_decode_keeps_the_reference_pixels() -> None:
    data = (SAMPLES / "axis-sample-visible.jpg").read_bytes()
    reference = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.int16)  # full RGB decode + convert
    luma = decode_gray(data, PreprocessConfig(size=224)).astype(np.int16)  # Y channel only, full scale
    assert luma.shape == reference.shape == (1920, 2295)
    # equal except where the RGB decode clips (1 pixel of 4.4 M in this sample, 2 levels)
    assert np.abs(luma - reference).max() <= 2 and np.mean(luma != reference) < 1e-4
    batch = preprocess_batch([data, (SAMPLES / "axis-sample-uv.jpg").read_bytes()], PreprocessConfig(size=518))
    assert batch.shape == (2, 3, 518, 518) and np.isfinite(batch).all()


@pytest.mark.skipif(not (SAMPLES / "axis-sample-visible.jpg").exists(), reason="real samples not present")
def test_reduced_jpeg_decoding_is_opt_in_and_close_to_full_decode() -> None:
    data = (SAMPLES / "axis-sample-visible.jpg").read_bytes()
    reduced_cfg = PreprocessConfig(size=224, draft_factor=2)
    assert decode_gray(data, reduced_cfg).shape[1] <= 2295 / 4 + 1  # DCT-decoded at 1/4 scale (>= 448 px)
    fast = preprocess_bytes(data, reduced_cfg)
    full = preprocess_bytes(data, PreprocessConfig(size=224))
    assert fast.shape == full.shape == (3, 224, 224)
    diff = np.abs(fast - full)
    assert 0 < diff.mean() < 0.02  # not identical (the reason it is opt-in), < 1 gray level on average


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "0 bytes"),
        (b"this is not an image at all", "undecodable"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 50, "undecodable"),
    ],
)
def test_bad_bytes_are_rejected_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ImageRejected, match=reason) as info:
        preprocess_bytes(data, PreprocessConfig(size=28))
    assert reason in info.value.reason


def test_truncated_jpeg_is_rejected() -> None:
    noise = np.random.default_rng(0).integers(0, 255, (400, 400), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), "JPEG", quality=90)
    with pytest.raises(ImageRejected, match="truncated or corrupt"):
        preprocess_bytes(data[: len(data) // 2], PreprocessConfig(size=28))


def test_decompression_bomb_is_rejected_before_decoding() -> None:
    cfg = PreprocessConfig(size=28, max_pixels=1000)
    with pytest.raises(ImageRejected, match="too large"):
        preprocess_bytes(_encode(Image.new("L", (50, 50)), "PNG"), cfg)
    # a 1-bit 10000 x 10000 PNG is a few kB but 100 MP: refused at the header with the default 60 MP limit
    huge = _encode(Image.new("1", (10000, 10000)), "PNG")
    assert len(huge) < 200_000
    with pytest.raises(ImageRejected, match="too large"):
        preprocess_bytes(huge, PreprocessConfig(size=28))


def test_flip_augmentation_only_flips() -> None:
    x = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    allowed = [x, x[:, :, ::-1], x[:, ::-1, :], x[:, ::-1, ::-1]]
    seen = set()
    rng = np.random.default_rng(0)
    for _ in range(40):
        out = random_flip(x, rng)
        matches = [i for i, a in enumerate(allowed) if np.array_equal(out, a)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {0, 1, 2, 3}


def test_parallel_batch_gives_the_sequential_pixels_and_rejects_the_first_bad_image() -> None:
    rng = np.random.default_rng(3)
    files = []
    for i in range(5):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (300 + 17 * i, 260), dtype=np.uint8), mode="L").save(buf, format="JPEG")
        files.append(buf.getvalue())
    config = PreprocessConfig(size=56)
    parallel = preprocess_batch(files, config)
    assert np.array_equal(parallel, preprocess_batch(files, config, parallel=False))
    assert np.array_equal(parallel[3], preprocess_bytes(files[3], config))
    bad = [files[0], b"not an image", files[1], files[2][:40]]
    with pytest.raises(ImageRejected, match="undecodable image"):  # the first bad one, not the truncated one
        preprocess_batch(bad, config)
