"""LIMS simulator: ground truth in, seeded human errors out, one score per inspection."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from axis_contracts import CrystalScored, ModeScore, UserScored, topics
from axis_simulators.lims import LimsSimulator, truth_from_object
from fakes import FakePublisher, InMemoryObjectStore

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def scored(iid: str, modes: tuple[str, ...] = ("visible",), p: float = 0.4) -> CrystalScored:
    scores = {
        m: ModeScore(
            probability=p,
            threshold=0.5,
            model_name="axis",
            model_version="1",
            image_uri=f"s3://axis-images/{iid}-{m}.png",
            image_event_id=uuid.uuid4(),
        )
        for m in modes
    }
    return CrystalScored(
        producer="t",
        plate_barcode="P1",
        well="A1",
        inspection_id=iid,
        imaged_at=T0,
        scores=scores,  # type: ignore[arg-type]
        fused_probability=p,
        label="other",
        threshold=0.5,
        model_name="axis",
        model_version="1",
    )


def test_error_free_scientist_reports_the_truth() -> None:
    truth = {f"i{n}": c for n, c in enumerate(["clear", "microcrystals", "precipitate", "single_crystals"] * 25)}
    sim = LimsSimulator(truth=truth, publisher=FakePublisher(), error_rate=0.0)
    assert all(sim.decide(i) == c for i, c in truth.items())


def test_errors_are_misses_of_small_crystals_and_false_calls_on_precipitate() -> None:
    truth = {f"m{n}": "microcrystals" for n in range(2000)} | {f"p{n}": "precipitate" for n in range(2000)}
    truth |= {f"s{n}": "single_crystals" for n in range(500)} | {f"c{n}": "clear" for n in range(500)}
    sim = LimsSimulator(truth=truth, publisher=FakePublisher(), miss_rate=0.2, false_call_rate=0.1, seed=3)
    out = {i: sim.decide(i) for i in truth}
    missed = [out[i] for i in truth if i.startswith("m") and out[i] != "microcrystals"]
    false_calls = [out[i] for i in truth if i.startswith("p") and out[i] != "precipitate"]
    assert set(missed) == {"clear", "precipitate"} and 0.16 < len(missed) / 2000 < 0.24
    assert set(false_calls) == {"microcrystals"} and 0.07 < len(false_calls) / 2000 < 0.13
    assert all(out[i] == truth[i] for i in truth if i[0] in "sc")  # big crystals and clear drops: no errors


def test_seeded_and_independent_of_arrival_order() -> None:
    truth = {f"m{n}": "microcrystals" for n in range(300)}
    a = LimsSimulator(truth=truth, publisher=FakePublisher(), error_rate=0.3, seed=9)
    b = LimsSimulator(truth=truth.get, publisher=FakePublisher(), error_rate=0.3, seed=9)
    c = LimsSimulator(truth=truth, publisher=FakePublisher(), error_rate=0.3, seed=10)
    ids = list(truth)
    assert [a.decide(i) for i in ids] == [b.decide(i) for i in reversed(ids)][::-1]
    assert [a.decide(i) for i in ids] != [c.decide(i) for i in ids]


async def test_scores_once_per_inspection_with_a_stable_event_id() -> None:
    pub = FakePublisher()
    sim = LimsSimulator(truth={"i1": "single_crystals"}, publisher=pub, error_rate=0.0)
    first = await sim.on_crystal_scored(scored("i1", ("visible",)))
    again = await sim.on_crystal_scored(scored("i1", ("visible", "uv")))
    assert first is not None and again is None
    [raw] = pub.on(topics.USER_SCORED)
    ev = UserScored.model_validate_json(raw)
    assert (ev.inspection_id, ev.score, ev.scored_at > T0) == ("i1", "single_crystals", True)
    # a restarted simulator sends the same event id: the discrepancy service dedupes it
    other = LimsSimulator(truth={"i1": "single_crystals"}, publisher=FakePublisher(), error_rate=0.0)
    replay = other.user_score_for(scored("i1"))
    assert replay is not None and replay.event_id == ev.event_id


async def test_all_modes_waits_for_visible_and_uv() -> None:
    pub = FakePublisher()
    sim = LimsSimulator(truth={"i1": "clear"}, publisher=pub, score_after="all_modes")
    assert await sim.on_crystal_scored(scored("i1", ("visible",))) is None
    assert await sim.on_crystal_scored(scored("i1", ("visible", "uv"))) is not None
    assert len(pub.on(topics.USER_SCORED)) == 1


async def test_inspection_without_truth_is_not_scored() -> None:
    pub = FakePublisher()
    sim = LimsSimulator(truth={}, publisher=pub)
    assert await sim.on_crystal_scored(scored("ghost")) is None and pub.published == []


def test_truth_from_an_object_and_bad_configuration() -> None:
    store = InMemoryObjectStore()
    store.put_bytes("s3://axis-datasets/sim/truth.json", b'{"i1": "clear", "i2": "microcrystals"}')
    assert truth_from_object(store, "s3://axis-datasets/sim/truth.json") == {"i1": "clear", "i2": "microcrystals"}
    store.put_bytes("s3://axis-datasets/sim/bad.json", b"[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        truth_from_object(store, "s3://axis-datasets/sim/bad.json")
    with pytest.raises(ValueError, match="allowed classes"):
        LimsSimulator(truth={}, publisher=FakePublisher(), false_call_as="xtal")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        LimsSimulator(truth={}, publisher=FakePublisher(), error_rate=1.5)
