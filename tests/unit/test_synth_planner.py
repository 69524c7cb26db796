"""Robot-simulator layout: plates, wells, drops, inspections over days, ground truth and seeds."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime

import numpy as np
import pytest
from axis_contracts import ImagingMode, validate_well, wells_of
from axis_synth import CRYSTAL_OUTCOMES, DEFAULT_CLASS_MIX, DOMAIN_A, DOMAIN_B, PlannedImage, plan_plates, render_array

pytestmark = pytest.mark.unit


def _by_drop(plan: list[PlannedImage]) -> dict[str, list[PlannedImage]]:
    out: dict[str, list[PlannedImage]] = defaultdict(list)
    for im in plan:
        out[im.experiment_key].append(im)
    return out


def test_counts_cover_every_plate_well_drop_inspection_and_mode() -> None:
    plan = plan_plates(DOMAIN_B, n_plates=2, wells=None, drops_per_well=2, n_inspections=3, days=10, seed=1)
    assert len(plan) == 2 * 96 * 2 * 3 * 2
    assert len({im.plate_barcode for im in plan}) == 2
    assert {im.well for im in plan} == set(wells_of(DOMAIN_B.plate_type))
    assert all(validate_well(im.well) == im.well for im in plan)
    assert {im.drop for im in plan} == {1, 2}
    assert Counter(im.imaging_mode for im in plan) == {ImagingMode.VISIBLE: 1152, ImagingMode.UV: 1152}


def test_domain_without_uv_plans_visible_images_only() -> None:
    no_uv = DOMAIN_A.model_copy(update={"has_uv": False})
    plan = plan_plates(no_uv, n_plates=1, wells=8, n_inspections=2)
    assert len(plan) == 16
    assert {im.imaging_mode for im in plan} == {ImagingMode.VISIBLE}


def test_explicit_and_counted_well_subsets() -> None:
    assert {im.well for im in plan_plates(DOMAIN_A, 1, wells=["a1", "H12"], n_inspections=1)} == {"A1", "H12"}
    assert {im.well for im in plan_plates(DOMAIN_A, 1, wells=3, n_inspections=1)} == {"A1", "A2", "A3"}
    with pytest.raises(ValueError, match="I1"):
        plan_plates(DOMAIN_A, 1, wells=["I1"])
    with pytest.raises(ValueError, match="wells"):
        plan_plates(DOMAIN_A, 1, wells=97)


def test_images_are_time_ordered_and_inspections_advance_over_days() -> None:
    start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    plan = plan_plates(DOMAIN_A, n_plates=2, wells=12, n_inspections=5, days=21, seed=2, start=start)
    times = [im.imaged_at for im in plan]
    assert times == sorted(times)
    assert all(t.tzinfo is not None and t.utcoffset().total_seconds() == 0 for t in times)  # type: ignore[union-attr]
    assert min(times) == start
    for images in _by_drop(plan).values():
        vis = sorted((im for im in images if im.imaging_mode == ImagingMode.VISIBLE), key=lambda im: im.imaged_at)
        assert [im.inspection_index for im in vis] == [0, 1, 2, 3, 4]
        span = vis[-1].imaged_at - vis[0].imaged_at
        assert 20.5 < span.total_seconds() / 86400 < 21.5
        # visible and UV of one inspection share the inspection id, taken a few seconds apart
        per_insp = defaultdict(set)
        for im in images:
            per_insp[im.inspection_id].add(im.imaging_mode)
        assert all(modes == {ImagingMode.VISIBLE, ImagingMode.UV} for modes in per_insp.values())
    assert len({im.inspection_id for im in plan}) == 2 * 12 * 5


def test_default_class_mix_is_applied_exactly() -> None:
    plan = plan_plates(DOMAIN_A, n_plates=2, n_inspections=1, seed=3)
    finals = Counter(im.final_outcome for im in plan if im.imaging_mode == ImagingMode.VISIBLE)
    assert sum(finals.values()) == 192
    for outcome, share in DEFAULT_CLASS_MIX.items():
        assert abs(finals[outcome] - 192 * share) < 1.0, outcome


def test_custom_class_mix_and_unknown_class() -> None:
    plan = plan_plates(DOMAIN_A, 1, wells=10, n_inspections=1, class_mix={"needles": 1, "clear": 1})
    finals = Counter(im.final_outcome for im in plan if im.imaging_mode == ImagingMode.VISIBLE)
    assert finals == {"needles": 5, "clear": 5}
    with pytest.raises(ValueError, match="crystals"):
        plan_plates(DOMAIN_A, 1, class_mix={"crystals": 1.0})


def test_crystals_appear_and_grow_over_inspections() -> None:
    plan = plan_plates(DOMAIN_A, n_plates=1, n_inspections=6, days=28, seed=4)
    crystalline = 0
    for images in _by_drop(plan).values():
        vis = sorted((im for im in images if im.imaging_mode == ImagingMode.VISIBLE), key=lambda im: im.imaged_at)
        growth = [im.growth for im in vis]
        assert growth == sorted(growth)
        if vis[0].final_outcome in CRYSTAL_OUTCOMES:
            crystalline += 1
            assert vis[0].growth == 0.0 and vis[0].label == "other" and vis[0].outcome == "clear"
            assert vis[-1].growth > 0.0 and vis[-1].label == "crystal" and vis[-1].outcome == vis[-1].final_outcome
        else:
            assert {im.label for im in vis} == {"other"} and {im.growth for im in vis} == {1.0}
    assert crystalline == 29  # 30 % of 96 drops


def test_plan_is_deterministic_and_seeds_are_distinct() -> None:
    a = plan_plates(DOMAIN_B, n_plates=1, wells=24, n_inspections=3, seed=5)
    b = plan_plates(DOMAIN_B, n_plates=1, wells=24, n_inspections=3, seed=5)
    c = plan_plates(DOMAIN_B, n_plates=1, wells=24, n_inspections=3, seed=6)
    assert a == b
    assert [im.final_outcome for im in a] != [im.final_outcome for im in c] or a[0].plate_barcode != c[0].plate_barcode
    assert len({im.seed for im in a}) == len(a)
    # one geometry per drop, shared by its inspections and modes
    for images in _by_drop(a).values():
        assert len({im.drop_seed for im in images}) == 1


def test_planned_image_renders_consistently_across_modes() -> None:
    plan = plan_plates(DOMAIN_B, n_plates=1, wells=12, n_inspections=2, seed=7, class_mix={"single_crystals": 1})
    last = [im for im in plan if im.inspection_index == 1]
    vis = next(im for im in last if im.imaging_mode == ImagingMode.VISIBLE)
    uv = next(im for im in last if im.inspection_id == vis.inspection_id and im.imaging_mode == ImagingMode.UV)
    assert vis.spec == uv.spec
    assert vis.user_score_class == "single_crystals"
    img = render_array(vis.spec, DOMAIN_B, vis.imaging_mode.value, vis.seed)  # type: ignore[arg-type]
    assert img.shape == (224, 224, 3) and np.median(img) > 100
