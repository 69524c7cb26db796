"""Wiring of the discrepancy service: settings → broker, pool, subscriber. The only place adapters are built."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from axis_adapters.db import async_pool
from axis_adapters.kafka import consumer_options, make_broker, records_of
from faststream import AckPolicy, Context, FastStream
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from psycopg_pool import AsyncConnectionPool

from axis_discrepancy.service import DiscrepancyService
from axis_discrepancy.settings import DiscrepancySettings


async def _raw_bodies(message: Any) -> None:
    """Skip FastStream's JSON decoding of the batch: the handler decodes and validates each record itself."""
    return None


def register(broker: KafkaBroker, settings: DiscrepancySettings, service: Callable[[], DiscrepancyService]) -> None:
    """Subscribe the batch handler to both score topics in the service's consumer group."""
    opts = settings.discrepancy

    @broker.subscriber(
        opts.crystal_scored_topic,
        opts.user_scored_topic,
        batch=True,
        max_records=opts.max_records,
        batch_timeout_ms=opts.batch_timeout_ms,
        group_id=opts.group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        decoder=_raw_bodies,
        **consumer_options(settings.kafka),
    )
    async def on_scores(message: KafkaMessage = Context("message")) -> None:
        await service().handle(records_of(message))


def build_service(settings: DiscrepancySettings, *, pool: AsyncConnectionPool, broker: Any) -> DiscrepancyService:
    """The service over an open pool and a (started) broker."""
    opts = settings.discrepancy
    return DiscrepancyService(
        pool=pool,
        publisher=broker,
        scheme=settings.lims.score_scheme,
        crystal_topic=opts.crystal_scored_topic,
        user_topic=opts.user_scored_topic,
        consumer=opts.group_id,
        retry_delay_s=opts.retry_delay_s,
    )


def create_app(settings: DiscrepancySettings) -> FastStream:
    """The FastStream application run by ``python -m axis_discrepancy``."""
    broker = make_broker(settings.kafka)
    holder: dict[str, Any] = {}
    register(broker, settings, lambda: holder["service"])
    app = FastStream(broker)

    @app.on_startup
    async def open_pool() -> None:
        holder["pool"] = await async_pool(settings.postgres, max_size=settings.discrepancy.pool_size)
        holder["service"] = build_service(settings, pool=holder["pool"], broker=broker)

    @app.after_startup
    async def flush_outbox() -> None:
        await holder["service"].publish_pending()

    @app.after_shutdown
    async def close_pool() -> None:
        await holder["pool"].close()

    return app


@dataclass
class RunningService:
    """The service started on the caller's event loop (tests, benchmark); ``stop()`` ends it."""

    broker: KafkaBroker
    pool: AsyncConnectionPool
    service: DiscrepancyService

    @classmethod
    async def start(cls, settings: DiscrepancySettings, **broker_options: Any) -> RunningService:
        """Open the pool, subscribe, start the broker; the consumer group joins shortly after."""
        broker = make_broker(settings.kafka, **broker_options)
        pool = await async_pool(settings.postgres, max_size=settings.discrepancy.pool_size)
        service = build_service(settings, pool=pool, broker=broker)
        register(broker, settings, lambda: service)
        try:
            await broker.start()
        except BaseException:
            await pool.close()
            raise
        return cls(broker=broker, pool=pool, service=service)

    async def stop(self) -> None:
        """Stop consuming, then close the pool."""
        try:
            await self.broker.stop()
        finally:
            await self.pool.close()
