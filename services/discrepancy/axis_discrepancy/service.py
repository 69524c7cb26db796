"""The discrepancy service: micro-batches of CrystalScored + UserScored → comparisons, curation queue, events.

A batch is: decode (pure) → one PostgreSQL transaction (claim event ids, resolve inspections, lock them, fold the
events into their state, write) → dead letters → commit → publish the queue items' DiscrepancyFound (outbox).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from axis_adapters import discrepancy_repo as repo
from axis_adapters.db import is_transient
from axis_adapters.kafka import DeadLetterSink, Publisher, RawRecord, publish_event
from axis_contracts import (
    CrystalScored,
    Event,
    InvalidEvent,
    ScoreScheme,
    UserScored,
    describe_validation_error,
)
from axis_core.discrepancy import (
    HumanScore,
    InspectionState,
    MlScore,
    Score,
    UnknownInspection,
    check_probabilities,
    fold,
    group_by_inspection,
)
from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError

log = logging.getLogger(__name__)

PRODUCER = "axis-discrepancy"
E = TypeVar("E", bound=Event)


@dataclass
class Decoded:
    """One record after decoding: exactly one of ``ml``, ``user`` or ``error`` is set."""

    record: RawRecord
    event_id: UUID | None = None
    ml: CrystalScored | None = None
    user: UserScored | None = None
    error: Exception | None = None


def _event_id_of(data: Any) -> UUID | None:
    try:
        return UUID(str(data["event_id"])) if isinstance(data, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


def _json_of(raw: bytes) -> Any:
    if not raw:
        raise InvalidEvent("empty message")
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"message is not UTF-8 JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise InvalidEvent(f"message is not valid JSON: {exc.msg} at position {exc.pos}") from None


def _validate(data: Any, model: type[E]) -> E:
    """Like axis_contracts.parse_event, on JSON already decoded (one decode per record)."""
    if not isinstance(data, dict):
        raise InvalidEvent(f"message must be a JSON object, got {type(data).__name__}")
    etype = data.get("event_type")
    if etype is not None and etype != model.__name__:
        raise InvalidEvent(f"event_type: expected {model.__name__!r}, got {str(etype)[:80]!r}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidEvent(describe_validation_error(exc)) from None


def decode(record: RawRecord, *, crystal_topic: str, user_topic: str, scheme: ScoreScheme) -> Decoded:
    """Validate a record as the event its topic carries; the error names the field and the problem."""
    out = Decoded(record=record)
    try:
        data = _json_of(record.value)
        out.event_id = _event_id_of(data)
        if record.topic == crystal_topic:
            if isinstance(data, dict):
                check_probabilities(data)
            out.ml = _validate(data, CrystalScored)
        elif record.topic == user_topic:
            user = _validate(data, UserScored)
            scheme.normalise(user.score)  # UnknownScoreClass names the allowed classes
            out.user = user
        else:
            raise ValueError(f"the discrepancy service does not consume topic {record.topic!r}")
    except (ValueError, TypeError) as exc:  # InvalidEvent, ProbabilityOutOfRange, UnknownScoreClass
        out.ml = out.user = None
        out.error = exc
    return out


def _is_transient(exc: BaseException) -> bool:
    from aiokafka.errors import KafkaError

    return is_transient(exc) or isinstance(exc, KafkaError)


class DiscrepancyService:
    """Joins ML and human scores per inspection; records agreements and disagreements; feeds the curators."""

    def __init__(
        self,
        *,
        pool: AsyncConnectionPool,
        publisher: Publisher,
        scheme: ScoreScheme,
        crystal_topic: str,
        user_topic: str,
        consumer: str = PRODUCER,
        retry_delay_s: float = 1.0,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._scheme = scheme
        self._crystal_topic = crystal_topic
        self._user_topic = user_topic
        self._consumer = consumer
        self._retry_delay_s = retry_delay_s
        self.dead_letters = DeadLetterSink(publisher, consumer)

    async def handle(self, records: Sequence[RawRecord]) -> None:
        """Process a batch; transient errors propagate (the batch is redelivered), others isolate the bad record."""
        try:
            await self._process(records)
        except Exception as exc:
            if _is_transient(exc):
                log.warning("transient error, batch of %d will be redelivered: %r", len(records), exc)
                await asyncio.sleep(self._retry_delay_s)
                raise
            log.exception("batch of %d failed; retrying record by record", len(records))
            for rec in records:
                try:
                    await self._process([rec])
                except Exception as one:
                    if _is_transient(one):
                        await asyncio.sleep(self._retry_delay_s)
                        raise
                    await self.dead_letters.reject(rec, one)
        await self.publish_pending()

    async def _process(self, records: Sequence[RawRecord]) -> None:
        decoded = [
            decode(r, crystal_topic=self._crystal_topic, user_topic=self._user_topic, scheme=self._scheme)
            for r in records
        ]
        seen: set[UUID] = set()
        todo: list[Decoded] = []
        for d in decoded:  # a second copy of an event in the same batch is dropped here
            if d.event_id is None or d.event_id not in seen:
                todo.append(d)
                if d.event_id is not None:
                    seen.add(d.event_id)
        async with self._pool.connection() as conn, conn.transaction():
            scores = await self._scores(conn, todo)
            by_inspection = group_by_inspection(scores)
            await repo.lock_inspections(conn, list(by_inspection))
            states = await repo.load_states(conn, list(by_inspection))
            # idempotency: the history tables' unique event ids say which scores are new
            fresh = await repo.insert_ml_history(conn, [s for s in scores if isinstance(s, MlScore)])
            fresh |= await repo.insert_user_scores(conn, [s for s in scores if isinstance(s, HumanScore)])
            results = [
                fold(states.get(i) or InspectionState(i), [e for e in evs if e.event_id in fresh])
                for i, evs in by_inspection.items()
            ]
            await repo.save_results(conn, results)
            rejected = [d for d in todo if d.error is not None]
            claimed = await repo.claim_events(conn, self._consumer, [d.event_id for d in rejected if d.event_id])
            for d in rejected:
                if d.event_id is None or d.event_id in claimed:  # dead-letter each bad event once
                    await self.dead_letters.reject(d.record, d.error)  # type: ignore[arg-type]

    async def _scores(self, conn: Any, todo: list[Decoded]) -> list[Score]:
        """Scores in arrival order; a user score whose inspection is unknown becomes an error."""
        batch_ml = {d.ml.inspection_id for d in todo if d.ml is not None}
        asked = {d.user.inspection_id for d in todo if d.user is not None and d.user.inspection_id is not None}
        known = await repo.known_inspections(conn, sorted(asked - batch_ml))
        by_ref = [d for d in todo if d.user is not None and d.user.inspection_id is None]
        refs = [
            repo.DropRef(u.plate_barcode or "", u.well or "", u.drop or 1, u.scored_at)
            for u in (d.user for d in by_ref)
            if u is not None
        ]
        resolved = dict(zip((id(d) for d in by_ref), await repo.resolve_refs(conn, refs), strict=True))
        out: list[Score] = []
        for d in todo:
            if d.ml is not None:
                out.append(MlScore.from_event(d.ml))
            elif d.user is not None:
                u = d.user
                if u.inspection_id is not None:
                    inspection = u.inspection_id if (u.inspection_id in known or u.inspection_id in batch_ml) else None
                else:
                    inspection = resolved.get(id(d))
                if inspection is None:
                    d.user, d.error = None, UnknownInspection(unknown_inspection_message(u))
                    continue
                out.append(HumanScore.from_event(u, inspection_id=inspection, scheme=self._scheme))
        return out

    async def publish_pending(self, limit: int = 500) -> int:
        """Publish DiscrepancyFound for queue items not yet on the broker (this batch's, or left by a crash)."""
        total = 0
        while True:
            async with self._pool.connection() as conn, conn.transaction():
                items = await repo.claim_unpublished(conn, producer=self._consumer, limit=limit)
                events = [i.event for i in items if i.event is not None]
                await asyncio.gather(*(publish_event(self._publisher, e) for e in events))
                await repo.mark_published(conn, [i.discrepancy_id for i in items])
            total += len(events)
            if len(items) < limit:
                return total


def unknown_inspection_message(u: UserScored) -> str:
    """What to tell the LIMS when a user score names no known inspection."""
    if u.inspection_id is not None:
        return (
            f"unknown inspection {u.inspection_id!r}: no image or ML score names it; "
            "check the inspection_id (or send plate_barcode + well + drop + scored_at)"
        )
    return (
        f"unknown inspection: no image of {u.plate_barcode}:{u.well}:{u.drop or 1} was taken at or before "
        f"{u.scored_at.isoformat()}; check the plate barcode, well, drop and scored_at"
    )
