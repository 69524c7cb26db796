"""``/health`` and ``/metrics`` of a consumer service on FastAPI + uvicorn, inside the service's own event loop.

    server = HealthServer("127.0.0.1", 8082, health=health, metrics=metrics, token=None)
    await server.start()          # server.port is the bound port (0 picks a free one)
    ...
    await server.stop()

``health()`` returns ``(ok, body)``: 200 with the body when ok, else 503. ``metrics()`` returns Prometheus text;
with a ``token`` it needs ``Authorization: Bearer <token>`` (``/health`` stays open, for probes).

Options of the inference service and its patch-map server (off by default, so the discrepancy and ingest apps are
unchanged): ``require_token`` keeps the guarded routes closed when no token is configured and answers 401 without
credentials, 403 with a wrong token; ``metrics_json`` serves ``/metrics?format=json``; ``routes`` adds guarded GET
routes that take the query parameters and return ``(status, content type, body)``; ``metrics=None`` serves no
``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response  # module level: FastAPI resolves annotations

HealthFn = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]
MetricsFn = Callable[[], Awaitable[str]]
MetricsJsonFn = Callable[[], Awaitable[dict[str, Any]]]
# a guarded GET route: the query parameters -> (status, content type, body)
Route = Callable[[dict[str, list[str]]], Awaitable[tuple[int, str, bytes]]]


def _denied(authorization: str | None, token: str | None, *, require_token: bool, setting: str) -> Response | None:
    """None when the bearer token may pass; else the 401 / 403 answer."""
    if not require_token:  # the discrepancy and ingest rule: open without a token, 401 on any mismatch
        if token is None:
            return None
        given = (authorization or "").removeprefix("Bearer ").strip()
        if hmac.compare_digest(given.encode(), token.encode()):
            return None
        return PlainTextResponse("send 'Authorization: Bearer <metrics token>'\n", status_code=401)
    scheme, _, credential = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not credential.strip():
        hint = f"set {setting} and send it" if token is None else "send"
        return PlainTextResponse(f"credentials required: {hint} as 'Authorization: Bearer <token>'\n", status_code=401)
    if token is None or not hmac.compare_digest(credential.strip().encode(), token.encode()):
        return PlainTextResponse("wrong token\n", status_code=403)
    return None


def health_app(
    health: HealthFn,
    metrics: MetricsFn | None,
    token: str | None = None,
    *,
    require_token: bool = False,
    token_setting: str = "a metrics token",
    metrics_json: MetricsJsonFn | None = None,
    routes: Mapping[str, Route] | None = None,
) -> Any:
    """The FastAPI app: ``/health``, ``/metrics`` unless ``metrics`` is None, and any guarded ``routes``."""
    from fastapi import FastAPI, Header

    app = FastAPI(title="AXIS Loop service health", docs_url=None, redoc_url=None)

    def denied(authorization: str | None) -> Response | None:
        return _denied(authorization, token, require_token=require_token, setting=token_setting)

    @app.get("/health")
    async def get_health() -> JSONResponse:
        ok, body = await health()
        return JSONResponse(body, status_code=200 if ok else 503)

    if metrics is not None and metrics_json is None:
        prometheus = metrics

        @app.get("/metrics")
        async def get_metrics(authorization: str | None = Header(default=None)) -> Response:
            refused = denied(authorization)
            if refused is not None:
                return refused
            return PlainTextResponse(await prometheus(), media_type="text/plain; version=0.0.4")

    elif metrics is not None and metrics_json is not None:
        prometheus, as_json = metrics, metrics_json

        @app.get("/metrics")
        async def get_metrics_or_json(
            authorization: str | None = Header(default=None), format: str | None = None
        ) -> Response:
            refused = denied(authorization)
            if refused is not None:
                return refused
            if format == "json":
                return JSONResponse(await as_json())
            return PlainTextResponse(await prometheus(), media_type="text/plain; version=0.0.4")

    for path, route in (routes or {}).items():
        app.add_api_route(path, _guarded(route, denied), methods=["GET"])
    return app


def _guarded(route: Route, denied: Callable[[str | None], Response | None]) -> Callable[..., Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        refused = denied(request.headers.get("authorization"))
        if refused is not None:
            return refused
        query: dict[str, list[str]] = {}
        for key, value in request.query_params.multi_items():
            query.setdefault(key, []).append(value)
        status, content_type, body = await route(query)
        return Response(body, status_code=status, media_type=content_type)

    return endpoint


class HealthServer:
    """Serves :func:`health_app` with uvicorn as a task of the running loop (no signal handlers of its own)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        health: HealthFn,
        metrics: MetricsFn | None,
        token: str | None = None,
        **options: Any,
    ) -> None:
        """``options``: the keyword options of :func:`health_app` (require_token, metrics_json, routes, ...)."""
        import uvicorn

        class _Server(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:  # the service owns SIGTERM / SIGINT
                yield

        config = uvicorn.Config(
            health_app(health, metrics, token, **options), host=host, port=port, log_level="warning", lifespan="off"
        )
        self._server = _Server(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self, timeout_s: float = 10.0) -> int:
        """Start serving; returns the bound port once the socket is bound."""
        self._task = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(timeout_s):
            while not self._server.started:
                if self._task.done():
                    self._task.result()  # raises the bind error
                    raise RuntimeError("the health server stopped at start")
                await asyncio.sleep(0.02)
        return self.port

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
