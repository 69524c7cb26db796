"""The trainer's event handler: DatasetExported → training job → ModelRegistered (or a dead letter)."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

from axis_adapters.kafka import DeadLetterSink, Publisher, RawRecord, publish_event
from axis_adapters.registry import RegisteredVersion
from axis_adapters.retry import is_transient
from axis_contracts import DatasetExported, ImagingMode, ModelRegistered
from axis_contracts.parsing import InvalidEvent, parse_event

from axis_trainer.health import JobLog
from axis_trainer.pipeline import (
    PRODUCER,
    DatasetRef,
    ModeOutcome,
    Trainer,
    TrainingFailed,
    TrainRequest,
    run_training,
)

log = logging.getLogger("axis_trainer")


def request_of(event: DatasetExported, *, start_from: str, skip_modes: tuple[str, ...] = ()) -> TrainRequest:
    """The training request an exported dataset asks for."""
    ref = DatasetRef(event.dataset_name, event.dataset_version, event.manifest_uri, event.manifest_sha256)
    t = event.test_set
    test = None if t is None else DatasetRef(t.dataset_name, t.dataset_version, t.manifest_uri, t.manifest_sha256)
    return TrainRequest(
        dataset=ref, start_from=start_from, source_event_id=str(event.event_id), skip_modes=skip_modes, test_set=test
    )


def registered_event(version: RegisteredVersion, mode: str, event: DatasetExported) -> ModelRegistered:
    """ModelRegistered for a version registered earlier for the same DatasetExported event."""
    return ModelRegistered(
        producer=PRODUCER,
        model_name=version.name,
        version=version.version,
        imaging_mode=ImagingMode(mode),
        run_id=version.run_id,
        dataset_name=event.dataset_name,
        dataset_version=event.dataset_version,
        threshold=version.threshold,
        metrics={k: v for k, v in version.metrics.items() if k.startswith("test_")},
    )


@dataclass
class TrainerService:
    """Consumes DatasetExported (one at a time), trains in a worker thread, publishes ModelRegistered."""

    trainer: Trainer
    publisher: Publisher
    consumer: str
    is_processed: Callable[[UUID], bool]
    mark_processed: Callable[[UUID], None]
    record_test_set: Callable[[DatasetExported], None] = lambda event: None
    jobs: JobLog = field(default_factory=JobLog)  # what /health and /metrics show
    # with a pool (the app's), a record is dead-lettered once across redeliveries (dead_letter_claims)
    dead_letters: DeadLetterSink | None = None

    def _already_registered(self, event_id: str) -> dict[str, RegisteredVersion]:
        found = {}
        for mode, name in self.trainer.model_names.items():
            versions = self.trainer.registry.find_versions(name, "source_event_id", event_id)
            if versions:
                found[mode] = versions[0]
        return found

    async def handle(self, record: RawRecord) -> list[ModeOutcome]:
        """Process one record; bad events and untrainable datasets are dead-lettered, transient errors raise."""
        self.jobs.begin(*_dataset_of(record))
        try:
            outcomes = await self._handle(record)
        except BaseException as exc:  # transient: the record comes again
            self.jobs.end("retried", f"{type(exc).__name__}: {exc}"[:300])
            raise
        return outcomes

    async def _handle(self, record: RawRecord) -> list[ModeOutcome]:
        sink = self.dead_letters or DeadLetterSink(self.publisher, self.consumer)
        try:
            event = parse_event(record.value, DatasetExported)
        except InvalidEvent as exc:
            await sink.reject_once([(record, exc)])
            self.jobs.end("dead_lettered", str(exc)[:300])
            return []
        if await asyncio.to_thread(self.is_processed, event.event_id):
            log.info("DatasetExported %s already processed; skipped", event.event_id)
            self.jobs.end("duplicate")
            return []
        pattern = self.trainer.options.dataset_name_pattern
        if pattern and not re.fullmatch(pattern, event.dataset_name):
            log.info("dataset %s does not match %r: not for this trainer", event.dataset_name, pattern)
            self.jobs.end("skipped", f"name does not match {pattern!r}")
            return []
        if event.purpose == "test":
            await asyncio.to_thread(self.record_test_set, event)
            log.info(
                "dataset %s@%s is a frozen test set: used for evaluation, not trained on",
                event.dataset_name,
                event.dataset_version,
            )
            await asyncio.to_thread(self.mark_processed, event.event_id)
            self.jobs.end("test_set")
            return []
        done = await asyncio.to_thread(self._already_registered, str(event.event_id))
        request = request_of(event, start_from=self.trainer.options.start_from, skip_modes=tuple(done))
        for mode, version in done.items():  # redelivered after a crash: announce again, do not retrain
            log.info("%s v%s was already registered for event %s", version.name, version.version, event.event_id)
            await publish_event(self.publisher, registered_event(version, mode, event))
        try:
            outcomes = await asyncio.to_thread(run_training, self.trainer, request)
        except TrainingFailed as exc:
            await sink.reject_once([(record, exc)])
            await asyncio.to_thread(self.mark_processed, event.event_id)
            self.jobs.end("dead_lettered", str(exc)[:300])
            return []
        except Exception as exc:  # a bug or a model/data mismatch: retrying would fail the same way
            if is_transient(exc):  # the one rule of axis_adapters.retry: the event is redelivered
                raise
            log.exception("training on %s@%s failed", event.dataset_name, event.dataset_version)
            await sink.reject_once([(record, exc)])
            await asyncio.to_thread(self.mark_processed, event.event_id)
            self.jobs.end("dead_lettered", f"{type(exc).__name__}: {exc}"[:300])
            return []
        for outcome in outcomes:
            await publish_event(self.publisher, outcome.event(request.dataset))
        await asyncio.to_thread(self.mark_processed, event.event_id)
        versions = ", ".join(f"{o.model_name} v{o.version.version}" for o in outcomes)
        self.jobs.end("registered", versions)
        return outcomes


def _dataset_of(record: RawRecord) -> tuple[str, str]:
    """(dataset name, version) for /health before the record is validated ("?" where it does not say)."""
    import json

    try:
        body = json.loads(record.value)
    except (ValueError, TypeError):
        return "?", "?"
    if not isinstance(body, dict):
        return "?", "?"
    return str(body.get("dataset_name", "?"))[:200], str(body.get("dataset_version", "?"))[:200]
