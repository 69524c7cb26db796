"""The trainer's event handler: DatasetExported → training job → ModelRegistered (or a dead letter)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from uuid import UUID

from axis_adapters.kafka import DeadLetterSink, Publisher, RawRecord, publish_event
from axis_adapters.objectstore import ObjectStoreUnavailable
from axis_contracts import DatasetExported
from axis_contracts.parsing import InvalidEvent, parse_event

from axis_trainer.pipeline import DatasetRef, ModeOutcome, Trainer, TrainingFailed, TrainRequest, run_training

log = logging.getLogger("axis_trainer")
TRANSIENT: tuple[type[BaseException], ...] = (ObjectStoreUnavailable, ConnectionError, TimeoutError)


def request_of(event: DatasetExported, *, start_from: str) -> TrainRequest:
    """The training request an exported dataset asks for."""
    ref = DatasetRef(event.dataset_name, event.dataset_version, event.manifest_uri, event.manifest_sha256)
    return TrainRequest(dataset=ref, start_from=start_from)


@dataclass
class TrainerService:
    """Consumes DatasetExported (one at a time), trains in a worker thread, publishes ModelRegistered."""

    trainer: Trainer
    publisher: Publisher
    consumer: str
    is_processed: Callable[[UUID], bool]
    mark_processed: Callable[[UUID], None]

    async def handle(self, record: RawRecord) -> list[ModeOutcome]:
        """Process one record; bad events and untrainable datasets are dead-lettered, transient errors raise."""
        sink = DeadLetterSink(self.publisher, self.consumer)
        try:
            event = parse_event(record.value, DatasetExported)
        except InvalidEvent as exc:
            await sink.reject(record, exc)
            return []
        if await asyncio.to_thread(self.is_processed, event.event_id):
            log.info("DatasetExported %s already processed; skipped", event.event_id)
            return []
        if event.purpose == "test":
            log.info(
                "dataset %s@%s is a frozen test set: used for evaluation, not trained on",
                event.dataset_name,
                event.dataset_version,
            )
            await asyncio.to_thread(self.mark_processed, event.event_id)
            return []
        request = request_of(event, start_from=self.trainer.options.start_from)
        try:
            outcomes = await asyncio.to_thread(run_training, self.trainer, request)
        except TrainingFailed as exc:
            await sink.reject(record, exc)
            await asyncio.to_thread(self.mark_processed, event.event_id)
            return []
        except TRANSIENT:
            raise
        except Exception as exc:  # a bug or a model/data mismatch: retrying would fail the same way
            log.exception("training on %s@%s failed", event.dataset_name, event.dataset_version)
            await sink.reject(record, exc)
            await asyncio.to_thread(self.mark_processed, event.event_id)
            return []
        for outcome in outcomes:
            await publish_event(self.publisher, outcome.event(request.dataset))
        await asyncio.to_thread(self.mark_processed, event.event_id)
        return outcomes
