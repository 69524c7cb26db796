"""Fuzz the inference consumer's parse + handle path: every hostile record is scored or dead-lettered with a reason."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from axis_adapters.kafka import DeadLetterSink, RawRecord
from axis_contracts import DeadLetter, ImageCaptured, InvalidEvent, parse_event, topics
from axis_inference.metrics import Metrics
from axis_inference.models import ModelHolder, ModelRef
from axis_inference.pipeline import BatchProcessor
from axis_model.preprocess import PreprocessConfig, preprocess_bytes
from fakes import FakePublisher, InMemoryObjectStore, InMemoryScoresRepo
from fuzz_inputs import (
    ALLOWED_BUCKETS,
    DEEP_NESTING,
    FUZZ,
    GOOD_IMAGE,
    bad_images,
    count,
    forbidden_uris,
    mutate,
    raw_messages,
)
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.unit


class RealPreprocessScorer:
    """The model's real decoding and bomb guard; P(crystal) = mean brightness (the network is not under test)."""

    def __init__(self) -> None:
        self.config = PreprocessConfig(size=14, max_pixels=4_000_000)

    @property
    def refs(self) -> Mapping[str, ModelRef]:
        return {"visible": ModelRef("axis-visible", "1", 0.5), "uv": ModelRef("axis-uv", "1", 0.5)}

    def prepare(self, mode: str, data: bytes) -> np.ndarray:
        return preprocess_bytes(data, self.config)

    def score(self, items: Sequence[tuple[str, np.ndarray]]) -> list[float]:
        return [float(np.clip(px.mean(), 0.0, 1.0)) for _, px in items]


def valid_event(uri: str = "s3://axis-images/P1/A1/1/i1-visible.png", **extra: Any) -> dict[str, Any]:
    event = ImageCaptured(
        producer="robot",
        plate_barcode="P1",
        well="A1",
        inspection_id="i1",
        imaged_at=datetime(2026, 1, 1, tzinfo=UTC),
        imaging_mode="visible",  # type: ignore[arg-type]
        image_uri=uri,
    )
    return {**json.loads(event.to_bytes()), **extra}


def run_batch(records: list[RawRecord], store: InMemoryObjectStore) -> tuple[InMemoryScoresRepo, FakePublisher]:
    """One batch through a fresh BatchProcessor; fails the test if handle() raises."""
    repo, pub = InMemoryScoresRepo(), FakePublisher()

    async def go() -> None:
        holder = ModelHolder()
        await holder.swap(RealPreprocessScorer())  # type: ignore[arg-type]
        proc = BatchProcessor(
            store=store,
            repo=repo,
            publisher=pub,
            dead_letters=DeadLetterSink(pub, "axis-inference"),
            holder=holder,
            metrics=Metrics(),
            allowed_buckets=ALLOWED_BUCKETS,
            max_object_bytes=1_000_000,
            io_executor=None,
            model_executor=None,
            retry_backoff_s=0.0,
        )
        await proc.handle(records)

    asyncio.run(go())
    return repo, pub


def outcome(rec: RawRecord, repo: InMemoryScoresRepo, pub: FakePublisher) -> str:
    """'scored' or the dead letter's reason; fails when the record vanished or was rejected without a reason."""
    letters = [DeadLetter.model_validate_json(m) for m in pub.on(topics.DEAD_LETTER)]
    mine = [d for d in letters if d.offset == rec.offset]
    try:
        uri: str | None = parse_event(rec.value, ImageCaptured).image_uri
    except (InvalidEvent, RecursionError):
        uri = None
    if uri is not None and uri in {s.event.image_uri for s in repo.image_scores.values()}:
        assert not mine, f"scored and dead-lettered: {mine}"
        return "scored"
    assert len(mine) == 1, f"record at offset {rec.offset} neither scored nor dead-lettered once: {mine}"
    reason = mine[0].error.strip()
    assert len(reason) >= 8 and reason != mine[0].error_type, f"the rejection does not say why: {mine[0]}"
    return reason


def record(value: bytes, offset: int = 0) -> RawRecord:
    return RawRecord(topic=topics.IMAGE_CAPTURED, partition=0, offset=offset, key=b"P1:A1:1", value=value)


