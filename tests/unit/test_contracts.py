"""Event contracts: valid events round-trip; invalid ones name the field and the reason."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from uuid import uuid4

import pytest
from axis_contracts import (
    DEFAULT_SCHEME,
    CrystalScored,
    DeadLetter,
    DiscrepancyFound,
    ImageCaptured,
    InvalidEvent,
    ScoreScheme,
    UnknownScoreClass,
    UserScored,
    experiment_key,
    parse_event,
    validate_well,
    wells_of,
)
from axis_contracts.catalog import EVENT_TYPES, TOPIC_EVENTS
from axis_contracts.topics import ALL_TOPICS

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def image_payload(**over: object) -> dict[str, object]:
    data: dict[str, object] = {
        "producer": "robot-sim",
        "plate_barcode": "PLT0001",
        "plate_type": "96",
        "well": "B7",
        "drop": 1,
        "inspection_id": "PLT0001-B7-1-d3",
        "imaged_at": "2026-11-21T08:00:00Z",
        "imaging_mode": "visible",
        "image_uri": "s3://axis-images/PLT0001/B7/1/d3-visible.jpg",
        "imager_id": "rock-imager-1",
    }
    data.update(over)
    return data


def test_image_captured_round_trip_and_key() -> None:
    ev = parse_event(json.dumps(image_payload()).encode(), ImageCaptured)
    assert ev.key() == "PLT0001:B7:1" == experiment_key("PLT0001", "B7", 1)
    assert ev.event_type == "ImageCaptured" and ev.schema_version == 1
    again = parse_event(ev.to_bytes(), ImageCaptured)
    assert again == ev


@pytest.mark.parametrize(
    ("over", "field", "words"),
    [
        ({"well": "Z99"}, "well", "96-well plate"),
        ({"well": "I1"}, "well", "rows A-H"),
        ({"well": "A13"}, "well", "columns 1-12"),
        ({"imaged_at": "2026-11-21T08:00:00"}, "imaged_at", "timezone"),
        ({"drop": "two"}, "drop", "integer"),
        ({"imaging_mode": "infrared"}, "imaging_mode", "visible"),
        ({"image_uri": "/tmp/x.jpg"}, "image_uri", "pattern"),
        ({"extra_field": 1}, "extra_field", "not permitted"),
    ],
)
def test_invalid_image_event_names_field(over: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(InvalidEvent) as err:
        parse_event(json.dumps(image_payload(**over)).encode(), ImageCaptured)
    assert field in err.value.reason
    assert words in err.value.reason


def test_missing_field_is_named() -> None:
    data = image_payload()
    del data["inspection_id"]
    with pytest.raises(InvalidEvent, match="inspection_id: Field required"):
        parse_event(json.dumps(data).encode(), ImageCaptured)


@pytest.mark.parametrize(
    ("raw", "words"),
    [(b"", "empty"), (b"\xff\xfe", "UTF-8"), (b"{not json", "JSON"), (b"[1,2]", "object")],
)
def test_undecodable_messages(raw: bytes, words: str) -> None:
    with pytest.raises(InvalidEvent, match=words):
        parse_event(raw, ImageCaptured)


def test_wrong_event_type_is_rejected() -> None:
    with pytest.raises(InvalidEvent, match="event_type"):
        parse_event(json.dumps(image_payload(event_type="UserScored")).encode(), ImageCaptured)


def test_timestamps_are_normalised_to_utc() -> None:
    cest = timezone(timedelta(hours=2))
    ev = ImageCaptured.model_validate(image_payload(imaged_at=datetime(2026, 6, 1, 10, 0, tzinfo=cest)))
    assert ev.imaged_at.utcoffset() == timedelta(0) and ev.imaged_at.hour == 8


@pytest.mark.parametrize(("plate", "count", "last"), [("96", 96, "H12"), ("384", 384, "P24"), ("1536", 1536, "AF48")])
def test_plate_formats(plate: str, count: int, last: str) -> None:
    wells = wells_of(plate)  # type: ignore[arg-type]
    assert len(wells) == count == len(set(wells))
    assert wells[0] == "A1" and wells[-1] == last
    assert validate_well(last.lower(), plate) == last  # type: ignore[arg-type]


def test_384_well_accepted_only_on_384_plate() -> None:
    assert ImageCaptured.model_validate(image_payload(plate_type="384", well="P24")).well == "P24"
    with pytest.raises(ValueError, match="96-well"):
        ImageCaptured.model_validate(image_payload(well="P24"))
    with pytest.raises(ValueError):
        validate_well("AG1", "1536")  # type: ignore[arg-type]


def _mode_score(p: float) -> dict[str, object]:
    return {
        "probability": p,
        "threshold": 0.5,
        "model_name": "axis-visible",
        "model_version": "3",
        "image_uri": "s3://axis-images/a.jpg",
        "image_event_id": str(uuid4()),
    }


def test_crystal_scored_fused_must_be_max_and_zero_is_a_score() -> None:
    base = {
        "producer": "inference",
        "plate_barcode": "P1",
        "well": "A1",
        "inspection_id": "i1",
        "imaged_at": NOW,
        "label": "other",
        "threshold": 0.5,
        "model_name": "axis-visible",
        "model_version": "3",
    }
    ok = CrystalScored.model_validate({**base, "scores": {"visible": _mode_score(0.0)}, "fused_probability": 0.0})
    assert ok.fused_probability == 0.0 and ok.scores["visible"].probability == 0.0  # type: ignore[index]
    with pytest.raises(ValueError, match="max of the mode probabilities"):
        CrystalScored.model_validate(
            {**base, "scores": {"visible": _mode_score(0.2), "uv": _mode_score(0.7)}, "fused_probability": 0.2}
        )
    with pytest.raises(ValueError, match="less than or equal to 1"):
        CrystalScored.model_validate({**base, "scores": {"visible": _mode_score(1.7)}, "fused_probability": 1.7})


def test_user_scored_needs_a_drop_reference() -> None:
    with pytest.raises(ValueError, match="inspection_id, or plate_barcode"):
        UserScored(producer="lims", user_id="u1", score="clear", scored_at=NOW)
    ev = UserScored(producer="lims", user_id="u1", score="clear", scored_at=NOW, plate_barcode="P1", well="c3")
    assert ev.well == "C3" and ev.key() == "P1:C3:1"


def test_default_scheme_maps_seven_classes() -> None:
    assert len(DEFAULT_SCHEME.allowed) == 7
    assert {c for c, lab in DEFAULT_SCHEME.classes.items() if lab == "crystal"} == {"microcrystals", "single_crystals"}
    assert DEFAULT_SCHEME.to_label("Single Crystals") == "crystal"
    assert DEFAULT_SCHEME.to_label("precipitate") == "other"
    with pytest.raises(UnknownScoreClass, match="allowed classes: clear, denatured"):
        DEFAULT_SCHEME.to_label("needles")


def test_custom_scheme() -> None:
    scheme = ScoreScheme.from_mapping({"nothing": "other", "xtal": "crystal", "maybe": "other"}, name="lab-b")
    assert scheme.to_label("XTAL") == "crystal"
    with pytest.raises(ValueError, match="maps to 'crystal'"):
        ScoreScheme.from_mapping({"a": "other"})


def test_discrepancy_kind_must_match_labels() -> None:
    base = {
        "producer": "discrepancy",
        "plate_barcode": "P1",
        "well": "A1",
        "inspection_id": "i1",
        "ml_probability": 0.9,
        "ml_label": "crystal",
        "threshold": 0.5,
        "model_name": "axis-visible",
        "model_version": "1",
        "human_label": "other",
        "human_score": "clear",
        "user_id": "u1",
    }
    assert DiscrepancyFound.model_validate({**base, "kind": "ml_crystal_human_other"}).kind == "ml_crystal_human_other"
    with pytest.raises(ValueError, match="kind must be"):
        DiscrepancyFound.model_validate({**base, "kind": "ml_other_human_crystal"})


def test_dead_letter_keeps_raw_bytes_for_replay() -> None:
    raw = b"\x00\xffnot json"
    dl = DeadLetter.wrap(raw=raw, source_topic="t", error=ValueError("bad"), consumer="c", offset=7)
    back = parse_event(dl.to_bytes(), DeadLetter)
    assert back.raw_bytes() == raw and back.error_type == "ValueError" and back.offset == 7


def test_every_topic_has_one_event_type() -> None:
    assert set(TOPIC_EVENTS) == set(ALL_TOPICS)
    assert len(EVENT_TYPES) == len(ALL_TOPICS)
