"""Wiring in one place: settings -> pool, object store, authenticator, exporter, broker."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from axis_adapters.kafka import Publisher
from axis_adapters.objectstore import ObjectStore
from axis_adapters.publisher import EventPublisher
from axis_contracts import DatasetExported

from axis_curation.auth import Authenticator, PostgresAccountStore
from axis_curation.consensus import ConsensusRule
from axis_curation.curation_repo import CurationRepo
from axis_curation.export import DatasetExporter
from axis_curation.export_jobs import ExportJobRunner
from axis_curation.export_jobs_repo import ExportJobsRepo
from axis_curation.object_streams import ObjectStreams
from axis_curation.settings import CurationOptions, CurationSettings


@dataclass
class Services:
    """Everything a request handler needs; built by ``build_services`` (or by a test with fakes)."""

    env: str
    options: CurationOptions
    repo: CurationRepo
    store: ObjectStore
    authenticator: Authenticator
    exporter: DatasetExporter
    allowed_buckets: list[str]
    publisher: Publisher | None = None  # the curation API's EventPublisher (DatasetExported), over ``broker``
    broker: Any | None = None  # connected by open_services, stopped by close_services
    closers: list[Any] = field(default_factory=list)
    patchmaps: Any | None = None  # api_patchmap.PatchMapSource: the overlay of the curator and well views
    exports: ExportJobRunner | None = None  # runs the dataset export jobs (started by open_services)
    object_streams: ObjectStreams | None = None  # dataset downloads, streamed

    @property
    def rule(self) -> ConsensusRule:
        """The consensus rule in force."""
        return ConsensusRule(self.options.consensus_min)


def publish_to(broker: Any) -> EventPublisher:
    """What the curation API and its export jobs send: DatasetExported (the projector's own: ``projector``)."""
    return EventPublisher(broker, "curation", (DatasetExported,))


def build_services(settings: CurationSettings, *, with_broker: bool = True) -> Services:
    """Connect to PostgreSQL, S3 and (optionally) Kafka from settings. Close with ``close_services``."""
    from axis_adapters.db import sync_pool
    from axis_adapters.kafka import make_broker
    from axis_adapters.objectstore import MinioObjectStore

    from axis_curation.object_streams import MinioObjectStreams

    opts = settings.curation
    pool = sync_pool(settings.postgres, max_size=8)
    repo = CurationRepo(pool)
    store = MinioObjectStore(settings.s3)
    auth = Authenticator(
        PostgresAccountStore(pool),
        session_ttl=timedelta(hours=opts.session_hours),
        api_token_ttl=timedelta(days=opts.api_token_days),
        bcrypt_rounds=opts.bcrypt_rounds,
    )
    exporter = DatasetExporter(
        repo=repo,
        store=store,
        bucket=settings.s3.datasets_bucket,
        consensus_min=opts.consensus_min,
        defaults=opts.dataset_defaults,
        max_image_bytes=opts.max_image_bytes,
    )
    broker = make_broker(settings.kafka) if with_broker else None
    publisher = publish_to(broker) if broker is not None else None
    patchmaps = None
    closers: list[Any] = [pool]
    if opts.patchmap_url:
        from axis_curation.api_patchmap import HttpPatchMapSource

        token = opts.patchmap_token.get_secret_value() if opts.patchmap_token else None
        patchmaps = HttpPatchMapSource(opts.patchmap_url, token)
        closers.append(patchmaps)
    return Services(
        env=settings.env,
        options=opts,
        repo=repo,
        store=store,
        authenticator=auth,
        exporter=exporter,
        allowed_buckets=list(settings.s3.allowed_buckets),
        publisher=publisher,
        broker=broker,
        closers=closers,
        patchmaps=patchmaps,
        exports=ExportJobRunner(
            jobs=ExportJobsRepo(pool), exporter=exporter, publisher=publisher, producer=opts.producer
        ),
        object_streams=MinioObjectStreams(settings.s3),
    )


async def open_services(services: Services, *, run_jobs: bool = True) -> None:
    """Connect the broker (if any) and start the export job runner (unless ``run_jobs`` is False)."""
    if services.broker is not None:
        await services.broker.connect()
    if run_jobs and services.exports is not None:
        services.exports.start(asyncio.get_running_loop())


async def close_services(services: Services) -> None:
    """Stop the export job runner (its running job goes back to the queue), close the broker and the pool."""
    if services.exports is not None:
        await asyncio.to_thread(services.exports.stop)
    if services.broker is not None:
        await services.broker.stop()
    for c in services.closers:
        c.close()
