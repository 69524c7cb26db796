"""Synthetic drop images: determinism, classes, modes, domains, sizes, UV/visible consistency."""

from __future__ import annotations

import io

import numpy as np
import pytest
from axis_synth import (
    DOMAIN_A,
    DOMAIN_B,
    SUBTYPES,
    Domain,
    DropSpec,
    crystal_mask,
    real_size_jpeg,
    render,
    render_array,
    to_jpeg_bytes,
    to_png_bytes,
)
from PIL import Image

pytestmark = pytest.mark.unit

ALL_SPECS = [(o, s) for o, subs in SUBTYPES.items() for s in subs]


def _dilate(mask: np.ndarray, r: int) -> np.ndarray:
    out = mask.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
    return out


def test_same_seed_gives_identical_bytes_and_other_seed_differs() -> None:
    spec = DropSpec(outcome="needles", subtype="clusters", drop_seed=3)
    a = to_png_bytes(render(spec, DOMAIN_B, "visible", seed=11))
    b = to_png_bytes(render(spec, DOMAIN_B, "visible", seed=11))
    c = to_png_bytes(render(spec, DOMAIN_B, "visible", seed=12))
    assert a == b
    assert a != c


@pytest.mark.parametrize("domain", [DOMAIN_A, DOMAIN_B], ids=lambda d: d.name)
@pytest.mark.parametrize(("outcome", "subtype"), ALL_SPECS)
def test_every_class_renders_in_both_modes(domain: Domain, outcome: str, subtype: str) -> None:
    spec = DropSpec(outcome=outcome, subtype=subtype, drop_seed=5)  # type: ignore[arg-type]
    vis = render_array(spec, domain, "visible", seed=5)
    uv = render_array(spec, domain, "uv", seed=6)
    assert vis.shape == uv.shape == (224, 224, 3)
    assert vis.dtype == uv.dtype == np.uint8
    # visible: a bright field; UV: grey and dark, with some structure (the drop glow)
    assert np.median(vis) > 120
    assert np.median(uv) < 80
    assert np.array_equal(uv[..., 0], uv[..., 1]) and np.array_equal(uv[..., 1], uv[..., 2])
    assert vis.std() > 3 and uv.std() > 2


def test_size_argument_is_width_by_height() -> None:
    arr = render_array(DropSpec(outcome="clear"), DOMAIN_A, "visible", seed=1, size=(300, 200))
    assert arr.shape == (200, 300, 3)
    assert render(DropSpec(outcome="clear"), DOMAIN_A, "uv", seed=1, size=(64, 96)).size == (64, 96)


def test_domain_colour_differs_between_a_and_b() -> None:
    spec = DropSpec(outcome="clear", drop_seed=2)
    a = render_array(spec, DOMAIN_A, "visible", seed=2).reshape(-1, 3).mean(axis=0)
    b = render_array(spec, DOMAIN_B, "visible", seed=2).reshape(-1, 3).mean(axis=0)
    assert a[1] > a[2] + 30  # A: green-grey field
    assert b[0] > b[2]  # B: warm grey field
    assert np.abs(a - b).max() > 15


@pytest.mark.parametrize("outcome", ["microcrystals", "needles", "single_crystals"])
def test_crystalline_drops_have_crystals_that_grow(outcome: str) -> None:
    areas = [
        int(crystal_mask(DropSpec(outcome=outcome, growth=g, drop_seed=9), DOMAIN_A, seed=9).sum())  # type: ignore[arg-type]
        for g in (0.0, 0.3, 0.7, 1.0)
    ]
    assert areas[0] == 0
    assert 0 < areas[1] < areas[2] < areas[3]


@pytest.mark.parametrize("outcome", ["clear", "precipitate", "phase_separation"])
def test_non_crystal_drops_have_no_crystal_mask(outcome: str) -> None:
    assert not crystal_mask(DropSpec(outcome=outcome, drop_seed=4), DOMAIN_A, seed=4).any()  # type: ignore[arg-type]


@pytest.mark.parametrize("domain", [DOMAIN_A, DOMAIN_B], ids=lambda d: d.name)
def test_uv_bright_pixels_and_visible_dark_edges_sit_on_the_crystals(domain: Domain) -> None:
    spec = DropSpec(outcome="single_crystals", subtype="several", drop_seed=21)
    mask = crystal_mask(spec, domain, seed=21)
    assert mask.sum() > 10
    near = _dilate(mask, 3)
    uv = render_array(spec, domain, "uv", seed=22)[..., 0].astype(float)
    clear_uv = render_array(DropSpec(outcome="clear", drop_seed=21), domain, "uv", seed=22)[..., 0].astype(float)
    bright = uv - clear_uv > 25  # same drop without crystals: the difference is the crystals
    assert bright.sum() > 0.5 * mask.sum()
    assert (bright & near).sum() / bright.sum() > 0.95
    vis = render_array(spec, domain, "visible", seed=23).mean(axis=2)
    clear_vis = render_array(DropSpec(outcome="clear", drop_seed=21), domain, "visible", seed=23).mean(axis=2)
    dark = clear_vis - vis > 30
    assert dark.sum() > 0
    assert (dark & near).sum() / dark.sum() > 0.95


def test_uv_needs_a_domain_with_uv() -> None:
    no_uv = DOMAIN_A.model_copy(update={"has_uv": False})
    with pytest.raises(ValueError, match="has no UV"):
        render(DropSpec(outcome="clear"), no_uv, "uv", seed=0)


def test_spec_rejects_unknown_subtype_and_labels_by_growth() -> None:
    with pytest.raises(ValueError, match="sub-type"):
        DropSpec(outcome="needles", subtype="shower")
    assert DropSpec(outcome="needles").subtype == "needles"
    assert DropSpec(outcome="needles", growth=0.5).label == "crystal"
    assert DropSpec(outcome="needles", growth=0.0).label == "other"
    assert DropSpec(outcome="needles", growth=0.0).visible_outcome == "clear"
    assert DropSpec(outcome="precipitate").label == "other"


def test_domain_rejects_inverted_crystal_sizes() -> None:
    with pytest.raises(ValueError, match="crystal_size"):
        Domain(name="bad", crystal_size=(0.2, 0.1))


def test_jpeg_and_png_bytes_decode() -> None:
    img = render(DropSpec(outcome="precipitate", subtype="heavy"), DOMAIN_B, "visible", seed=3)
    jpg = Image.open(io.BytesIO(to_jpeg_bytes(img, quality=85)))
    assert jpg.format == "JPEG" and jpg.size == (224, 224)
    png = Image.open(io.BytesIO(to_png_bytes(img)))
    assert np.array_equal(np.asarray(png), np.asarray(img))


def test_real_size_jpeg_decodes_at_imager_size() -> None:
    data = real_size_jpeg(DropSpec(outcome="single_crystals", drop_seed=1), DOMAIN_A, "visible", seed=1)
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.format == "JPEG" and img.mode == "RGB"
    assert img.size == (2300, 1920)
