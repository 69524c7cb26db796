"""Pure discrepancy rules: labels at the threshold, kinds, latest-wins, the join in any order, decoding."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from axis_adapters.kafka import RawRecord
from axis_contracts import DEFAULT_SCHEME, DiscrepancyKind, InvalidEvent, ScoreScheme, UnknownScoreClass, topics
from axis_core.discrepancy import (
    HumanScore,
    InspectionState,
    MlScore,
    ProbabilityOutOfRange,
    check_probabilities,
    discrepancy_kind,
    fold,
    latest_inspection_before,
    ml_label,
)
from axis_core.stats import GroupCounts, check_group_by, summarise
from axis_discrepancy.service import decode

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def ml(p: float, *, at: int = 0, threshold: float = 0.5, version: str = "1", iid: str = "i1") -> MlScore:
    return MlScore(
        event_id=uuid.uuid4(),
        inspection_id=iid,
        plate_barcode="P1",
        well="A1",
        drop=1,
        imaged_at=T0,
        probability=p,
        threshold=threshold,
        model_name="axis-visible",
        model_version=version,
        scored_at=T0 + timedelta(minutes=at),
    )


def human(cls: str, *, at: int = 0, iid: str = "i1", user: str = "ann") -> HumanScore:
    return HumanScore(
        event_id=uuid.uuid4(),
        inspection_id=iid,
        user_id=user,
        raw_class=cls,
        label=DEFAULT_SCHEME.to_label(cls),
        scored_at=T0 + timedelta(minutes=at),
    )


def test_label_at_threshold_and_zero_probability() -> None:
    assert ml_label(0.5, 0.5) == "crystal"
    assert ml_label(0.4999, 0.5) == "other"
    assert ml_label(0.0, 0.3) == "other"
    assert ml_label(0.0, 0.0) == "crystal"  # 0.0 is a score, compared like any other
    assert ml(0.31, threshold=0.3).label == "crystal"
    assert ml(0.31, threshold=0.6).label == "other"


def test_kinds() -> None:
    assert discrepancy_kind("crystal", "crystal") is None
    assert discrepancy_kind("other", "other") is None
    assert discrepancy_kind("crystal", "other") is DiscrepancyKind.ML_CRYSTAL_HUMAN_OTHER
    assert discrepancy_kind("other", "crystal") is DiscrepancyKind.ML_OTHER_HUMAN_CRYSTAL


@pytest.mark.parametrize("order", ["ml_first", "user_first"])
def test_join_whichever_arrives_first(order: str) -> None:
    m, h = ml(0.9), human("clear")
    events = [m, h] if order == "ml_first" else [h, m]
    res = fold(InspectionState("i1"), events)
    assert len(res.comparisons) == 1
    c = res.comparisons[0]
    assert (c.ml, c.human, c.revision, c.agrees) == (m, h, 1, False)
    assert c.kind is DiscrepancyKind.ML_CRYSTAL_HUMAN_OTHER
    assert res.discrepancies == [c]


def test_one_side_only_gives_no_comparison() -> None:
    assert fold(InspectionState("i1"), [ml(0.2)]).comparisons == []
    assert fold(InspectionState("i1"), [human("clear")]).comparisons == []


def test_latest_wins_in_any_arrival_order() -> None:
    v1, v2 = ml(0.9, at=0, version="1"), ml(0.1, at=10, version="2")
    h_old, h_new = human("single_crystals", at=5), human("clear", at=20)
    finals = set()
    for perm in itertools.permutations([v1, v2, h_old, h_new]):
        st = fold(InspectionState("i1"), perm).state
        finals.add((st.ml, st.human))
    assert finals == {(v2, h_new)}


def test_rescore_and_user_change_make_new_revisions() -> None:
    m1, h1 = ml(0.9, at=0), human("clear", at=1)
    first = fold(InspectionState("i1"), [m1, h1])
    assert [c.agrees for c in first.comparisons] == [False]
    # a newer model version re-scores below its threshold: now they agree
    m2 = ml(0.2, at=30, version="2")
    second = fold(first.state, [m2])
    assert [(c.revision, c.agrees, c.ml.model_version) for c in second.comparisons] == [(2, True, "2")]
    # the user changes their mind: crystal again, disagreeing with v2
    h2 = human("microcrystals", at=40)
    third = fold(second.state, [h2])
    assert [(c.revision, c.kind) for c in third.comparisons] == [(3, DiscrepancyKind.ML_OTHER_HUMAN_CRYSTAL)]


def test_older_or_repeated_events_change_nothing() -> None:
    m, h = ml(0.9, at=10), human("clear", at=10)
    st = fold(InspectionState("i1"), [m, h]).state
    again = fold(st, [m, h, ml(0.1, at=0), human("single_crystals", at=0)])
    assert again.comparisons == [] and not again.ml_changed
    assert (again.state.ml, again.state.human, again.state.revision) == (m, h, 1)


def test_fold_rejects_foreign_inspection() -> None:
    with pytest.raises(ValueError, match="i2"):
        fold(InspectionState("i1"), [ml(0.5, iid="i2")])


def test_probability_range_check_names_the_field() -> None:
    with pytest.raises(ProbabilityOutOfRange, match=r"fused_probability 1\.7 is outside \[0, 1\]"):
        check_probabilities({"fused_probability": 1.7})
    with pytest.raises(ProbabilityOutOfRange, match=r"scores\.uv\.probability"):
        check_probabilities({"fused_probability": 0.2, "scores": {"uv": {"probability": -0.1}}})
    check_probabilities({"fused_probability": 0.0, "threshold": 1.0, "scores": {"visible": {"probability": 0.0}}})


def test_reference_resolves_to_latest_inspection_imaged_before() -> None:
    cands = [("d1", T0), ("d2", T0 + timedelta(days=1)), ("d3", T0 + timedelta(days=3))]
    assert latest_inspection_before(cands, T0 + timedelta(days=2)) == "d2"
    assert latest_inspection_before(cands, T0 + timedelta(days=3)) == "d3"
    assert latest_inspection_before(cands, T0 - timedelta(seconds=1)) is None


def _rec(topic: str, payload: object) -> RawRecord:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return RawRecord(topic=topic, partition=0, offset=1, key=None, value=raw)


def _crystal_payload(p: float) -> dict[str, object]:
    return {
        "event_id": str(uuid.uuid4()),
        "producer": "t",
        "plate_barcode": "P1",
        "well": "A1",
        "inspection_id": "i1",
        "imaged_at": T0.isoformat(),
        "scores": {
            "visible": {
                "probability": p,
                "threshold": 0.5,
                "model_name": "m",
                "model_version": "1",
                "image_uri": "s3://axis-images/a.png",
                "image_event_id": str(uuid.uuid4()),
            }
        },
        "fused_probability": p,
        "label": "crystal",
        "threshold": 0.5,
        "model_name": "m",
        "model_version": "1",
    }


def _dec(topic: str, payload: object, scheme: ScoreScheme = DEFAULT_SCHEME):  # type: ignore[no-untyped-def]
    return decode(
        _rec(topic, payload), crystal_topic=topics.CRYSTAL_SCORED, user_topic=topics.USER_SCORED, scheme=scheme
    )


def test_decode_errors_say_what_is_wrong() -> None:
    d = _dec(topics.CRYSTAL_SCORED, _crystal_payload(1.7))
    assert isinstance(d.error, ProbabilityOutOfRange) and d.event_id is not None and d.ml is None
    user = {"producer": "lims", "inspection_id": "i1", "user_id": "ann", "scored_at": T0.isoformat()}
    d = _dec(topics.USER_SCORED, {**user, "score": "shiny"})
    assert isinstance(d.error, UnknownScoreClass) and "allowed classes: clear, denatured" in str(d.error)
    d = _dec(topics.USER_SCORED, {**user, "score": "clear", "scored_at": "2026-03-02T09:00:00"})
    assert isinstance(d.error, InvalidEvent) and "scored_at" in str(d.error)
    d = _dec(topics.USER_SCORED, b"not json")
    assert isinstance(d.error, InvalidEvent) and "not valid JSON" in str(d.error) and d.event_id is None
    ok = _dec(topics.USER_SCORED, {**user, "score": "Single Crystals"})
    assert ok.error is None and ok.user is not None


def test_facility_scheme_maps_its_own_names() -> None:
    scheme = ScoreScheme.from_mapping({"nothing": "other", "xtal": "crystal", "goo": "other"})
    user = {"producer": "lims", "inspection_id": "i1", "user_id": "ann", "scored_at": T0.isoformat()}
    assert _dec(topics.USER_SCORED, {**user, "score": "xtal"}, scheme).error is None
    bad = _dec(topics.USER_SCORED, {**user, "score": "clear"}, scheme)
    assert "allowed classes: nothing, xtal, goo" in str(bad.error)


def test_stats_summary_rates_and_totals() -> None:
    rep = summarise("plate", [GroupCounts("P1", 10, 8, 1, 1), GroupCounts("P2", 4, 4, 0, 0)])
    assert [r.agreement_rate for r in rep.rows] == [0.8, 1.0]
    assert rep.total.comparisons == 14 and rep.total.disagreements == 2
    assert rep.total.agreement_rate == pytest.approx(12 / 14)
    assert summarise("user", []).total.agreement_rate is None
    with pytest.raises(ValueError, match="plate, user, model_version, week"):
        check_group_by("colour")
