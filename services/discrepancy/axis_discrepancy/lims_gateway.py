"""LIMS HTTP gateway: ``POST /v1/user-scores`` (validate + publish UserScored), ``GET /v1/stats``, ``GET /health``.

Run with ``python -m axis_discrepancy.lims_gateway``. Authentication: the LIMS API key as ``Authorization: Bearer``
or ``X-API-Key``. Adapters are built in :func:`main` / the lifespan only; tests pass their own through
:class:`GatewayDeps`.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Protocol
from uuid import UUID, uuid4

from axis_adapters import discrepancy_repo as repo
from axis_adapters.kafka import Publisher, publish_event
from axis_contracts import ScoreScheme, UnknownScoreClass, UserScored, describe_validation_error, topics
from axis_core.stats import StatsReport, check_group_by
from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, SecretStr, ValidationError

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


@dataclass
class GatewayDeps:
    """Everything the gateway's routes use."""

    publisher: Publisher
    inspections: InspectionLookup
    stats: StatsSource
    scheme: ScoreScheme
    api_key: SecretStr
    user_topic: str = topics.USER_SCORED


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
            return await repo.discrepancy_stats(conn, group_by)


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
    scored_at: AwareDatetime = Field(description="when the user scored; must carry a timezone (e.g. ...Z)")


class UserScoreAccepted(BaseModel):
    """The published event's id and the inspection it was matched to."""

    event_id: UUID
    inspection_id: str
    score: str
    label: str


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
        await broker.start()
        pool = await async_pool(settings.postgres, max_size=4)
        store = PgGatewayStore(pool)
        lims = settings.lims
        topic = settings.discrepancy.user_scored_topic
        state["deps"] = GatewayDeps(broker, store, store, lims.score_scheme, lims.api_key, user_topic=topic)
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

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/user-scores", status_code=202, dependencies=auth)
    async def post_user_score(body: UserScoreIn) -> UserScoreAccepted:
        d = state["deps"]
        try:
            canonical = d.scheme.normalise(body.score)
        except UnknownScoreClass as exc:
            raise HTTPException(422, str(exc)) from None
        event = _to_event(body, canonical)
        inspection = await d.inspections.resolve(event)
        if inspection is None:
            raise HTTPException(404, unknown_inspection_message(event))
        if event.inspection_id is None:
            event = event.model_copy(update={"inspection_id": inspection})
        await publish_event(d.publisher, event, topic=d.user_topic)
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


def _to_event(body: UserScoreIn, canonical: str) -> UserScored:
    try:
        return UserScored(
            event_id=body.event_id or uuid4(),
            producer=PRODUCER,
            inspection_id=body.inspection_id,
            plate_barcode=body.plate_barcode,
            well=body.well,
            drop=body.drop,
            user_id=body.user_id,
            score=canonical,
            scored_at=body.scored_at,
        )
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
