"""Wiring of the ingest service: settings -> pool, object store, broker, watcher; the scan loop; /health.

``serve()`` is what ``python -m axis_ingest`` runs: start (riding out PostgreSQL or the broker restarting), scan
until SIGTERM/SIGINT (exit 0). It never exits because of a file; PostgreSQL, the object store or the broker being
down only delays ingestion (capped back-off, /health says ``retrying``). Exit 1: it could not start.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from axis_adapters.db import async_pool
from axis_adapters.kafka import make_broker
from axis_adapters.lifecycle import run_until_stopped, start_health_server, start_unless_stopped
from axis_adapters.objectstore import MinioObjectStore
from axis_adapters.publisher import EventPublisher
from axis_adapters.retry import RetryPolicy, is_transient, retry_async
from axis_contracts import ImageCaptured
from psycopg_pool import AsyncConnectionPool

from axis_ingest.inotify import Changes, InotifyUnavailable, InotifyWatcher
from axis_ingest.pattern import PathMapper
from axis_ingest.scanner import filesystem_type, is_network_share
from axis_ingest.service import IngestService
from axis_ingest.settings import IngestOptions, IngestSettings
from axis_ingest.state import PostgresIngestState

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 20.0


@dataclass
class Watching:
    """How the folder is watched: inotify (with rare full rescans) or polling, and why."""

    mode: str = "poll"
    why: str = ""
    watcher: InotifyWatcher | None = None
    broken: str | None = None  # why inotify stopped working (then: polling)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def close(self) -> None:
        if self.watcher is not None:
            with suppress(Exception):
                asyncio.get_running_loop().remove_reader(self.watcher.fileno())
            self.watcher.close()
            self.watcher = None


class IngestRunner:
    """The scan loop around an IngestService, and what /health and /metrics say about it."""

    def __init__(self, service: IngestService, options: IngestOptions) -> None:
        self.service = service
        self.opts = options
        self.watching = Watching()
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self.started_at = time.monotonic()
        self._delay = options.retry_delay_s
        self._no_inotify = False

    # ------------------------------------------------------------------------------------------------ watcher
    def _setup_watcher(self) -> None:
        """inotify when asked for (or ``auto`` on a local file system), else polling; once failed, polling."""
        w = self.watching
        if w.watcher is not None and w.watcher.watches == 0:  # the folder itself went away (unmounted, recreated)
            w.close()
        if w.watcher is not None:
            if w.broken:
                log.warning("ingest: %s; polling every %.1fs from now on", w.broken, self.opts.poll_interval_s)
                w.close()
                w.mode, w.why, self._no_inotify = "poll", w.broken, True
            return
        if self.opts.watcher == "poll":
            w.mode, w.why = "poll", "AXIS_INGEST__WATCHER=poll"
            return
        if self._no_inotify:
            return
        root = self.service.root
        if not root.is_dir():
            w.mode, w.why = "poll", "the watched folder is missing"
            return
        if self.opts.watcher == "auto" and is_network_share(root):
            w.mode, w.why = "poll", f"network share ({filesystem_type(root)}): inotify misses remote writes"
            self._no_inotify = True
            log.info("ingest: %s is on a %s; polling every %.1fs", root, w.why, self.opts.poll_interval_s)
            return
        rules = self.service.rules
        try:
            watcher = InotifyWatcher(
                root, skip=lambda rel, name: rules.ignored(name) or (rel == "" and name in rules.skip_top)
            )
        except (InotifyUnavailable, OSError) as exc:
            w.mode, w.why, self._no_inotify = "poll", f"inotify unavailable: {exc}", True
            log.warning("ingest: %s; polling every %.1fs", w.why, self.opts.poll_interval_s)
            return
        loop = asyncio.get_running_loop()

        def readable() -> None:
            try:
                watcher.read()
            except (InotifyUnavailable, OSError) as exc:  # e.g. the watch limit reached on a new folder
                w.broken = str(exc)
                watcher.pending.overflow = True
            w.wake.set()

        loop.add_reader(watcher.fileno(), readable)
        w.watcher, w.mode, w.why = watcher, "inotify", f"{watcher.watches} folders watched"
        log.info("ingest: watching %s with inotify (%d folders)", root, watcher.watches)

    # ------------------------------------------------------------------------------------------------ loop
    async def run(self, stop: asyncio.Event) -> None:
        """Scan until ``stop`` is set."""
        svc = self.service
        next_full = 0.0
        try:
            while not stop.is_set():
                self._setup_watcher()
                watcher = self.watching.watcher
                changes: Changes | None = watcher.take() if watcher else None
                full = watcher is None or time.monotonic() >= next_full or bool(changes and changes.overflow)
                if full:
                    next_full = time.monotonic() + self.opts.rescan_interval_s
                delay = self._idle_delay()
                try:
                    report = await svc.cycle(full=full, changes=changes)
                    self._ok()
                    if report is not None and report.ready_left:
                        delay = 0.0
                except Exception as exc:
                    delay = self._failed(exc)
                    if watcher is not None and changes:  # look there again next time
                        watcher.pending.folders |= changes.folders | changes.new_folders
                await self._wait(stop, delay)
        finally:
            self.watching.close()

    def _idle_delay(self) -> float:
        if self.watching.watcher is None or self.service.folder_problem:
            return self.opts.poll_interval_s
        if len(self.service.tracker):  # files being written: look again once they may have settled
            return min(self.opts.poll_interval_s, max(0.25, self.opts.settle_s / 2))
        return self.opts.rescan_interval_s

    async def _wait(self, stop: asyncio.Event, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        wake = self.watching.wake
        waiters = [asyncio.create_task(stop.wait())]
        if self.watching.watcher is not None and self.failing_since is None:
            waiters.append(asyncio.create_task(wake.wait()))
        done, pending = await asyncio.wait(waiters, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
        for t in pending:
            t.cancel()
        if wake.is_set():
            wake.clear()
            await asyncio.sleep(0.1)  # let a burst of events coalesce into one look

    def _ok(self) -> None:
        if self.failing_since is not None:
            log.info("ingest: working again after %.0fs", time.monotonic() - self.failing_since)
        self.failing_since = None
        self.last_error = None
        self._delay = self.opts.retry_delay_s

    def _failed(self, exc: Exception) -> float:
        what = "transient" if is_transient(exc) else "unexpected"
        self.last_error = f"{type(exc).__name__}: {exc}"[:500]
        if self.failing_since is None:
            self.failing_since = time.monotonic()
        if what == "unexpected":
            log.exception("ingest: unexpected error in a scan cycle; retrying in %.1fs", self._delay)
        else:
            log.warning("ingest: %s; retrying in %.1fs", self.last_error, self._delay)
        delay = self._delay
        self._delay = min(self.opts.retry_max_delay_s, max(self._delay * 2, 0.1))
        return delay

    # ------------------------------------------------------------------------------------------------ health
    def status(self) -> tuple[str, str | None]:
        """(status, problem): ok, waiting_for_folder, retrying or stalled."""
        svc = self.service
        last = svc.last_scan_at or self.started_at
        if time.monotonic() - last > self.opts.stall_after_s:
            return "stalled", f"no scan finished for {time.monotonic() - last:.0f}s"
        if svc.folder_problem:
            return "waiting_for_folder", svc.folder_problem
        if self.failing_since is not None:
            return "retrying", self.last_error
        return "ok", None

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """/health: status, counts, how the folder is watched, the latest unmappable files with reasons."""
        svc = self.service
        status, problem = self.status()
        body = {
            "status": status,
            "problem": problem,
            "watch_dir": str(svc.root),
            "imager_id": self.opts.imager_id,
            "pattern": svc.mapper.config.pattern,
            "watching": {"mode": self.watching.mode, "detail": self.watching.why},
            "counts": svc.counts(),
            "this_run": dict(svc.this_run),
            "scans": svc.scans,
            "last_scan_age_s": None if svc.last_scan_at is None else round(time.monotonic() - svc.last_scan_at, 1),
            "last_batch": svc.last_batch,
            "failing_for_s": None if self.failing_since is None else round(time.monotonic() - self.failing_since, 1),
            "scan_errors": svc.scan_errors,
            "unreadable": [{"path": k.path, "reason": r} for k, r in list(svc.unreadable.items())[:20]],
            "unmappable_recent": list(svc.recent_unmappable),
        }
        return status == "ok", body

    async def metrics(self) -> str:
        """/metrics: Prometheus text."""
        svc = self.service
        counts = svc.counts()
        lines = ["# TYPE axis_ingest_files_total counter"]
        lines += [
            f'axis_ingest_files_total{{outcome="{k}"}} {counts[k]}' for k in ("published", "duplicate", "unmappable")
        ]
        lines += ["# TYPE axis_ingest_files_pending gauge", f"axis_ingest_files_pending {counts['pending']}"]
        lines += ["# TYPE axis_ingest_files_unreadable gauge", f"axis_ingest_files_unreadable {counts['unreadable']}"]
        lines += ["# TYPE axis_ingest_scans_total counter", f"axis_ingest_scans_total {svc.scans}"]
        status, _ = self.status()
        lines += ["# TYPE axis_ingest_up gauge", f"axis_ingest_up {1 if status == 'ok' else 0}"]
        return "\n".join(lines) + "\n"


@dataclass
class Adapters:
    """What the service runs on; ``close()`` releases it."""

    pool: AsyncConnectionPool
    broker: Any
    publisher: Any = None  # the EventPublisher over ``broker`` (ImageCaptured)

    async def close(self) -> None:
        with suppress(Exception):
            await asyncio.wait_for(self.broker.stop(), timeout=STOP_TIMEOUT_S)
        await self.pool.close(timeout=5)


def publish_to(broker: Any) -> EventPublisher:
    """What ingest sends: one ImageCaptured per new image file (outbox in PostgreSQL)."""
    return EventPublisher(broker, "ingest", (ImageCaptured,))


async def open_adapters(settings: IngestSettings) -> Adapters:
    """Open the pool and start the broker (a producer only)."""
    pool = await async_pool(settings.postgres, max_size=settings.ingest.pool_size, check_connections=True)
    broker = make_broker(settings.kafka)
    publisher = publish_to(broker)
    try:
        await broker.start()
    except BaseException:
        with suppress(Exception):
            await asyncio.wait_for(broker.stop(), timeout=STOP_TIMEOUT_S)
        await pool.close()
        raise
    return Adapters(pool=pool, broker=broker, publisher=publisher)


def build_service(settings: IngestSettings, adapters: Adapters) -> IngestService:
    """The service over open adapters."""
    opts = settings.ingest
    return IngestService(
        options=opts,
        mapper=PathMapper(opts.mapping()),
        state=PostgresIngestState(adapters.pool, opts.imager_id),
        store=MinioObjectStore(settings.s3),
        publisher=adapters.publisher or adapters.broker,
        bucket=settings.s3.images_bucket,
        max_future_skew_s=settings.max_future_skew_s,
    )


async def serve(settings: IngestSettings, stop: asyncio.Event | None = None) -> int:
    """Ingest until SIGTERM/SIGINT or ``stop`` (returns 0); returns 1 when it cannot start."""
    return await run_until_stopped(lambda stop: _serve(settings, stop), stop)


async def _start(settings: IngestSettings) -> tuple[Adapters, IngestService]:
    adapters = await open_adapters(settings)
    try:
        service = build_service(settings, adapters)
        await service.start()
    except BaseException:
        await adapters.close()
        raise
    return adapters, service


async def _serve(settings: IngestSettings, stop: asyncio.Event) -> int:
    opts = settings.ingest
    if opts.create_watch_dir:
        opts.watch_dir.mkdir(parents=True, exist_ok=True)
    policy = RetryPolicy(
        attempts=opts.startup_attempts, base_delay_s=opts.retry_delay_s, max_delay_s=opts.retry_max_delay_s
    )
    started = await start_unless_stopped(
        retry_async(lambda: _start(settings), policy=policy, what="ingest start"), stop, what="ingest service"
    )
    if started is None:
        return 0 if stop.is_set() else 1
    adapters, service = started
    runner = IngestRunner(service, opts)
    http = await start_health_server(opts, health=runner.health, metrics=runner.metrics)
    if http is None:
        await adapters.close()
        return 1
    log.info(
        "ingesting %s (imager %s, pattern %r); health on http://%s:%s/health",
        opts.watch_dir,
        opts.imager_id,
        service.mapper.config.pattern,
        opts.http_host,
        http.port,
    )
    try:
        await runner.run(stop)
    finally:
        await http.stop()
        await adapters.close()
    log.info("stopped")
    return 0
