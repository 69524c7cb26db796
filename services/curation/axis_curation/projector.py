"""Curation's event consumer: keeps its read model (axis_curation.read_model) from the other services' events.

Runs inside ``python -m axis_curation serve`` beside the web app (one service, one schema), as a FastStream
Kafka subscriber in its own consumer group ``axis-curation-read-model-<generation>``: a new schema, or
``python -m axis_curation rebuild``, starts a new generation that reads every topic from the earliest offset.
A bad record is dead-lettered once with its reason and its neighbours are applied; a transient failure is
retried, then the batch is redelivered (offsets are committed only after the transaction).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from axis_adapters.consumer import IsolatingBatchHandler
from axis_adapters.db import async_pool
from axis_adapters.kafka import DeadLetterSink, RawRecord, consumer_options, make_broker, publish_event
from axis_adapters.liveness import ConsumerProgress
from axis_adapters.objectstore import MinioObjectStore
from axis_adapters.publisher import EventPublisher
from axis_adapters.retry import RetryPolicy, retry_async
from axis_adapters.settings import KafkaSettings
from axis_adapters.subscriber import raw_subscriber
from axis_contracts import ComparisonRecorded, CrystalScored, CuratorLabelled, DeadLetter, DiscrepancyFound, topics
from axis_contracts.events import Event
from axis_contracts.parsing import decode_json, validate_event
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from axis_curation import read_model
from axis_curation.settings import CurationSettings

log = logging.getLogger(__name__)

CONSUMED: dict[str, type[Event]] = {
    topics.CRYSTAL_SCORED: CrystalScored,
    topics.COMPARISON_RECORDED: ComparisonRecorded,
    topics.DISCREPANCY_FOUND: DiscrepancyFound,
    topics.CURATOR_LABELLED: CuratorLabelled,
}
GROUP_PREFIX = "axis-curation-read-model"


async def current_group(conn: AsyncConnection) -> str:
    """The consumer group of the read model's current generation."""
    cur = await conn.execute("SELECT generation FROM read_model_state")
    row = await cur.fetchone()
    if row is None:
        raise RuntimeError("read_model_state is empty: the curation migrations were not applied")
    return f"{GROUP_PREFIX}-{row[0]}"


def decode(record: RawRecord, context: dict[str, Any]) -> Event:
    """The record as the event its topic carries (InvalidEvent / ValueError name what is wrong)."""
    cls = CONSUMED.get(record.topic)
    if cls is None:
        raise ValueError(f"curation does not consume topic {record.topic!r}")
    return validate_event(decode_json(record.value), cls, context=context)


class Projector:
    """Applies a batch of records to the read model in one transaction; bad records are dead-lettered."""

    def __init__(self, *, pool: AsyncConnectionPool, dead_letters: DeadLetterSink, max_future_skew_s: float) -> None:
        self._pool = pool
        self._context = {"max_future_skew_s": max_future_skew_s}
        self.handle = IsolatingBatchHandler(self._apply, dead_letters=dead_letters, name="curation read model")
        self.applied = 0

    async def _apply(self, records: Sequence[RawRecord]) -> None:
        events: list[Event] = []
        rejects: list[tuple[RawRecord, Exception]] = []
        for rec in records:
            try:
                events.append(decode(rec, self._context))
            except (ValueError, TypeError) as exc:
                rejects.append((rec, exc))
        async with self._pool.connection() as conn, conn.transaction():
            await read_model.apply_scores(conn, [e for e in events if isinstance(e, CrystalScored)])
            await read_model.apply_comparisons(conn, [e for e in events if isinstance(e, ComparisonRecorded)])
            await read_model.apply_discrepancies(conn, [e for e in events if isinstance(e, DiscrepancyFound)])
            await read_model.apply_labels(conn, [e for e in events if isinstance(e, CuratorLabelled)])
        if rejects:
            await self.handle.dead_letters.reject_once(rejects)
        self.applied += len(events)


