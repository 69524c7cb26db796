"""The curation web service: FastAPI app with the JSON API under /v1 and plain HTML/JS pages."""

from __future__ import annotations

import html
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from axis_curation import api_curate, api_datasets, api_patchmap, api_plates
from axis_curation.auth import ROLE_PURPOSE, Account, token_from_request
from axis_curation.context import Services, close_services, open_services

log = logging.getLogger(__name__)
STATIC = resources.files("axis_curation") / "static"
_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


class _TextGZip(GZipMiddleware):
    """gzip for JSON, pages and scripts; image bytes (already compressed) pass as they are."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("path") == "/v1/images":
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _field_of(err: dict[str, Any]) -> str:
    loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
    return ".".join(loc) or str(err.get("loc", ["request"])[0])


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each bad field: FastAPI's ``detail`` list plus a one-line ``message``."""
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    message = "; ".join(f"{_field_of(e)}: {e.get('msg', 'invalid')}" for e in errors) or "invalid request"
    detail = [{k: v for k, v in e.items() if k in ("loc", "msg", "type")} for e in errors]
    return JSONResponse(status_code=422, content=jsonable_encoder({"detail": detail, "message": message}))


def _refusal(account: Account, role: str, what: str, admins: list[str]) -> HTMLResponse:
    """A page that says what was refused, which role it needs and whom to ask (403)."""
    ask = ", ".join(admins) if admins else "the person who runs this curation service"
    page = (STATIC / "refused.html").read_text()
    fields = {
        "what": what,
        "role": role,
        "role_purpose": ROLE_PURPOSE.get(role, ""),
        "user": account.username,
        "user_role": account.role,
        "user_role_purpose": ROLE_PURPOSE.get(account.role, ""),
        "ask": ask,
    }
    for key, value in fields.items():
        page = page.replace("{{" + key + "}}", html.escape(value))
    return HTMLResponse(page, status_code=403)


def _page(name: str, role: str, what: str) -> Callable[[Request], Awaitable[Response]]:
    async def handler(request: Request) -> Response:
        services: Services = request.app.state.services
        token = token_from_request(request)
        account = await run_in_threadpool(services.authenticator.resolve, token) if token else None
        if account is None:
            # the query too (a link to a well, ?well=B3&round=0, survives the login)
            path = str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
            target = quote(path, safe="")
            return RedirectResponse(f"/login?next={target}", status_code=303)
        if not account.has_role(role):
            admins = await run_in_threadpool(services.repo.admins)
            return _refusal(account, role, what, admins)
        return FileResponse(str(STATIC / name), media_type="text/html")

    return handler


def create_app(services: Services, *, manage_lifecycle: bool = True) -> FastAPI:
    """The ASGI app over ready-made services (tests pass their own; ``__main__`` builds from settings)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            await open_services(services)
        if services.options.bootstrap_admin:
            password = services.authenticator.bootstrap_admin(services.env)
            if password is not None:
                # printed once to the console (not logged): the operator must change or note it now
                print(f"[axis-curation] dev mode: created account 'admin' with password: {password}", file=sys.stderr)
        try:
            yield
        finally:
            if manage_lifecycle:
                await close_services(services)

    app = FastAPI(title="AXIS Loop curation", version="1", lifespan=lifespan)
    app.state.services = services
    app.state.authenticator = services.authenticator
    app.add_exception_handler(RequestValidationError, _validation_error)
    # plate maps of 1536 wells and the queue's JSON shrink ~10x; images (already compressed) are left alone
    app.add_middleware(_TextGZip, minimum_size=1024, compresslevel=6)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        """Liveness: open to everyone."""
        return {"status": "ok", "service": "curation"}

    app.include_router(api_curate.router)
    app.include_router(api_plates.router)
    app.include_router(api_datasets.router)
    app.include_router(api_patchmap.router)

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/curate", status_code=303)

    @app.get("/login", include_in_schema=False)
    def login_page() -> FileResponse:
        return FileResponse(str(STATIC / "login.html"), media_type="text/html")

    pages = (
        ("/curate", "curate.html", "curator", "The curator queue"),
        ("/plates", "plates.html", "scientist", "The plate list"),
        ("/plates/{barcode}", "plate.html", "scientist", "The plate map"),
        ("/datasets", "datasets.html", "scientist", "The datasets page"),
    )
    for path, name, role, what in pages:
        app.add_api_route(path, _page(name, role, what), methods=["GET"], include_in_schema=False)
    return app
