"""Inference micro-batches with fakes: scores stored and published once, fusion, dedupe, bad input, retries."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
import pytest
from axis_adapters.kafka import DeadLetterSink, RawRecord
from axis_adapters.objectstore import ObjectStoreUnavailable
from axis_contracts import CrystalScored, DeadLetter, ImageCaptured, topics
from axis_inference.metrics import Metrics
from axis_inference.models import ModelHolder, ModelRef
from axis_inference.pipeline import BatchProcessor
from axis_model.preprocess import PreprocessConfig, preprocess_bytes
from fakes import FakePublisher, InMemoryObjectStore, InMemoryScoresRepo
from PIL import Image

pytestmark = pytest.mark.unit

BUCKET = "axis-images"


class GreyScorer:
    """Real preprocessing (so bad images are really rejected); P(crystal) = mean brightness of the image."""

    def __init__(self, version: str = "1", max_pixels: int = 4_000_000) -> None:
        self._refs = {
            "visible": ModelRef("axis-visible", version, 0.5),
            "uv": ModelRef("axis-uv", version, 0.4),
        }
        self.config = PreprocessConfig(size=14, max_pixels=max_pixels, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
        self.calls = 0
        self.fail: Exception | None = None

    @property
    def refs(self) -> Mapping[str, ModelRef]:
        return self._refs

    def prepare(self, mode: str, data: bytes) -> np.ndarray:
        return preprocess_bytes(data, self.config)

    def score(self, items: Sequence[tuple[str, np.ndarray]]) -> list[float]:
        self.calls += 1
        if self.fail is not None:
            raise self.fail
        return [float(np.clip(px.mean(), 0.0, 1.0)) for _, px in items]


def png(level: int, size: tuple[int, int] = (32, 24)) -> bytes:
    buf = io.BytesIO()
    Image.new("L", size, color=level).save(buf, format="PNG")
    return buf.getvalue()


def jpeg(level: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color=(level, level, level)).save(buf, format="JPEG")
    return buf.getvalue()


def captured(store: InMemoryObjectStore, inspection: str, mode: str, data: bytes | None, **extra: object) -> RawRecord:
    uri = f"s3://{BUCKET}/{inspection}/{mode}.png"
    if data is not None:
        store.put_bytes(uri, data)
    fields: dict[str, object] = {
        "producer": "robot",
        "plate_barcode": "P1",
        "well": "A1",
        "drop": 1,
        "inspection_id": inspection,
        "imaged_at": datetime(2026, 1, 1, tzinfo=UTC),
        "imaging_mode": mode,
        "image_uri": uri,
    }
    fields.update(extra)
    event = ImageCaptured.model_validate(fields)
    return raw(event.to_bytes(), key=event.key().encode())


_offset = iter(range(10**6))


def raw(value: bytes, key: bytes | None = None) -> RawRecord:
    return RawRecord(topic=topics.IMAGE_CAPTURED, partition=0, offset=next(_offset), key=key, value=value)


class Rig:
    def __init__(self, max_object_bytes: int = 1_000_000) -> None:
        self.store = InMemoryObjectStore()
        self.repo = InMemoryScoresRepo()
        self.pub = FakePublisher()
        self.holder = ModelHolder()
        self.scorer = GreyScorer()
        self.holder.scorer = self.scorer
        self.proc = BatchProcessor(
            store=self.store,
            repo=self.repo,
            publisher=self.pub,
            dead_letters=DeadLetterSink(self.pub, "axis-inference"),
            holder=self.holder,
            metrics=Metrics(),
            allowed_buckets=[BUCKET],
            max_object_bytes=max_object_bytes,
            io_executor=None,
            model_executor=None,
            retry_backoff_s=0.0,
            retry_backoff_max_s=0.0,
        )

    def scored(self) -> list[CrystalScored]:
        return [CrystalScored.model_validate_json(m) for m in self.pub.on(topics.CRYSTAL_SCORED)]

    def dead(self) -> list[DeadLetter]:
        return [DeadLetter.model_validate_json(m) for m in self.pub.on(topics.DEAD_LETTER)]


async def test_batch_stores_every_image_score_and_one_fused_score_per_inspection() -> None:
    rig = Rig()
    batch = []
    for i in range(3):
        batch.append(captured(rig.store, f"insp-{i}", "visible", png(51)))  # p = 0.2
        batch.append(captured(rig.store, f"insp-{i}", "uv", png(204)))  # p = 0.8
    result = await rig.proc.handle(batch)
    assert result is not None and result.scored == 6
    assert len(rig.repo.image_scores) == 6
    assert {k[1:] for k in rig.repo.image_scores} == {("axis-visible", "1"), ("axis-uv", "1")}
    assert sorted(rig.repo.inspections) == ["insp-0", "insp-1", "insp-2"]
    for scored in rig.scored():
        assert set(scored.scores) == {"visible", "uv"}
        assert scored.fused_probability == pytest.approx(0.8, abs=0.01)
        assert (scored.model_name, scored.model_version, scored.label) == ("axis-uv", "1", "crystal")
    assert len(rig.scored()) == 3
    keys = {k for t, k, _ in rig.pub.published if t == topics.CRYSTAL_SCORED}
    assert keys == {b"P1:A1:1"}


async def test_fused_score_accumulates_over_batches_and_zero_is_a_score() -> None:
    rig = Rig()
    await rig.proc.handle([captured(rig.store, "insp", "uv", png(0))])
    await rig.proc.handle([captured(rig.store, "insp", "visible", png(51))])
    first, second = rig.scored()
    assert first.fused_probability == 0.0 and set(first.scores) == {"uv"} and first.label == "other"
    assert set(second.scores) == {"visible", "uv"}
    assert second.scores["uv"].probability == 0.0
    assert second.fused_probability == pytest.approx(0.2, abs=0.01)
    assert rig.repo.inspections["insp"].model_name == "axis-visible"
    assert first.event_id != second.event_id


async def test_replayed_and_doubled_events_are_scored_once_and_not_republished() -> None:
    rig = Rig()
    batch = [captured(rig.store, "insp", "visible", png(100)), captured(rig.store, "insp", "uv", png(10))]
    await rig.proc.handle(batch + [batch[0]])  # the same event twice in one batch
    await rig.proc.handle(batch)  # and the whole batch again (redelivery / replay)
    assert len(rig.repo.image_scores) == 2
    assert len(rig.scored()) == 1
    assert rig.proc.metrics.duplicates_skipped == 3


async def test_bad_input_is_dead_lettered_with_its_reason_and_the_good_images_are_scored() -> None:
    rig = Rig(max_object_bytes=50_000)
    truncated = jpeg(90)[:200]
    batch = [
        captured(rig.store, "good", "visible", png(120)),
        raw(b"{not json"),
        raw(b""),
        raw(json.dumps({"event_type": "ImageCaptured", "producer": "r", "imaging_mode": "infrared"}).encode()),
        captured(rig.store, "zero", "visible", b""),
        captured(rig.store, "trunc", "visible", truncated),
        captured(rig.store, "garbage", "visible", b"this is not an image at all"),
        captured(rig.store, "missing", "visible", None),
        captured(rig.store, "big", "visible", b"\0" * 60_000),
        captured(rig.store, "bomb", "visible", png(1, size=(3000, 2000))),
        captured(rig.store, "foreign", "uv", png(1), image_uri="s3://other-bucket/x.png"),
    ]
    rig.scorer.config = rig.scorer.config.model_copy(update={"max_pixels": 1_000_000})
    result = await rig.proc.handle(batch)
    assert result is not None and result.scored == 1
    reasons = [d.error for d in rig.dead()]
    assert len(reasons) == 10
    joined = "\n".join(reasons).lower()
    for expected in (
        "not valid json",
        "empty message",
        "imaging_mode",
        "0 bytes",
        "truncated",
        "undecodable",
        "no object at",
        "more than the limit",
        "decompression-bomb",
        "not one of the allowed buckets",
    ):
        assert expected in joined, expected
    assert all(d.source_topic == topics.IMAGE_CAPTURED and d.consumer == "axis-inference" for d in rig.dead())
    assert list(rig.repo.inspections) == ["good"]
    assert sum(rig.proc.metrics.dead_lettered.values()) == 10


async def test_transient_object_store_error_redelivers_without_storing_anything() -> None:
    rig = Rig()
    batch = [captured(rig.store, "insp", "visible", png(100))]

    def down(uri: str, max_bytes: int | None = None) -> bytes:
        raise ObjectStoreUnavailable("connection refused")

    real_get = rig.store.get_bytes
    rig.store.get_bytes = down  # type: ignore[method-assign]
    with pytest.raises(ObjectStoreUnavailable):
        await rig.proc.handle(batch)
    assert rig.repo.image_scores == {} and rig.pub.published == []
    rig.store.get_bytes = real_get  # type: ignore[method-assign]
    await rig.proc.handle(batch)
    assert len(rig.repo.image_scores) == 1 and len(rig.scored()) == 1


async def test_failed_commit_after_publish_republishes_the_same_event_id() -> None:
    rig = Rig()
    batch = [captured(rig.store, "insp", "visible", png(100))]
    rig.repo.fail_next_commit = ConnectionError("server closed the connection")
    with pytest.raises(ConnectionError):
        await rig.proc.handle(batch)
    assert rig.repo.image_scores == {}
    await rig.proc.handle(batch)
    first, again = rig.scored()
    assert first.event_id == again.event_id and len(rig.repo.image_scores) == 1


async def test_a_poison_batch_is_dead_lettered_at_once_not_retried() -> None:
    rig = Rig()
    batch = [captured(rig.store, "insp", "visible", png(100))]
    rig.scorer.fail = RuntimeError("kernel exploded")
    result = await rig.proc.handle(batch)  # a permanent error: no redelivery loop, offsets move on
    assert result is not None and result.dead_lettered == 1
    assert [d.error for d in rig.dead()] == ["kernel exploded"]
    assert rig.repo.image_scores == {}


class PoisonOnce(GreyScorer):
    """Fails any scoring call that includes an image of exactly one brightness (a record-specific bug)."""

    def score(self, items: Sequence[tuple[str, np.ndarray]]) -> list[float]:
        if any(abs(float(px.mean()) - 7 / 255) < 1e-3 for _, px in items):
            raise RuntimeError("kernel exploded on this image")
        return super().score(items)


async def test_one_failing_record_is_isolated_and_its_neighbours_of_every_partition_are_scored() -> None:
    rig = Rig()
    await rig.holder.swap(PoisonOnce())
    recs = []
    for i in range(13):
        rec = captured(rig.store, f"insp-{i}", "visible", png(7 if i == 5 else 100 + i))
        recs.append(RawRecord(rec.topic, i % 3, 100 + i, rec.key, rec.value))
    recs.append(recs[2])  # a duplicate in the same batch is dropped, not dead-lettered
    result = await rig.proc.handle(recs)
    assert result is not None
    assert len(rig.repo.image_scores) == 12
    assert [(d.partition, d.offset, d.error) for d in rig.dead()] == [(2, 105, "kernel exploded on this image")]
    # the redelivered batch scores nothing twice; its dead letter keeps its id (PostgreSQL claims stop a resend)
    await rig.proc.handle(recs)
    assert len(rig.repo.image_scores) == 12
    assert len({d.event_id for d in rig.dead()}) == 1


async def test_new_model_version_scores_new_images_after_a_swap() -> None:
    rig = Rig()
    await rig.proc.handle([captured(rig.store, "a", "visible", png(100))])
    await rig.holder.swap(GreyScorer(version="2"))
    await rig.proc.handle([captured(rig.store, "b", "visible", png(100))])
    versions = {(k[0], k[2]) for k in rig.repo.image_scores}
    events = {s.inspection_id: s.model_version for s in rig.scored()}
    assert events == {"a": "1", "b": "2"}
    assert len(versions) == 2


async def test_mode_without_a_model_is_dead_lettered() -> None:
    rig = Rig()
    rig.scorer._refs = {"visible": ModelRef("axis-visible", "1", 0.5)}
    await rig.proc.handle([captured(rig.store, "a", "uv", png(100)), captured(rig.store, "a", "visible", png(1))])
    assert [d.error_type for d in rig.dead()] == ["ModeWithoutModel"]
    assert "no model loaded for imaging mode uv" in rig.dead()[0].error
    assert len(rig.repo.image_scores) == 1


async def test_the_next_group_is_fetched_while_a_group_is_scored_one_mode_per_scoring_call() -> None:
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from axis_inference.pipeline import OVERLAP_GROUP

    rig = Rig()
    log: list[tuple[str, str, float]] = []
    lock = threading.Lock()
    prepare, score = rig.scorer.prepare, rig.scorer.score

    def slow_prepare(mode: str, data: bytes) -> np.ndarray:
        with lock:
            log.append(("fetch", mode, time.monotonic()))
        time.sleep(0.02)  # the object store's latency
        return prepare(mode, data)

    def slow_score(items: Sequence[tuple[str, np.ndarray]]) -> list[float]:
        modes = {m for m, _ in items}
        with lock:
            log.append(("score-start", ",".join(sorted(modes)), time.monotonic()))
        time.sleep(0.3)  # the forward pass; the next group's fetches must run meanwhile
        with lock:
            log.append(("score-end", ",".join(sorted(modes)), time.monotonic()))
        return score(items)

    rig.scorer.prepare = slow_prepare  # type: ignore[method-assign]
    rig.scorer.score = slow_score  # type: ignore[method-assign]
    with ThreadPoolExecutor(4) as io, ThreadPoolExecutor(1) as model:
        rig.proc._io, rig.proc._model = io, model
        batch = []
        for i in range(OVERLAP_GROUP):  # visible and uv alternate, as a robot sends them
            batch.append(captured(rig.store, f"insp-{i}", "visible", png(51)))
            batch.append(captured(rig.store, f"insp-{i}", "uv", png(204)))
        result = await rig.proc.handle(batch)
    assert result is not None and result.scored == 2 * OVERLAP_GROUP
    starts = [(m, t) for kind, m, t in log if kind == "score-start"]
    assert [m for m, _ in starts] == ["visible", "uv"]  # one mode per call: full forward passes
    first_end = next(t for kind, m, t in log if kind == "score-end" and m == "visible")
    uv_fetches = [t for kind, m, t in log if kind == "fetch" and m == "uv"]
    visible_fetches = [t for kind, m, t in log if kind == "fetch" and m == "visible"]
    assert len(uv_fetches) == OVERLAP_GROUP
    # the uv group is fetched after the visible one and during its forward pass, not all before the first
    assert min(uv_fetches) > max(visible_fetches) and max(uv_fetches) < first_end
    for scored in rig.scored():  # and every inspection still fused from both of its modes, in record order
        assert set(scored.scores) == {"visible", "uv"}
        assert scored.fused_probability == pytest.approx(0.8, abs=0.01)
