"""Wiring of the discrepancy service: settings → broker, pool, subscriber. The only place adapters are built.

``serve()`` is what ``python -m axis_discrepancy`` runs: start (riding out PostgreSQL or the broker restarting),
consume until SIGTERM/SIGINT (exit 0), and exit 1 with a CRITICAL log line when consuming cannot go on (the
consumer task is gone, or the database has been failing for ``AXIS_DISCREPANCY__MAX_OUTAGE_S``), so that a
supervisor restarts the process instead of it idling silently.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axis_adapters.db import async_pool
from axis_adapters.kafka import RawRecord, consumer_options, make_broker
from axis_adapters.lifecycle import run_until_stopped, start_health_server, start_unless_stopped
from axis_adapters.liveness import ConsumerProgress, consumer_gone
from axis_adapters.objectstore import MinioObjectStore
from axis_adapters.publisher import EventPublisher
from axis_adapters.retry import RetryPolicy, retry_async
from axis_adapters.subscriber import raw_subscriber
from axis_contracts import DeadLetter
from axis_contracts.events import (
    ComparisonRecorded,
    CrystalScored,
    CuratorLabelled,
    DiscrepancyFound,
    Event,
    ImageCaptured,
    UserScored,
)
from faststream.kafka import KafkaBroker
from psycopg_pool import AsyncConnectionPool

from axis_discrepancy.service import DiscrepancyService
from axis_discrepancy.settings import DiscrepancyOptions, DiscrepancySettings

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 30.0


def register(
    broker: KafkaBroker,
    settings: DiscrepancySettings,
    service: Callable[[], DiscrepancyService],
    progress: ConsumerProgress | None = None,
) -> Any:
    """Subscribe the batch handler to both score topics in the service's consumer group; returns the subscriber."""
    opts = settings.discrepancy
    progress = progress or ConsumerProgress(stall_after_s=opts.stall_after_s)
    consumed: dict[str, type[Event]] = {opts.crystal_scored_topic: CrystalScored, opts.user_scored_topic: UserScored}
    if opts.image_captured_topic:
        consumed[opts.image_captured_topic] = ImageCaptured
    if opts.curator_labelled_topic:
        consumed[opts.curator_labelled_topic] = CuratorLabelled

    async def on_scores(records: list[RawRecord]) -> None:
        await service().handle(records)

    return raw_subscriber(
        broker,
        consumed,
        on_scores,
        party="discrepancy",
        group_id=opts.group_id,
        progress=progress,
        max_records=opts.max_records,
        batch_timeout_ms=opts.batch_timeout_ms,
        **consumer_options(settings.kafka),
    )


def batch_policy(opts: DiscrepancyOptions) -> RetryPolicy:
    """Capped exponential back-off for one delivery of a batch (then NACK: the batch comes again)."""
    return RetryPolicy(
        attempts=opts.retry_attempts, base_delay_s=opts.retry_delay_s, max_delay_s=opts.retry_max_delay_s
    )


def startup_policy(opts: DiscrepancyOptions) -> RetryPolicy:
    """Back-off for reaching PostgreSQL and the broker at start."""
    return RetryPolicy(
        attempts=opts.startup_attempts, base_delay_s=opts.retry_delay_s, max_delay_s=opts.retry_max_delay_s
    )


async def open_pool(settings: DiscrepancySettings) -> AsyncConnectionPool:
    """The service's pool, opened within one attempt's time budget."""
    opts = settings.discrepancy
    return await async_pool(
        settings.postgres,
        max_size=opts.pool_size,
        open_timeout_s=min(30.0, opts.attempt_timeout_s),
        check_connections=True,
    )


def publish_to(broker: Any) -> EventPublisher:
    """What the service sends: every comparison, every new disagreement, and its dead letters."""
    return EventPublisher(broker, "discrepancy", (DiscrepancyFound, ComparisonRecorded, DeadLetter))


def build_service(settings: DiscrepancySettings, *, pool: AsyncConnectionPool, broker: Any) -> DiscrepancyService:
    """The service over an open pool and a broker that is not started yet (its publishers are declared here)."""
    opts = settings.discrepancy
    return DiscrepancyService(
        pool=pool,
        publisher=publish_to(broker),
        scheme=settings.lims.score_scheme,
        crystal_topic=opts.crystal_scored_topic,
        user_topic=opts.user_scored_topic,
        image_topic=opts.image_captured_topic,
        labels_topic=opts.curator_labelled_topic,
        consumer=opts.group_id,
        retry=batch_policy(opts),
        attempt_timeout_s=opts.attempt_timeout_s,
        store=MinioObjectStore(settings.s3),
        dead_letter_keep_bytes=settings.kafka.dead_letter_keep_bytes,
        max_future_skew_s=settings.max_future_skew_s,
        routing=opts.routing.policy(),
    )


