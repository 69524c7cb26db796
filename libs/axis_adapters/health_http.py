"""``/health`` and ``/metrics`` of a consumer service on FastAPI + uvicorn, inside the service's own event loop.

    server = HealthServer("127.0.0.1", 8082, health=health, metrics=metrics, token=None)
    await server.start()          # server.port is the bound port (0 picks a free one)
    ...
    await server.stop()

``health()`` returns ``(ok, body)``: 200 with the body when ok, else 503. ``metrics()`` returns Prometheus text;
with a ``token`` it needs ``Authorization: Bearer <token>`` (``/health`` stays open, for probes).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

HealthFn = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
MetricsFn = Callable[[], Awaitable[str]]


def health_app(health: HealthFn, metrics: MetricsFn, token: str | None = None) -> Any:
    """The FastAPI app with the two routes."""
    from fastapi import FastAPI, Header
    from fastapi.responses import JSONResponse, PlainTextResponse

    app = FastAPI(title="AXIS Loop service health", docs_url=None, redoc_url=None)

    @app.get("/health")
    async def get_health() -> JSONResponse:
        ok, body = await health()
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics")
    async def get_metrics(authorization: str | None = Header(default=None)) -> PlainTextResponse:
        if token is not None:
            given = (authorization or "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), token.encode()):
                return PlainTextResponse("send 'Authorization: Bearer <metrics token>'\n", status_code=401)
        return PlainTextResponse(await metrics(), media_type="text/plain; version=0.0.4")

    return app


class HealthServer:
    """Serves :func:`health_app` with uvicorn as a task of the running loop (no signal handlers of its own)."""

    def __init__(self, host: str, port: int, *, health: HealthFn, metrics: MetricsFn, token: str | None = None) -> None:
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:  # the service owns SIGTERM / SIGINT
                yield

        config = uvicorn.Config(
            health_app(health, metrics, token), host=host, port=port, log_level="warning", lifespan="off"
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout_s: float = 10.0) -> None:
        """Start serving; returns once the socket is bound."""
        self._task = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(timeout_s):
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises the bind error
                    raise RuntimeError("the health server stopped at start")
                await asyncio.sleep(0.02)

    @property
    def port(self) -> int:
        """The bound port."""
        servers = getattr(self._server, "servers", [])
        for srv in servers:
            for sock in srv.sockets:
                return int(sock.getsockname()[1])
        return int(self._server.config.port)

    async def stop(self) -> None:
        """Stop serving."""
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._task, timeout=10)
        self._task = None
