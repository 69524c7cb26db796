"""The start and stop of a long-running service process, shared by the services that run one loop.

async def serve(settings, stop=None) -> int:
    return await run_until_stopped(lambda stop: _serve(settings, stop), stop)

async def _serve(settings, stop) -> int:
    started = await start_unless_stopped(start_everything(settings), stop, what="ingest service")
    if started is None:
        return 0 if stop.is_set() else 1          # stopped before it started / could not start (logged)
    ...
    http = await start_health_server(opts, health=..., metrics=...)
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any, TypeVar

from axis_adapters.health_http import HealthFn, HealthServer, MetricsFn

log = logging.getLogger(__name__)
T = TypeVar("T")


async def run_until_stopped(body: Callable[[asyncio.Event], Awaitable[int]], stop: asyncio.Event | None) -> int:
    """``body(stop)``; without a ``stop`` of the caller's, SIGTERM / SIGINT set one (handlers removed after)."""
    loop = asyncio.get_running_loop()
    handled: list[signal.Signals] = []
    if stop is None:  # the process's own run
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                handled.append(sig)
    try:
        return await body(stop)
    finally:
        for sig in handled:
            loop.remove_signal_handler(sig)


async def start_unless_stopped(start: Awaitable[T], stop: asyncio.Event, *, what: str) -> T | None:
    """The result of ``start``, or None when ``stop`` came first (start cancelled) or start failed (CRITICAL log)."""
    starting = asyncio.ensure_future(start)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not starting.done():
        starting.cancel()
        with suppress(BaseException):
            await starting
        log.info("stopped before the %s had started", what)
        return None
    try:
        return starting.result()
    except Exception as exc:  # RetriesExhausted, or a permanent error
        log.critical("%s could not start: %s; exiting with status 1", what, exc)
        return None


async def start_health_server(opts: Any, *, health: HealthFn, metrics: MetricsFn) -> HealthServer | None:
    """/health + /metrics on ``opts.http_host:http_port`` (``opts.metrics_token`` guards /metrics); None when the
    port cannot be bound (CRITICAL log: the caller exits 1, a supervisor restarts it)."""
    token = opts.metrics_token.get_secret_value() if opts.metrics_token else None
    http = HealthServer(opts.http_host, opts.http_port, health=health, metrics=metrics, token=token)
    try:
        await http.start()
    except Exception as exc:
        log.critical("cannot serve /health on %s:%s (%s); exiting with status 1", opts.http_host, opts.http_port, exc)
        return None
    return http
