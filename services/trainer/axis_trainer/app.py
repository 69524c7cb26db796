"""Wiring of the trainer: settings → store, registry, trainer, subscriber. The only place adapters are built."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axis_adapters.db import async_pool
from axis_adapters.kafka import DeadLetterSink, RawRecord, consumer_options, make_broker
from axis_adapters.lifecycle import start_health_server
from axis_adapters.liveness import consumer_gone
from axis_adapters.objectstore import MinioObjectStore
from axis_adapters.publisher import EventPublisher
from axis_adapters.registry import ModelRegistry
from axis_adapters.subscriber import raw_subscriber
from axis_contracts import DatasetExported, DeadLetter, ModelRegistered, topics
from axis_model.spec import BaseSpec
from faststream import FastStream
from faststream.kafka import KafkaBroker

from axis_trainer import db
from axis_trainer.pipeline import DatasetRef, Trainer
from axis_trainer.service import TrainerService
from axis_trainer.settings import CONSUMER_GROUP, TrainerSettings

log = logging.getLogger("axis_trainer")
MAX_POLL_INTERVAL_MS = 6 * 3600 * 1000  # a training job may hold the consumer for hours


def base_spec(settings: TrainerSettings) -> BaseSpec:
    """The base weights: AXIS_MODEL__BASE_PATH (a directory, ``tiny``, ``base`` or a hub id); default ``tiny``."""
    return BaseSpec.named(settings.model.base_path or "tiny")


def build_trainer(settings: TrainerSettings, *, say: Any = None) -> Trainer:
    """A Trainer over MinIO, the MLflow registry and the datasets table."""
    opts = settings.trainer

    def find_test_set() -> DatasetRef | None:
        if opts.test_manifest_uri:
            return DatasetRef("test-set", "configured", opts.test_manifest_uri, None)
        return db.latest_test_set(settings.postgres)

    work = Path(opts.work_dir) if opts.work_dir else None
    trainer = Trainer(
        store=MinioObjectStore(settings.s3),
        registry=ModelRegistry(settings.mlflow.tracking_uri),
        base=base_spec(settings),
        options=opts,
        model_names={"visible": settings.mlflow.visible_model, "uv": settings.mlflow.uv_model},
        experiment=settings.mlflow.experiment,
        find_test_set=find_test_set,
        say=say or (lambda line: log.info("%s", line)),
        allowed_buckets=list(settings.s3.allowed_buckets),
    )
    if work is not None:
        work.mkdir(parents=True, exist_ok=True)
        trainer.work_dir = work
    return trainer


def publish_to(broker: Any) -> EventPublisher:
    """What the trainer sends: a ModelRegistered per version, and a DeadLetter for a dataset it cannot use."""
    return EventPublisher(broker, "trainer", (ModelRegistered, DeadLetter))


def build_service(settings: TrainerSettings, broker: Any, *, say: Any = None) -> TrainerService:
    """The handler over a trainer and a broker used for publishing (not started yet: its publishers are
    declared here)."""
    return TrainerService(
        trainer=build_trainer(settings, say=say),
        publisher=publish_to(broker),
        consumer=CONSUMER_GROUP,
        is_processed=lambda eid: db.already_processed(settings.postgres, CONSUMER_GROUP, eid),
        mark_processed=lambda eid: db.mark_processed(settings.postgres, CONSUMER_GROUP, eid),
        record_test_set=lambda event: db.record_test_set(settings.postgres, event),
    )


def register(broker: KafkaBroker, settings: TrainerSettings, service: TrainerService) -> Any:
    """Subscribe the handler to DatasetExported in the trainer's consumer group (one record at a time)."""

    async def on_dataset(records: list[RawRecord]) -> None:
        for record in records:
            await service.handle(record)

    return raw_subscriber(
        broker,
        {topics.DATASET_EXPORTED: DatasetExported},
        on_dataset,
        party="trainer",
        group_id=CONSUMER_GROUP,
        batch=False,
        max_poll_interval_ms=MAX_POLL_INTERVAL_MS,
        **consumer_options(settings.kafka),
    )


async def attach_dead_letters(settings: TrainerSettings, service: TrainerService, broker: Any) -> Any:
    """Give the service a dead-letter sink over its own schema's claims (a record dead-lettered once); returns
    the pool (close it on shutdown)."""
    pool = await async_pool(settings.postgres, max_size=2, check_connections=True)
    service.dead_letters = DeadLetterSink(
        service.publisher,
        CONSUMER_GROUP,
        store=MinioObjectStore(settings.s3),
        keep_bytes=settings.kafka.dead_letter_keep_bytes,
        pool=pool,
    )
    return pool


def create_app(settings: TrainerSettings) -> FastStream:
    """The FastStream application run by ``python -m axis_trainer``: the subscriber, and /health + /metrics on
    ``AXIS_TRAINER__HTTP_HOST:HTTP_PORT`` while the broker runs (the app does not start when the port is taken)."""
    broker = make_broker(settings.kafka)
    service = build_service(settings, broker)
    register(broker, settings, service)
    app = FastStream(broker)
    served: list[Any] = []
    pools: list[Any] = []

    @app.on_startup
    async def open_dead_letters() -> None:
        pools.append(await attach_dead_letters(settings, service, broker))

    async def health() -> tuple[bool, dict[str, Any]]:
        return service.jobs.health(consumer_gone(broker))

    async def metrics() -> str:
        return service.jobs.prometheus(consumer_gone(broker))

    @app.after_startup
    async def serve_health() -> None:
        http = await start_health_server(settings.trainer, health=health, metrics=metrics)
        if http is None:
            raise RuntimeError(f"cannot serve /health on port {settings.trainer.http_port}")
        served.append(http)
        log.info("health and metrics on http://%s:%s/health", settings.trainer.http_host, http.port)

    @app.after_shutdown
    async def stop_health() -> None:
        for http in served:
            await http.stop()
        for pool in pools:
            await pool.close()

    return app


@dataclass
class RunningTrainer:
    """The service started on the caller's event loop (tests); ``stop()`` ends it."""

    broker: KafkaBroker
    service: TrainerService
    pool: Any = None

    @classmethod
    async def start(cls, settings: TrainerSettings, *, say: Any = None) -> RunningTrainer:
        """Subscribe and start the broker; the consumer group joins shortly after."""
        broker = make_broker(settings.kafka)
        service = build_service(settings, broker, say=say)
        pool = await attach_dead_letters(settings, service, broker)
        register(broker, settings, service)
        await broker.start()
        return cls(broker=broker, service=service, pool=pool)

    async def stop(self) -> None:
        """Stop consuming, then close the dead-letter pool."""
        try:
            await self.broker.stop()
        finally:
            if self.pool is not None:
                await self.pool.close()
