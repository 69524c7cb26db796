"""LIMS HTTP gateway: ``POST /v1/user-scores`` (validate + publish UserScored), ``GET /v1/stats``, ``GET /health``.

Run with ``python -m axis_discrepancy.lims_gateway``. Authentication: the LIMS API key as ``Authorization: Bearer``
or ``X-API-Key``. Adapters are built in :func:`main` / the lifespan only; tests pass their own through
:class:`GatewayDeps`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol
from uuid import UUID, uuid4

from axis_adapters.kafka import Publisher, publish_event
from axis_adapters.publisher import EventPublisher
from axis_adapters.retry import is_transient
from axis_contracts import ScoreScheme, UnknownScoreClass, UserScored, describe_validation_error, topics
from axis_contracts.limits import EventTime
from axis_core.stats import StatsReport, check_group_by
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from axis_discrepancy import discrepancy_repo as repo
from axis_discrepancy import stats_repo
from axis_discrepancy.service import unknown_inspection_message
from axis_discrepancy.settings import DiscrepancySettings

log = logging.getLogger(__name__)
PRODUCER = "axis-lims-gateway"


class InspectionLookup(Protocol):
    """Resolves what a user score points at to a known inspection id (None: unknown)."""

    async def resolve(self, score: UserScored) -> str | None: ...


class StatsSource(Protocol):
    """Discrepancy statistics grouped one way."""

    async def stats(self, group_by: str) -> StatsReport: ...


class RequestLedger(Protocol):
    """Remembers accepted scores by event_id, so a re-sent request is answered as before, never applied twice."""

    async def record(self, event: UserScored, digest: str, publish: Callable[[], Awaitable[None]]) -> str | None:
        """Publish and remember ``event`` unless its id is known; return the known content digest if it is."""
        ...


class MemoryLedger:
    """A single-process ledger (tests, one-off tools); the service uses :class:`PgGatewayStore`."""

    def __init__(self) -> None:
        self.digests: dict[UUID, str] = {}

    async def record(self, event: UserScored, digest: str, publish: Callable[[], Awaitable[None]]) -> str | None:
        if event.event_id in self.digests:
            return self.digests[event.event_id]
        await publish()
        self.digests[event.event_id] = digest
        return None


@dataclass
class GatewayDeps:
    """Everything the gateway's routes use."""

    publisher: Publisher
    inspections: InspectionLookup
    stats: StatsSource
    scheme: ScoreScheme
    api_key: SecretStr
    user_topic: str = topics.USER_SCORED
    ledger: RequestLedger = field(default_factory=MemoryLedger)
    max_future_skew_s: float | None = None


class PgGatewayStore:
    """InspectionLookup + StatsSource over a psycopg async pool."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def resolve(self, score: UserScored) -> str | None:
        async with self._pool.connection() as conn:
            if score.inspection_id is not None:
                known = await repo.known_inspections(conn, [score.inspection_id])
                return score.inspection_id if known else None
            ref = repo.DropRef(score.plate_barcode or "", score.well or "", score.drop or 1, score.scored_at)
            return (await repo.resolve_refs(conn, [ref]))[0]

    async def stats(self, group_by: str) -> StatsReport:
        async with self._pool.connection() as conn:
            return await stats_repo.discrepancy_stats(conn, group_by)

    async def record(self, event: UserScored, digest: str, publish: Callable[[], Awaitable[None]]) -> str | None:
        # the row is inserted first and committed only after the broker acknowledged the event: a concurrent
        # request with the same id waits on the row's lock, and a failed publish leaves nothing behind
        async with self._pool.connection() as conn, conn.transaction():
            cur = await conn.execute(
                "INSERT INTO lims_gateway_requests (event_id, content_sha256, inspection_id, score) "
                "VALUES (%s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                (event.event_id, digest, event.inspection_id, event.score),
            )
            if await cur.fetchone() is None:
                cur = await conn.execute(
                    "SELECT content_sha256 FROM lims_gateway_requests WHERE event_id = %s", (event.event_id,)
                )
                row = await cur.fetchone()
                return str(row[0]) if row else digest
            await publish()
        return None


class UserScoreIn(BaseModel):
    """What the LIMS posts: one user score, by inspection id or by plate + well + drop + time."""

    model_config = ConfigDict(extra="forbid")

    event_id: UUID | None = Field(default=None, description="optional idempotency key: resending it changes nothing")
    inspection_id: str | None = None
    plate_barcode: str | None = None
    well: str | None = None
    drop: int | None = None
    user_id: str
    score: str = Field(description="a class of the facility's score scheme, e.g. single_crystals")
    scored_at: EventTime = Field(
        description="when the user scored: ISO 8601 with a time zone (e.g. 2026-12-02T10:00:00Z), not in the future"
    )


class UserScoreAccepted(BaseModel):
    """The published event's id and the inspection it was matched to."""

    event_id: UUID
    inspection_id: str
    score: str
    label: str


def publish_to(broker: Any, topic: str = topics.USER_SCORED) -> EventPublisher:
    """What the gateway sends: each accepted user score, on the configured topic."""
    return EventPublisher(broker, "lims-gateway", {topic: UserScored})


