"""The trainer's event handler with fakes: bad events dead-lettered, test sets and redeliveries not retrained."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from axis_adapters.kafka import RawRecord
from axis_contracts import DatasetExported, DeadLetter, ModelRegistered, topics
from axis_model.spec import BaseSpec
from axis_trainer import service as service_module
from axis_trainer.pipeline import Trainer, TrainingFailed, TrainRequest
from axis_trainer.service import TrainerService
from axis_trainer.settings import TrainerOptions
from fakes import FakePublisher, InMemoryObjectStore, InMemoryRegistry

pytestmark = pytest.mark.unit


def _event(**kw: Any) -> DatasetExported:
    return DatasetExported(
        producer="test",
        dataset_name=kw.pop("dataset_name", "train-x"),
        dataset_version="v1",
        manifest_uri="s3://axis-datasets/x/manifest.jsonl",
        manifest_sha256="a" * 64,
        qc_report_uri="s3://axis-datasets/x/qc.json",
        **kw,
    )


def _record(value: bytes) -> RawRecord:
    return RawRecord(topic=topics.DATASET_EXPORTED, partition=0, offset=7, key=b"k", value=value)


class Harness:
    def __init__(self, tmp_path: Path, options: TrainerOptions | None = None) -> None:
        self.registry = InMemoryRegistry(root=tmp_path / "reg")
        self.publisher = FakePublisher()
        self.processed: set[UUID] = set()
        self.requests: list[TrainRequest] = []
        trainer = Trainer(
            store=InMemoryObjectStore(),
            registry=self.registry,  # type: ignore[arg-type]
            base=BaseSpec.tiny(),
            options=options or TrainerOptions(),
            model_names={"visible": "axis-visible", "uv": "axis-uv"},
            work_dir=tmp_path,
        )
        self.service = TrainerService(
            trainer=trainer,
            publisher=self.publisher,
            consumer="axis-trainer",
            is_processed=lambda eid: eid in self.processed,
            mark_processed=self.processed.add,
        )

    def dead_letters(self) -> list[DeadLetter]:
        return [DeadLetter.model_validate_json(m) for m in self.publisher.on(topics.DEAD_LETTER)]

    def registered(self) -> list[ModelRegistered]:
        return [ModelRegistered.model_validate_json(m) for m in self.publisher.on(topics.MODEL_REGISTERED)]


@pytest.fixture
def fake_training(monkeypatch: pytest.MonkeyPatch) -> list[TrainRequest]:
    calls: list[TrainRequest] = []

    def run(trainer: Trainer, request: TrainRequest) -> list[Any]:
        calls.append(request)
        if "broken" in request.dataset.name:
            raise TrainingFailed("manifest line 3: image s3://axis-images/gone.png does not exist")
        return []

    monkeypatch.setattr(service_module, "run_training", run)
    return calls


async def test_invalid_event_goes_to_the_dead_letter_topic(tmp_path: Path, fake_training: list[TrainRequest]) -> None:
    h = Harness(tmp_path)
    await h.service.handle(_record(b'{"event_type": "DatasetExported"}'))
    (dl,) = h.dead_letters()
    assert dl.source_topic == topics.DATASET_EXPORTED and "manifest_uri" in dl.error
    assert fake_training == []


async def test_untrainable_dataset_is_dead_lettered_with_the_reason_once(
    tmp_path: Path, fake_training: list[TrainRequest]
) -> None:
    h = Harness(tmp_path)
    event = _event(dataset_name="broken-x")
    await h.service.handle(_record(event.to_bytes()))
    await h.service.handle(_record(event.to_bytes()))  # redelivered: already processed
    (dl,) = h.dead_letters()
    assert "gone.png does not exist" in dl.error and json.loads(dl.raw_value)["event_id"] == str(event.event_id)
    assert len(fake_training) == 1 and h.registered() == []


async def test_test_sets_and_foreign_datasets_are_not_trained(
    tmp_path: Path, fake_training: list[TrainRequest]
) -> None:
    h = Harness(tmp_path, TrainerOptions(dataset_name_pattern=r"facility-b-.*"))
    await h.service.handle(_record(_event(dataset_name="facility-b-test", purpose="test").to_bytes()))
    await h.service.handle(_record(_event(dataset_name="someone-else").to_bytes()))
    assert fake_training == [] and h.dead_letters() == []
    await h.service.handle(_record(_event(dataset_name="facility-b-train").to_bytes()))
    assert [r.dataset.name for r in fake_training] == ["facility-b-train"]


async def test_redelivery_after_a_crash_announces_the_registered_version_without_retraining(
    tmp_path: Path, fake_training: list[TrainRequest]
) -> None:
    h = Harness(tmp_path)
    event = _event()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "bundle.json").write_text("{}")
    # the first delivery registered the visible version, then the process died before committing the offset
    tags = {"source_event_id": str(event.event_id), "threshold": "0.3", "metric.test_recall": "0.96"}
    h.registry.register_bundle("axis-visible", bundle, "run-1", tags)
    await h.service.handle(_record(event.to_bytes()))
    (announced,) = h.registered()
    assert (announced.model_name, announced.version, announced.metrics) == ("axis-visible", "1", {"test_recall": 0.96})
    assert fake_training[0].skip_modes == ("visible",)


async def test_a_test_set_is_remembered_and_a_train_set_names_its_own(
    tmp_path: Path, fake_training: list[TrainRequest]
) -> None:
    """The trainer learns frozen test sets from DatasetExported (no query of curation's tables)."""
    from axis_contracts.events import DatasetPointer

    h = Harness(tmp_path)
    seen: list[str] = []
    h.service.record_test_set = lambda e: seen.append(f"{e.dataset_name}@{e.dataset_version}")
    await h.service.handle(_record(_event(dataset_name="frozen", purpose="test").to_bytes()))
    assert seen == ["frozen@v1"] and fake_training == []
    pointer = DatasetPointer(dataset_name="frozen", dataset_version="v1", manifest_uri="s3://axis-datasets/f/m.jsonl")
    await h.service.handle(_record(_event(dataset_name="train-y", test_set=pointer).to_bytes()))
    (request,) = fake_training
    assert request.test_set is not None
    assert (request.test_set.name, request.test_set.manifest_uri) == ("frozen", "s3://axis-datasets/f/m.jsonl")


async def test_health_shows_the_job_in_progress_and_counts_jobs_by_outcome(
    tmp_path: Path, fake_training: list[TrainRequest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """/health of the trainer: ``training`` with the dataset while a job runs, then the outcome counted."""
    h = Harness(tmp_path)
    seen: list[dict[str, Any]] = []

    def run(trainer: Trainer, request: TrainRequest) -> list[Any]:
        seen.append(h.service.jobs.health(None)[1])
        return []

    monkeypatch.setattr(service_module, "run_training", run)
    await h.service.handle(_record(_event(dataset_name="train-z").to_bytes()))
    (during,) = seen
    assert during["status"] == "training" and during["current"]["dataset"] == "train-z"
    await h.service.handle(_record(b"not json"))
    ok, body = h.service.jobs.health(None)
    assert ok and body["status"] == "ok" and body["current"] is None
    assert body["jobs_by_outcome"]["registered"] == 1 and body["jobs_by_outcome"]["dead_lettered"] == 1
    assert body["last"]["outcome"] == "dead_lettered" and body["last"]["dataset"] == "?"
    text = h.service.jobs.prometheus(None)
    assert 'axis_trainer_jobs_total{outcome="registered"} 1' in text and "axis_trainer_consumer_up 1" in text
    ok, body = h.service.jobs.health("the subscriber of axis.dataset.exported stopped")
    assert not ok and body["status"] == "stopped" and "stopped" in body["problem"]


async def test_a_transient_failure_is_counted_as_retried_and_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = Harness(tmp_path)

    def run(trainer: Trainer, request: TrainRequest) -> list[Any]:
        raise ConnectionError("MinIO went away")

    monkeypatch.setattr(service_module, "run_training", run)
    with pytest.raises(ConnectionError):
        await h.service.handle(_record(_event().to_bytes()))
    body = h.service.jobs.health(None)[1]
    assert body["jobs_by_outcome"]["retried"] == 1 and "MinIO went away" in body["last"]["detail"]
    assert h.dead_letters() == [] and h.processed == set()