@dataclass
class RunningService:
    """The service started on the caller's event loop (tests, benchmark, ``serve``); ``stop()`` ends it."""

    broker: KafkaBroker
    pool: AsyncConnectionPool
    service: DiscrepancyService
    progress: ConsumerProgress = field(default_factory=ConsumerProgress)
    subscriber: Any = None
    _strikes: int = field(default=0, repr=False)

    @classmethod
    async def start(cls, settings: DiscrepancySettings, **broker_options: Any) -> RunningService:
        """Open the pool, subscribe, start the broker; the consumer group joins shortly after."""
        pool = await open_pool(settings)
        broker = make_broker(settings.kafka, **broker_options)
        service = build_service(settings, pool=pool, broker=broker)
        progress = ConsumerProgress(stall_after_s=settings.discrepancy.stall_after_s)
        subscriber = register(broker, settings, lambda: service, progress)
        try:
            await broker.start()
        except BaseException:
            with suppress(Exception):
                await asyncio.wait_for(broker.stop(), timeout=STOP_TIMEOUT_S)
            await pool.close()
            raise
        return cls(broker=broker, pool=pool, service=service, progress=progress, subscriber=subscriber)

    @classmethod
    async def start_retrying(cls, settings: DiscrepancySettings, **broker_options: Any) -> RunningService:
        """``start`` until PostgreSQL and the broker answer (capped back-off); ``RetriesExhausted`` if they don't."""
        policy = startup_policy(settings.discrepancy)
        return await retry_async(lambda: cls.start(settings, **broker_options), policy=policy, what="start")

    def problem(self, max_outage_s: float) -> str | None:
        """Why consuming cannot go on (checked twice in a row before it counts), or None while it can."""
        found = self._consumer_gone()
        self._strikes = self._strikes + 1 if found else 0
        if found and self._strikes >= 2:
            return found
        since = self.service.failing_since
        if since is not None and time.monotonic() - since > max_outage_s:
            return (
                f"PostgreSQL or the broker has been failing for {time.monotonic() - since:.0f}s "
                f"(more than AXIS_DISCREPANCY__MAX_OUTAGE_S={max_outage_s:g})"
            )
        return None

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """/health: ok while consuming and making progress; the consumer's lag, dead letters by reason."""
        gone = self._consumer_gone()
        stalled = self.progress.stalled()
        since = self.service.failing_since
        status = "stopped" if gone else "stalled" if stalled else "retrying" if since is not None else "ok"
        body = {
            "status": status,
            "problem": gone or stalled,
            "consumer": self.progress.as_dict(),
            "dead_lettered_by_reason": dict(self.service.dead_letters.by_reason),
            "failing_for_s": None if since is None else round(time.monotonic() - since, 1),
        }
        return status == "ok", body

    async def metrics(self) -> str:
        """/metrics: Prometheus text."""
        lines = self.progress.prometheus("axis_discrepancy")
        lines.append("# TYPE axis_discrepancy_dead_lettered_total counter")
        reasons = self.service.dead_letters.by_reason or {"none": 0}
        lines += [f'axis_discrepancy_dead_lettered_total{{reason="{r}"}} {n}' for r, n in sorted(reasons.items())]
        return "\n".join(lines) + "\n"

    async def watch_lag(self, every_s: float) -> None:
        """Refresh the consumer's lag every ``every_s`` seconds (until cancelled)."""
        while True:
            with suppress(Exception):  # a rebalance or a broker restart: next tick
                await self.progress.refresh(getattr(self.subscriber, "consumer", None))
            await asyncio.sleep(every_s)

    def _consumer_gone(self) -> str | None:
        return consumer_gone(self.broker)

    async def stop(self) -> None:
        """Stop consuming, then close the pool."""
        try:
            await asyncio.wait_for(self.broker.stop(), timeout=STOP_TIMEOUT_S)
        except TimeoutError:
            log.error("the broker did not stop within %.0fs", STOP_TIMEOUT_S)
        finally:
            await self.pool.close(timeout=5)


async def serve(
    settings: DiscrepancySettings, stop: asyncio.Event | None = None, *, hard_exit_s: float | None = None
) -> int:
    """Consume until SIGTERM/SIGINT or ``stop`` (returns 0), or until consuming cannot go on (returns 1).

    With ``hard_exit_s``, a shutdown after a fatal problem that hangs longer than that ends the process anyway.
    """
    return await run_until_stopped(lambda stop: _serve(settings, stop, hard_exit_s), stop)


async def _serve(settings: DiscrepancySettings, stop: asyncio.Event, hard_exit_s: float | None) -> int:
    opts = settings.discrepancy
    running = await start_unless_stopped(RunningService.start_retrying(settings), stop, what="discrepancy service")
    if running is None:
        return 0 if stop.is_set() else 1
    log.info("consuming %s, %s as group %s", opts.crystal_scored_topic, opts.user_scored_topic, opts.group_id)
    http = await start_health_server(opts, health=running.health, metrics=running.metrics)
    if http is None:
        await running.stop()
        return 1
    log.info("health and metrics on http://%s:%s/health", opts.http_host, http.port)
    flush = asyncio.create_task(running.service.flush_outbox())  # what a previous run committed but did not publish
    lag = asyncio.create_task(running.watch_lag(opts.lag_poll_s))
    problem = None
    try:
        while problem is None and not stop.is_set():
            with suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=opts.watchdog_interval_s)
            if not stop.is_set():
                problem = running.problem(opts.max_outage_s)
                _beat(opts.heartbeat_file, problem)
        if problem is not None:
            log.critical("discrepancy consumer cannot continue: %s; exiting with status 1 (restart it)", problem)
            if hard_exit_s is not None:
                _exit_anyway_after(hard_exit_s, 1)
    finally:
        lag.cancel()
        flush.cancel()
        with suppress(BaseException):
            await flush
        await running.stop()
        await http.stop()
    log.info("stopped")
    return 1 if problem is not None else 0


def _beat(path: Path | None, problem: str | None) -> None:
    """Touch the liveness file while the consumer is healthy (for an exec liveness probe)."""
    if path is not None and problem is None:
        with suppress(OSError):
            path.touch()


def _exit_anyway_after(seconds: float, code: int) -> None:
    """If the clean shutdown hangs, end the process anyway: a stuck consumer must not look alive."""
    timer = threading.Timer(seconds, os._exit, (code,))
    timer.daemon = True
    timer.start()