def _require_key(expected: SecretStr) -> Callable[..., Awaitable[None]]:
    async def check(
        authorization: Annotated[str | None, Header()] = None,
        x_api_key: Annotated[str | None, Header()] = None,
    ) -> None:
        given = x_api_key
        if given is None and authorization:
            scheme, _, token = authorization.partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else None
        if not given:
            raise HTTPException(
                401,
                "LIMS API key required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise HTTPException(403, "the LIMS API key is not valid")

    return check


def create_app(
    deps: GatewayDeps | None = None,
    *,
    settings: DiscrepancySettings | None = None,
) -> FastAPI:
    """The gateway over given deps (tests) or over adapters built from settings at start-up (``main``)."""
    if deps is None and settings is None:
        raise ValueError("give deps or settings")
    api_key = deps.api_key if deps is not None else settings.lims.api_key  # type: ignore[union-attr]
    state: dict[str, GatewayDeps] = {}
    if deps is not None:
        state["deps"] = deps

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if deps is not None or settings is None:
            yield
            return
        from axis_adapters.db import async_pool
        from axis_adapters.kafka import make_broker

        broker = make_broker(settings.kafka)
        topic = settings.discrepancy.user_scored_topic
        publisher = publish_to(broker, topic)
        await broker.start()
        pool = await async_pool(settings.postgres, max_size=4)
        store = PgGatewayStore(pool)
        lims = settings.lims
        state["deps"] = GatewayDeps(
            publisher,
            store,
            store,
            lims.score_scheme,
            lims.api_key,
            user_topic=topic,
            ledger=store,
            max_future_skew_s=settings.max_future_skew_s,
        )
        try:
            yield
        finally:
            await pool.close()
            await broker.stop()

    app = FastAPI(title="AXIS Loop LIMS gateway", version="1", lifespan=lifespan)
    auth = [Depends(_require_key(api_key))]

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "(body)"
            parts.append(f"{loc}: {err.get('msg', 'invalid')}")
        return JSONResponse(status_code=422, content={"detail": "; ".join(parts)})

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        if is_transient(exc):  # PostgreSQL or the broker unreachable: nothing was accepted, the LIMS retries
            log.warning("request not accepted, dependency unavailable: %s: %s", type(exc).__name__, exc)
            return JSONResponse(
                status_code=503,
                content={"detail": "the score was not accepted: a dependency is unavailable; retry later"},
                headers={"Retry-After": "5"},
            )
        log.exception("unexpected error in a request")
        return JSONResponse(status_code=500, content={"detail": "internal error; the score was not accepted"})

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post(
        "/v1/user-scores",
        status_code=202,
        dependencies=[*auth, Depends(_require_json)],
        responses={
            409: {"description": "the event_id was accepted before with other content"},
            415: {"description": "the body is not sent as application/json"},
        },
    )
    async def post_user_score(body: UserScoreIn) -> UserScoreAccepted:
        d = state["deps"]
        try:
            canonical = d.scheme.normalise(body.score)
        except UnknownScoreClass as exc:
            raise HTTPException(422, str(exc)) from None
        event = _to_event(body, canonical, max_future_skew_s=d.max_future_skew_s)
        inspection = await d.inspections.resolve(event)
        if inspection is None:
            raise HTTPException(404, unknown_inspection_message(event))
        if event.inspection_id is None:
            event = event.model_copy(update={"inspection_id": inspection})
        digest = content_digest(event)
        known = await d.ledger.record(event, digest, lambda: publish_event(d.publisher, event, topic=d.user_topic))
        if known is not None and known != digest:
            raise HTTPException(
                409,
                f"event_id {event.event_id} was accepted before with other content; a corrected score needs a new "
                "event_id (or none: the gateway then makes one)",
            )
        return UserScoreAccepted(
            event_id=event.event_id, inspection_id=inspection, score=canonical, label=d.scheme.classes[canonical]
        )

    @app.get("/v1/stats", dependencies=auth)
    async def get_stats(by: Annotated[str, Query(description="plate, user, model_version or week")] = "plate") -> Any:
        try:
            group_by = check_group_by(by)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        return (await state["deps"].stats.stats(group_by)).as_dict()

    return app


async def _require_json(request: Request) -> None:
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind != "application/json":
        given = f"content-type {kind!r}" if kind else "no content-type"
        raise HTTPException(415, f"send the score as JSON with 'Content-Type: application/json' (got {given})")


def content_digest(event: UserScored) -> str:
    """SHA-256 of what a user score says (everything but its envelope): equal for a re-sent request."""
    fields = event.model_dump(mode="json", include={"inspection_id", "plate_barcode", "well", "drop", "user_id"})
    fields |= {"score": event.score, "scored_at": event.scored_at.isoformat()}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _to_event(body: UserScoreIn, canonical: str, *, max_future_skew_s: float | None = None) -> UserScored:
    data = {
        "event_id": body.event_id or uuid4(),
        "producer": PRODUCER,
        "inspection_id": body.inspection_id,
        "plate_barcode": body.plate_barcode,
        "well": body.well,
        "drop": body.drop,
        "user_id": body.user_id,
        "score": canonical,
        "scored_at": body.scored_at,
    }
    try:  # the same rules, and context, as the discrepancy consumer applies to the event on Kafka
        return UserScored.model_validate(data, context={"max_future_skew_s": max_future_skew_s})
    except ValidationError as exc:
        raise HTTPException(422, describe_validation_error(exc)) from None


def main() -> None:
    """Entry point: serve the gateway with uvicorn on the configured host and port."""
    import uvicorn
    from axis_adapters.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(DiscrepancySettings)
    uvicorn.run(create_app(settings=settings), host=settings.lims.host, port=settings.lims.port)


if __name__ == "__main__":
    main()
