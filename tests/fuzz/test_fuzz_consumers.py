"""Fuzz the discrepancy consumer's decode step and the trainer's handler: hostile records are rejected with a reason."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID, uuid4

import pytest
from axis_adapters.kafka import RawRecord
from axis_contracts import DEFAULT_SCHEME, CrystalScored, DeadLetter, ModeScore, UserScored, topics
from axis_discrepancy.service import decode
from axis_model.spec import BaseSpec
from axis_trainer.pipeline import Trainer
from axis_trainer.service import TrainerService
from axis_trainer.settings import TrainerOptions
from fakes import FakePublisher, InMemoryObjectStore
from fuzz_inputs import FUZZ, FUZZ_SMALL, count, mutate, raw_messages
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def crystal_scored() -> dict[str, Any]:
    mode = ModeScore(
        probability=0.7,
        threshold=0.5,
        model_name="axis-visible",
        model_version="1",
        image_uri="s3://axis-images/P1/A1/1/v.jpg",
        image_event_id=uuid4(),
    )
    event = CrystalScored(
        producer="axis-inference",
        plate_barcode="P1",
        well="A1",
        inspection_id="i1",
        imaged_at=NOW,
        scores={"visible": mode},  # type: ignore[dict-item]
        fused_probability=0.7,
        label="crystal",
        threshold=0.5,
        model_name="axis-visible",
        model_version="1",
    )
    return dict(json.loads(event.to_bytes()))


def user_scored() -> dict[str, Any]:
    event = UserScored(producer="lims", inspection_id="i1", user_id="u1", score="clear", scored_at=NOW)
    return dict(json.loads(event.to_bytes()))


def _decode(topic: str, value: bytes) -> Any:
    rec = RawRecord(topic=topic, partition=0, offset=0, key=None, value=value)
    return decode(rec, crystal_topic=topics.CRYSTAL_SCORED, user_topic=topics.USER_SCORED, scheme=DEFAULT_SCHEME)


@FUZZ
@given(st.sampled_from([topics.CRYSTAL_SCORED, topics.USER_SCORED]), st.data())
def test_discrepancy_decode_never_raises_and_says_why(topic: str, data: st.DataObject) -> None:
    count("discrepancy: decode")
    base = crystal_scored() if topic == topics.CRYSTAL_SCORED else user_scored()
    if data.draw(st.booleans(), label="raw or mutated"):
        value = data.draw(raw_messages(json.dumps(base).encode(), deep=False), label="raw")
    else:
        value = json.dumps(mutate(base, data), default=str).encode()
    out = _decode(topic, value)  # must not raise
    assert (out.error is None) != (out.ml is None and out.user is None)
    if out.error is not None:
        assert len(str(out.error).strip()) >= 8, f"rejection without a reason: {out.error!r}"


@FUZZ_SMALL
@given(st.sampled_from(["2026-01-01T00:00:00", "2026-01-01", "not a time", "", "2026-01-01T00:00:00+99:00"]))
def test_naive_or_garbage_user_score_times_are_rejected_naming_the_field(when: str) -> None:
    count("discrepancy: timestamps")
    out = _decode(topics.USER_SCORED, json.dumps({**user_scored(), "scored_at": when}).encode())
    assert out.error is not None and "scored_at" in str(out.error)


def test_discrepancy_decode_rejects_deeply_nested_json() -> None:
    count("discrepancy: deep nesting")
    out = _decode(topics.USER_SCORED, b"[" * 5000)
    assert out.error is not None


# ------------------------------------------------------------------------------------------------ trainer
class _FakeMlflow:
    """Just enough of MlflowClient for the trainer to record a FAILED run."""

    def __init__(self) -> None:
        self.failed: list[dict[str, str]] = []

    def get_experiment_by_name(self, name: str) -> Any:
        return SimpleNamespace(experiment_id="1")

    def create_run(self, experiment_id: str, **kwargs: Any) -> Any:
        self.failed.append({})
        return SimpleNamespace(info=SimpleNamespace(run_id=f"run-{len(self.failed)}"))

    def set_tag(self, run_id: str, key: str, value: str) -> None:
        self.failed[-1][key] = value

    def set_terminated(self, run_id: str, status: str = "FINISHED") -> None:
        self.failed[-1]["status"] = status


class _NoRegistry:
    """The trainer must reject bad datasets before it ever asks the registry for a champion."""

    def __init__(self) -> None:
        self.client = _FakeMlflow()

    def champion(self, name: str) -> None:
        return None

    def find_versions(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


def dataset_exported(uri: str = "s3://axis-datasets/crystals/1/manifest.jsonl") -> dict[str, Any]:
    return {
        "event_id": str(uuid4()),
        "event_type": "DatasetExported",
        "producer": "curation",
        "dataset_name": "crystals",
        "dataset_version": "1",
        "manifest_uri": uri,
        "manifest_sha256": "0" * 64,
        "qc_report_uri": "s3://axis-datasets/crystals/1/qc_report.json",
    }


def run_trainer(value: bytes, store: InMemoryObjectStore, tmp: Path) -> list[DeadLetter]:
    pub = FakePublisher()
    done: set[UUID] = set()
    trainer = Trainer(
        store=store,
        registry=_NoRegistry(),  # type: ignore[arg-type]
        base=BaseSpec.tiny(),
        options=TrainerOptions(),
        model_names={"visible": "axis-visible", "uv": "axis-uv"},
        work_dir=tmp,
        say=lambda line: None,
    )
    service = TrainerService(
        trainer=trainer, publisher=pub, consumer="axis-trainer", is_processed=done.__contains__, mark_processed=done.add
    )
    rec = RawRecord(topic=topics.DATASET_EXPORTED, partition=0, offset=0, key=None, value=value)
    outcomes = asyncio.run(service.handle(rec))
    assert outcomes == [], "nothing may be trained from a hostile event"
    return [DeadLetter.model_validate_json(m) for m in pub.on(topics.DEAD_LETTER)]


@FUZZ_SMALL
@given(data=st.data())
def test_trainer_rejects_hostile_dataset_events_with_a_reason(data: st.DataObject, tmp_path: Path) -> None:
    count("trainer: DatasetExported")
    base = dataset_exported()
    if data.draw(st.booleans(), label="raw or mutated"):
        value = data.draw(raw_messages(json.dumps(base).encode(), deep=False), label="raw")
    else:
        value = json.dumps(mutate(base, data), default=str).encode()
    letters = run_trainer(value, InMemoryObjectStore(), tmp_path)
    assert len(letters) == 1, "a hostile DatasetExported is dead-lettered exactly once"
    assert len(letters[0].error.strip()) >= 8


@FUZZ_SMALL
@given(manifest=st.binary(max_size=300) | st.sampled_from([b"", b"{not json}\n", b'{"image_uri": 1}\n', b"\xff"]))
def test_trainer_rejects_garbage_manifests_with_a_reason(manifest: bytes, tmp_path: Path) -> None:
    count("trainer: manifests")
    store = InMemoryObjectStore()
    event = dataset_exported()
    store.put_bytes(event["manifest_uri"], manifest)
    letters = run_trainer(json.dumps(event).encode(), store, tmp_path)
    assert len(letters) == 1 and "manifest" in letters[0].error.lower()


class RecordingStore(InMemoryObjectStore):
    """Remembers every URI read."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def get_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        self.reads.append(uri)
        return super().get_bytes(uri, max_bytes)


@given(uri=st.sampled_from(["s3://axis-mlflow/artifacts/manifest.jsonl", "s3://other-bucket/manifest.jsonl"]))
@FUZZ_SMALL
def test_trainer_refuses_manifests_outside_the_allowed_buckets(uri: str, tmp_path: Path) -> None:
    count("trainer: forbidden URIs")
    store = RecordingStore()
    store.put_bytes(uri, b'{"image_uri": "s3://axis-images/x.png", "label": "crystal"}\n')
    letters = run_trainer(json.dumps(dataset_exported(uri)).encode(), store, tmp_path)
    assert uri not in store.reads, f"the trainer read {uri}"
    assert letters and "bucket" in letters[0].error.lower()