@dataclass
class RunningProjector:
    """The projector started on the caller's loop; ``stop()`` ends it (in-flight batch finished)."""

    broker: Any
    pool: AsyncConnectionPool
    projector: Projector
    group: str
    progress: ConsumerProgress = field(default_factory=ConsumerProgress)
    publisher: Any = None  # the projector's EventPublisher (CuratorLabelled, DeadLetter); else the broker

    async def publish_labels(self, stop: asyncio.Event, *, every_s: float = 0.5) -> None:
        """Publish the curators' pending label events (outbox ``label_events``) until ``stop``."""
        while not stop.is_set():
            try:
                await publish_pending_labels(self.pool, self.publisher or self.broker)
            except Exception as exc:  # broker or database away: the rows stay pending, tried again
                log.warning("label events not published yet (%r)", exc)
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=every_s)

    def health(self) -> dict[str, Any]:
        return {"group": self.group, "applied": self.projector.applied, **self.progress.as_dict()}

    async def stop(self) -> None:
        with suppress(Exception):
            await self.broker.stop()
        await self.pool.close()


def publish_to(broker: Any) -> EventPublisher:
    """What the read model's side sends: the curators' label events (outbox relay) and its dead letters."""
    return EventPublisher(broker, "curation", (CuratorLabelled, DeadLetter))


def subscribe(
    broker: Any,
    group: str,
    handle: Callable[[list[RawRecord]], Awaitable[Any]],
    progress: ConsumerProgress | None,
    *,
    batch: int,
    kafka: KafkaSettings,
) -> Any:
    """The read model's subscriber: every topic of CONSUMED, in the group of the current generation."""
    return raw_subscriber(
        broker,
        CONSUMED,
        handle,
        party="curation",
        group_id=group,
        progress=progress,
        max_records=batch,
        batch_timeout_ms=100,
        **consumer_options(kafka),
    )


async def start_projector(settings: CurationSettings) -> RunningProjector:
    """Connect (PostgreSQL, broker), subscribe the read model's group to its topics and start consuming."""
    opts = settings.curation
    pool = await async_pool(settings.postgres, max_size=2, check_connections=True)
    try:
        async with pool.connection() as conn:
            group = await current_group(conn)
        broker = make_broker(settings.kafka)
        publisher = publish_to(broker)
        sink = DeadLetterSink(
            publisher,
            group,
            store=MinioObjectStore(settings.s3),
            keep_bytes=settings.kafka.dead_letter_keep_bytes,
            pool=pool,
        )
        projector = Projector(pool=pool, dead_letters=sink, max_future_skew_s=settings.max_future_skew_s)
        progress = ConsumerProgress(stall_after_s=opts.read_model_stall_after_s)
        subscribe(broker, group, projector.handle, progress, batch=opts.read_model_batch, kafka=settings.kafka)
        await broker.start()
    except BaseException:
        await pool.close()
        raise
    log.info("curation read model: consuming %s as group %s", ", ".join(CONSUMED), group)
    return RunningProjector(
        broker=broker, pool=pool, projector=projector, group=group, progress=progress, publisher=publisher
    )


async def publish_pending_labels(pool: AsyncConnectionPool, broker: Any, *, limit: int = 500) -> int:
    """Send the unpublished CuratorLabelled of ``label_events`` in the order they were made; the count sent."""
    total = 0
    while True:
        async with pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "SELECT event_id, payload FROM label_events WHERE published_at IS NULL "
                "ORDER BY created_at, event_id LIMIT %s FOR UPDATE SKIP LOCKED",
                (limit,),
            )
            rows = await cur.fetchall()
            for _, payload in rows:  # in order: a label before its undo
                await publish_event(broker, CuratorLabelled.model_validate(payload))
            if rows:
                await conn.execute(
                    "UPDATE label_events SET published_at = now() WHERE event_id = ANY(%s)", ([r[0] for r in rows],)
                )
        total += len(rows)
        if len(rows) < limit:
            return total


async def run_with_retries(settings: CurationSettings, stop: asyncio.Event) -> RunningProjector | None:
    """Start the projector, retrying while PostgreSQL or the broker are not reachable yet; None when stopped."""
    policy = RetryPolicy(attempts=1_000_000, base_delay_s=1.0, max_delay_s=15.0)
    task = asyncio.ensure_future(retry_async(lambda: start_projector(settings), policy=policy, what="read model"))
    waiter = asyncio.ensure_future(stop.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not task.done():
        task.cancel()
        with suppress(BaseException):
            await task
        return None
    return task.result()