@FUZZ
@given(st.data())
def test_malformed_messages_are_dead_lettered_with_a_reason(data: st.DataObject) -> None:
    count("inference: malformed messages")
    store = InMemoryObjectStore()
    good = valid_event()
    store.put_bytes(good["image_uri"], GOOD_IMAGE)
    if data.draw(st.booleans(), label="raw bytes or mutated event"):
        value = data.draw(raw_messages(json.dumps(good).encode()), label="raw")
    else:
        value = json.dumps(mutate(good, data), default=str).encode()
    rec = record(value)
    repo, pub = run_batch([rec], store)
    outcome(rec, repo, pub)


@FUZZ
@given(bad_images, st.sampled_from(["visible", "uv"]))
def test_bad_images_are_dead_lettered_and_good_neighbours_scored(image: tuple[str, bytes], mode: str) -> None:
    count("inference: bad images")
    what, blob = image
    store = InMemoryObjectStore()
    bad = valid_event("s3://axis-images/P1/A1/1/bad.img", imaging_mode=mode)
    good = valid_event("s3://axis-images/P1/A2/1/good.png", well="A2", inspection_id="i2", imaging_mode=mode)
    store.put_bytes(bad["image_uri"], blob)
    store.put_bytes(good["image_uri"], GOOD_IMAGE)
    recs = [record(json.dumps(bad).encode(), 0), record(json.dumps(good).encode(), 1)]
    repo, pub = run_batch(recs, store)
    reason = outcome(recs[0], repo, pub)
    assert outcome(recs[1], repo, pub) == "scored", "a bad image must not stop the rest of the batch"
    if what in ("zero bytes", "decompression bomb", "truncated png", "text"):
        assert reason != "scored", f"{what} was scored"
    if what == "decompression bomb":
        assert "too large" in reason or "bomb" in reason


@FUZZ
@given(forbidden_uris | st.sampled_from(["s3://axis-images/missing.png", "s3://axis-datasets/none.jpg"]))
def test_uris_outside_the_allowed_buckets_or_missing_objects_are_refused(uri: str) -> None:
    count("inference: forbidden or missing URIs")
    store = InMemoryObjectStore()
    for bucket in ("axis-mlflow", "axis-tansu", "other-bucket"):
        store.put_bytes(f"s3://{bucket}/x", GOOD_IMAGE)  # present, but not ours to read
    if uri.startswith(("s3://axis-mlflow/", "s3://other")):
        store.put_bytes(uri, GOOD_IMAGE)
    rec = record(json.dumps({**valid_event(), "image_uri": uri}).encode())
    repo, pub = run_batch([rec], store)
    reason = outcome(rec, repo, pub)
    assert reason != "scored", f"{uri} was read and scored"
    lowered = reason.lower()
    assert any(w in lowered for w in ("bucket", "image_uri", "no object", "'..'", "uri")), reason


@FUZZ
@given(st.data())
def test_a_poison_message_does_not_take_its_neighbours_down(data: st.DataObject) -> None:
    count("inference: poison + good batch")
    store = InMemoryObjectStore()
    good = valid_event("s3://axis-images/P1/A2/1/good.png", well="A2", inspection_id="i2")
    store.put_bytes(good["image_uri"], GOOD_IMAGE)
    poison = data.draw(raw_messages(json.dumps(good).encode(), deep=False), label="poison")
    recs = [record(poison, 0), record(json.dumps(good).encode(), 1)]
    repo, pub = run_batch(recs, store)
    if parse_ok(poison):
        return  # the mutation happened to be a valid event (e.g. the same one): nothing to reject
    outcome(recs[0], repo, pub)
    assert outcome(recs[1], repo, pub) == "scored"


def parse_ok(value: bytes) -> bool:
    try:
        parse_event(value, ImageCaptured)
    except (InvalidEvent, RecursionError):
        return False
    return True


@pytest.mark.parametrize("nested", DEEP_NESTING, ids=["lists", "objects"])
def test_deeply_nested_json_is_rejected_alone(nested: bytes) -> None:
    count("inference: deep nesting")
    store = InMemoryObjectStore()
    good = valid_event("s3://axis-images/P1/A2/1/good.png", well="A2", inspection_id="i2")
    store.put_bytes(good["image_uri"], GOOD_IMAGE)
    recs = [record(nested, 0), record(json.dumps(good).encode(), 1)]
    repo, pub = run_batch(recs, store)
    assert outcome(recs[1], repo, pub) == "scored"
