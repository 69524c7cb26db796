"""Curation logic: consensus rule, plate-map colour scale and view, dataset config resolution and versions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from axis_contracts.scheme import DEFAULT_SCHEME
from axis_curation.colours import crystal_alpha, crystal_fill
from axis_curation.consensus import ConsensusRule, Decision, Vote, decide
from axis_curation.export import next_version, resolve_config
from axis_curation.platemap import plate_view
from pydantic import ValidationError

pytestmark = pytest.mark.unit
T = datetime(2026, 1, 1, tzinfo=UTC)


def votes(*pairs: tuple[str, str]) -> list[Vote]:
    return [Vote(c, lab, T + timedelta(minutes=i)) for i, (c, lab) in enumerate(pairs)]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("pairs", "k", "expected"),
    [
        ([("a", "crystal")], 2, Decision("open")),
        ([("a", "crystal"), ("b", "crystal")], 2, Decision("resolved", "crystal")),
        ([("a", "crystal")], 1, Decision("resolved", "crystal")),
        ([("a", "crystal"), ("b", "other")], 2, Decision("unresolved")),
        ([("a", "crystal"), ("b", "other")], 1, Decision("unresolved")),
        ([("a", "other"), ("b", "uncertain")], 2, Decision("open")),
        ([("a", "unusable"), ("b", "unusable")], 2, Decision("resolved", "unusable")),
        ([("a", "uncertain"), ("b", "uncertain")], 2, Decision("unresolved")),
        # a curator who changes their mind: only the latest label counts
        ([("a", "other"), ("b", "crystal"), ("a", "crystal")], 2, Decision("resolved", "crystal")),
        # the same curator twice is one vote
        ([("a", "crystal"), ("a", "crystal")], 2, Decision("open")),
    ],
)
def test_consensus_rule(pairs: list[tuple[str, str]], k: int, expected: Decision) -> None:
    assert decide(votes(*pairs), ConsensusRule(k)) == expected


def test_consensus_needs_at_least_one_curator() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        ConsensusRule(0)


def test_colour_scale_hides_low_probabilities_and_rises_quickly_above_40_percent() -> None:
    assert crystal_alpha(0.0) == 0.0 and crystal_alpha(0.39) == 0.0 and crystal_alpha(0.4) == 0.0
    assert crystal_alpha(1.0) == 1.0 and crystal_alpha(float("nan")) == 0.0
    assert 0.25 < crystal_alpha(0.5) < 0.35, "a 50 % well is already clearly visible"
    assert crystal_alpha(0.7) > 0.5 * 1.2, "faster than linear above the floor"
    ps = [i / 100 for i in range(40, 101)]
    alphas = [crystal_alpha(p) for p in ps]
    assert alphas == sorted(alphas)
    assert crystal_fill(0.2) == "rgba(0, 150, 60, 0.000)" and crystal_fill(1.0) == "rgba(0, 150, 60, 1.000)"


def test_plate_view_renders_every_well_and_colours_by_the_best_drop() -> None:
    rows = [
        {
            "inspection_id": "i1",
            "plate_type": "384",
            "well": "B7",
            "drop": 1,
            "imaged_at": T,
            "fused_probability": 0.3,
            "model_name": "axis-visible",
            "model_version": "3",
            "raw_class": "clear",
            "human_label": "other",
            "user_id": "u",
        },
        {
            "inspection_id": "i2",
            "plate_type": "384",
            "well": "B7",
            "drop": 2,
            "imaged_at": T,
            "fused_probability": 0.9,
            "model_name": "axis-visible",
            "model_version": "4",
            "raw_class": None,
        },
        {
            "inspection_id": "i3",
            "plate_type": "384",
            "well": "P24",
            "drop": 1,
            "imaged_at": T,
            "fused_probability": None,
            "raw_class": "single_crystals",
            "human_label": "crystal",
            "user_id": "u",
        },
    ]
    view = plate_view("PL-1", rows, DEFAULT_SCHEME)
    assert view.plate_type == "384" and len(view.wells) == 384 and view.rows[-1] == "P" and view.columns == 24
    b7 = next(w for w in view.wells if w.well == "B7")
    assert b7.probability == 0.9 and b7.model_version == "4" and b7.alpha == crystal_alpha(0.9)
    assert b7.user_score is not None and b7.user_score.colour == DEFAULT_SCHEME.colours["clear"]
    p24 = next(w for w in view.wells if w.well == "P24")
    assert p24.probability is None and p24.fill == "transparent" and p24.user_score.colour == "#006d2c"  # type: ignore[union-attr]
    assert view.scored_wells == 1


def test_dataset_config_layers_and_names_a_bad_override() -> None:
    cfg = resolve_config(
        {"split": {"seed": 5}},
        {"split": {"train_ratio": 0.7, "val_ratio": 0.3}},
        consensus_min=1,
        test_plates=["T2", "T1"],
    )
    assert cfg.consensus.min_curators == 1 and cfg.split.seed == 5 and cfg.split.train_ratio == 0.7
    assert cfg.test_guard.test_plates == ("T1", "T2")
    with pytest.raises(ValidationError) as err:
        resolve_config({}, {"similarity": {"max_distance": "far"}}, consensus_min=2, test_plates=[])
    assert err.value.errors()[0]["loc"] == ("similarity", "max_distance")


def test_versions_count_up_per_name() -> None:
    assert next_version([]) == "1"
    assert next_version(["1", "2", "custom"]) == "3"


def test_the_served_plate_map_is_the_bytes_of_its_documented_model() -> None:
    """The endpoint encodes plain dicts (fast); they must be exactly PlateView's own encoding, None left out."""
    from datetime import timedelta

    from axis_curation.platemap import ImagingRound, plate_map_json

    rows: list[dict[str, object]] = []
    for i, well in enumerate(["A1", "A1", "B3", "C2", "H12"]):
        rows.append({
            "inspection_id": f"i{i}", "plate_type": "96", "well": well, "drop": 1 + (i == 1),
            "imaged_at": T + timedelta(minutes=i), "fused_probability": [0.91, 0.4, None, 0.0, 0.55][i],
            "ml_label": [None, "other", None, "other", "crystal"][i], "threshold": 0.5,
            "model_name": "axis-visible" if i != 2 else None, "model_version": str(i),
            "mode_scores": {"uv": {"probability": 0.2}, "visible": {"probability": 0.91, "threshold": 0.5}}
            if i == 0 else None,
            "raw_class": [None, "clear", "single_crystals", "unknown-class", "clear"][i],
            "human_label": [None, "other", "crystal", None, "other"][i], "user_id": "sci",
            "user_scored_at": T if i != 4 else None,
        })  # fmt: skip
    rounds = [ImagingRound(index=0, started_at=T, ended_at=T + timedelta(hours=1), inspections=5)]
    for kwargs in ({}, {"rounds": rounds, "selected": 0}):
        fast = plate_map_json("PL-9", rows, DEFAULT_SCHEME, **kwargs)  # type: ignore[arg-type]
        view = plate_view("PL-9", rows, DEFAULT_SCHEME, **kwargs)  # type: ignore[arg-type]
        assert fast == view.model_dump_json(exclude_none=True).encode()
        assert view.disagreements == 1 and view.scored_wells == 3
    empty = plate_map_json("PL-0", [], DEFAULT_SCHEME)
    assert empty == plate_view("PL-0", [], DEFAULT_SCHEME).model_dump_json(exclude_none=True).encode()
