"""A minimal HTTP/1.1 server on asyncio for ``/health`` and ``/metrics`` (no web framework needed)."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger(__name__)

# A route gets the query parameters and returns (status, content type, body).
Route = Callable[[dict[str, list[str]]], Awaitable[tuple[int, str, bytes]]]
_REASONS = {
    200: "OK",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    400: "Bad Request",
    503: "Service Unavailable",
}


class HttpServer:
    """Serves GET routes on host:port (port 0 picks a free one; ``port`` tells which after ``start``)."""

    def __init__(
        self,
        host: str,
        port: int,
        routes: dict[str, Route],
        *,
        token: str | None = None,
        open_paths: frozenset[str] = frozenset({"/health"}),
    ) -> None:
        self.host = host
        self.port = port
        self._routes = routes
        # every route but ``open_paths`` needs ``Authorization: Bearer <token>``; with no token configured
        # those routes stay closed (401), so metrics are never public by accident
        self._token = token
        self._open = open_paths
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        """Listen; returns the bound port."""
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("health and metrics on http://%s:%d/health and /metrics", self.host, self.port)
        return self.port

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
            status, ctype, body = await self._dispatch(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            status, ctype, body = 400, "text/plain", b"bad request\n"
        except Exception:  # a failing route must not kill the server
            log.exception("HTTP route failed")
            status, ctype, body = 503, "text/plain", b"internal error\n"
        try:
            writer.write(
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        finally:
            writer.close()

    async def _dispatch(self, head: bytes) -> tuple[int, str, bytes]:
        request_line = head.split(b"\r\n", 1)[0].decode("latin-1")
        parts = request_line.split()
        if len(parts) < 2:
            return 400, "text/plain", b"bad request\n"
        method, target = parts[0], parts[1]
        url = urlsplit(target)
        route = self._routes.get(url.path.rstrip("/") or "/")
        if route is None:
            return 404, "text/plain", f"no route {url.path}; try /health or /metrics\n".encode()
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"GET only\n"
        path = url.path.rstrip("/") or "/"
        if path not in self._open:
            denied = self._check_auth(head)
            if denied is not None:
                return denied
        return await route(parse_qs(url.query))

    def _check_auth(self, head: bytes) -> tuple[int, str, bytes] | None:
        supplied = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"authorization":
                scheme, _, cred = value.strip().partition(b" ")
                if scheme.lower() == b"bearer":
                    supplied = cred.strip().decode("latin-1")
        if supplied is None:
            hint = "set AXIS_INFERENCE__METRICS_TOKEN and send it" if self._token is None else "send"
            return 401, "text/plain", f"credentials required: {hint} as 'Authorization: Bearer <token>'\n".encode()
        if self._token is None or not hmac.compare_digest(supplied.encode(), self._token.encode()):
            return 403, "text/plain", b"wrong token\n"
        return None
