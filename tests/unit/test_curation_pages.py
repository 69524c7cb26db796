"""Pure logic behind the curation pages: imaging rounds of a plate, ML vs human per well, readable names, colours."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from axis_contracts.scheme import DEFAULT_SCHEME
from axis_curation.colours import display_colour
from axis_curation.platemap import class_title, imaging_rounds, plate_view

pytestmark = pytest.mark.unit
T = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


def _luminance(hex_colour: str) -> float:
    rgb = [int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    lin = [x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4 for x in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def test_a_pause_longer_than_two_hours_starts_the_next_imaging_round() -> None:
    times = [(T + timedelta(seconds=i), 1) for i in range(96)]  # one pass over the plate
    times += [(T + timedelta(days=3, minutes=i), 2) for i in range(30)]  # the next, slower, two drops a well
    times += [(T + timedelta(days=3, hours=1, minutes=50), 1)]  # still the same round (gap under 2 h)
    rounds = imaging_rounds(list(reversed(times)))
    assert [r.index for r in rounds] == [0, 1]
    assert rounds[0].started_at == T and rounds[0].ended_at == T + timedelta(seconds=95) and rounds[0].inspections == 96
    assert rounds[1].started_at == T + timedelta(days=3) and rounds[1].inspections == 61
    assert rounds[1].ended_at == T + timedelta(days=3, hours=1, minutes=50)
    assert imaging_rounds([]) == []


def test_a_well_is_marked_where_the_model_and_the_user_disagree() -> None:
    row = {"inspection_id": "i", "plate_type": "96", "drop": 1, "imaged_at": T, "model_version": "2"}
    rows = [
        {**row, "well": "A1", "fused_probability": 0.9, "ml_label": "crystal", "raw_class": "clear",
         "human_label": "other"},
        {**row, "well": "A2", "fused_probability": 0.8, "ml_label": "crystal", "raw_class": "microcrystals",
         "human_label": "crystal"},
        {**row, "well": "A3", "fused_probability": 0.2, "ml_label": "other"},
        {**row, "well": "A4", "fused_probability": 0.1, "ml_label": "other", "mode_scores":
         {"uv": {"probability": 0.05}, "visible": {"probability": 0.1, "threshold": 0.5}}},
    ]  # fmt: skip
    view = plate_view("P", rows, DEFAULT_SCHEME)
    wells = {w.well: w for w in view.wells}
    assert wells["A1"].disagrees and not wells["A2"].disagrees and not wells["A3"].disagrees
    assert view.disagreements == 1 and wells["A1"].ml_label == "crystal"
    assert list(wells["A4"].drops[0].modes or {}) == ["visible", "uv"], "visible first"
    assert wells["A5"].probability is None and not wells["A5"].disagrees
    titles = {c.name: c.title for c in view.classes}
    assert titles["single_crystals"] == "Single crystals" and titles["phase_separation"] == "Phase separation"
    assert "clamp" not in view.colour_scale


def test_clear_is_drawn_darker_than_an_empty_well_and_other_colours_stay() -> None:
    clear = display_colour(DEFAULT_SCHEME.colours["clear"])
    assert clear != DEFAULT_SCHEME.colours["clear"] and _luminance(clear) <= 0.45
    assert _luminance(clear) < _luminance("#d4d9d6"), "darker than the empty well's outline"
    for name in ("precipitate", "microcrystals", "single_crystals", "interesting"):
        assert display_colour(DEFAULT_SCHEME.colours[name]) == DEFAULT_SCHEME.colours[name]
    assert display_colour("not-a-colour") == "not-a-colour"
    assert class_title("single_crystals") == "Single crystals"
