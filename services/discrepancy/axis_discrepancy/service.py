"""The discrepancy service: micro-batches of CrystalScored + UserScored → comparisons, curation queue, events.

A batch is: decode (pure) → one PostgreSQL transaction (claim event ids, resolve inspections, lock them, fold the
events into their state, write) → dead letters → commit → publish the queue items' DiscrepancyFound (outbox).
A transient failure (PostgreSQL or the broker restarting) is retried in place with capped exponential back-off,
each attempt bounded in time; if it outlasts the policy the batch is NACKed and redelivered. It is never
dead-lettered, and the idempotent writes make a retried or redelivered batch change nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from axis_adapters.consumer import IsolatingBatchHandler
from axis_adapters.kafka import DeadLetterSink, Publisher, RawRecord, publish_event
from axis_adapters.retry import RetryPolicy
from axis_contracts import CrystalScored, CuratorLabelled, Event, ImageCaptured, ScoreScheme, UserScored
from axis_contracts.parsing import decode_json, validate_event
from axis_core.discrepancy import (
    FoldResult,
    HumanScore,
    InspectionState,
    MlScore,
    Score,
    UnknownInspection,
    check_probabilities,
    fold,
    group_by_inspection,
)
from axis_core.routing import Assessment, RoutingPolicy, assess, choose
from psycopg_pool import AsyncConnectionPool

from axis_discrepancy import discrepancy_repo as repo
from axis_discrepancy import events_repo as outbox

log = logging.getLogger(__name__)

PRODUCER = "axis-discrepancy"
E = TypeVar("E", bound=Event)
T = TypeVar("T")


@dataclass
class Decoded:
    """One record after decoding: exactly one of ``ml``, ``user``, ``image``, ``verdict`` or ``error`` is set."""

    record: RawRecord
    event_id: UUID | None = None
    ml: CrystalScored | None = None
    user: UserScored | None = None
    image: ImageCaptured | None = None
    verdict: CuratorLabelled | None = None
    error: Exception | None = None


def _event_id_of(data: Any) -> UUID | None:
    try:
        return UUID(str(data["event_id"])) if isinstance(data, dict) else None
    except (ValueError, KeyError, TypeError):
        return None


def decode(
    record: RawRecord,
    *,
    crystal_topic: str,
    user_topic: str,
    scheme: ScoreScheme,
    context: dict[str, Any] | None = None,
    image_topic: str | None = None,
    labels_topic: str | None = None,
) -> Decoded:
    """Validate a record as the event its topic carries; the error names the field and the problem."""
    out = Decoded(record=record)
    try:
        data = decode_json(record.value)
        out.event_id = _event_id_of(data)
        if record.topic == crystal_topic:
            if isinstance(data, dict):
                check_probabilities(data)
            out.ml = validate_event(data, CrystalScored, context=context)
        elif record.topic == user_topic:
            user = validate_event(data, UserScored, context=context)
            scheme.normalise(user.score)  # UnknownScoreClass names the allowed classes
            out.user = user
        elif image_topic is not None and record.topic == image_topic:
            out.image = validate_event(data, ImageCaptured, context=context)
        elif labels_topic is not None and record.topic == labels_topic:
            out.verdict = validate_event(data, CuratorLabelled, context=context)
        else:
            raise ValueError(f"the discrepancy service does not consume topic {record.topic!r}")
    except (ValueError, TypeError) as exc:  # InvalidEvent, ProbabilityOutOfRange, UnknownScoreClass
        out.ml = out.user = out.image = out.verdict = None
        out.error = exc
    return out


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
        image_topic: str | None = None,
        labels_topic: str | None = None,
        consumer: str = PRODUCER,
        retry: RetryPolicy | None = None,
        attempt_timeout_s: float = 30.0,
        store: Any | None = None,
        dead_letter_keep_bytes: int = 65_536,
        max_future_skew_s: float | None = None,
        routing: RoutingPolicy | None = None,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._scheme = scheme
        self._crystal_topic = crystal_topic
        self._user_topic = user_topic
        self._image_topic = image_topic
        self._labels_topic = labels_topic
        self._consumer = consumer
        self._policy = retry or RetryPolicy(attempts=8, base_delay_s=0.5, max_delay_s=10.0)
        self._attempt_timeout_s = attempt_timeout_s
        self._connect_timeout_s = min(10.0, attempt_timeout_s)
        self._context = {"max_future_skew_s": max_future_skew_s}
        self._routing = routing or RoutingPolicy(agreements_per_day=0)
        sink = DeadLetterSink(publisher, consumer, store=store, keep_bytes=dead_letter_keep_bytes, pool=pool)
        # the one retry / isolation / dead-letter rule of every consumer (axis_adapters.consumer); late-bound
        # so that a test may replace _process
        self._batches = IsolatingBatchHandler(
            lambda records: self._process(records),
            dead_letters=sink,
            policy=self._policy,
            attempt_timeout_s=attempt_timeout_s,
            name="discrepancy",
        )
        self.dead_letters = sink

    @property
    def failing_since(self) -> float | None:
        """Monotonic start of the current run of transient failures (None: none)."""
        return self._batches.failing_since

    @failing_since.setter
    def failing_since(self, value: float | None) -> None:
        self._batches.failing_since = value

    async def handle(self, records: Sequence[RawRecord]) -> None:
        """Process a batch under the shared rule (transient: retried, then redelivered; a bad record:
        isolated and dead-lettered once), then publish the outbox."""
        await self._batches(records)
        await self._retrying(self.publish_pending, "outbox")

    async def _retrying(self, fn: Callable[[], Awaitable[T]], what: str) -> T:
        return await self._batches.retrying(fn, what)

    async def _process(self, records: Sequence[RawRecord]) -> None:
        decoded = [
            decode(
                r,
                crystal_topic=self._crystal_topic,
                user_topic=self._user_topic,
                scheme=self._scheme,
                context=self._context,
                image_topic=self._image_topic,
                labels_topic=self._labels_topic,
            )
            for r in records
        ]
        seen: set[UUID] = set()
        todo: list[Decoded] = []
        for d in decoded:  # a second copy of an event in the same batch is dropped here
            if d.event_id is None or d.event_id not in seen:
                todo.append(d)
                if d.event_id is not None:
                    seen.add(d.event_id)
        async with self._pool.connection(timeout=self._connect_timeout_s) as conn, conn.transaction():
            await outbox.record_captured(conn, [d.image for d in todo if d.image is not None])
            await outbox.record_verdicts(conn, [d.verdict for d in todo if d.verdict is not None])
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
            assessments, routed = await self._route(conn, results)
            await repo.save_results(conn, results, assessments=assessments, routed=routed)
            rejected = [d for d in todo if d.error is not None]
            claimed = await repo.claim_events(conn, self._consumer, [d.event_id for d in rejected if d.event_id])
            for d in rejected:
                if d.event_id is None or d.event_id in claimed:  # dead-letter each bad event once
                    await self.dead_letters.reject(d.record, d.error)  # type: ignore[arg-type]

    async def _route(
        self, conn: Any, results: Sequence[FoldResult]
    ) -> tuple[dict[tuple[UUID, UUID], Assessment], set[tuple[UUID, UUID]]]:
        """Score each inspection's new comparison; choose the agreements worth a curator within the budget."""
        latest = [r.comparisons[-1] for r in results if r.comparisons]
        older = [c for r in results for c in r.comparisons[:-1] if not c.agrees]
        if not latest and not older:
            return {}, set()
        policy = self._routing
        users = await repo.user_reliability(conn, [c.human.user_id for c in latest + older])
        assessments = {
            c.pair: assess(
                probability=c.ml.probability,
                threshold=c.ml.threshold,
                modes=c.ml.modes,
                agrees=c.agrees,
                user=users[c.human.user_id],
                policy=policy,
            )
            for c in latest + older
        }
        candidates = {c.pair: assessments[c.pair] for c in latest if c.agrees}
        if policy.agreements_per_day == 0 or not any(a.value >= policy.min_value for a in candidates.values()):
            return assessments, set()
        await repo.lock_budget(conn)  # replicas share one daily budget
        spent = await repo.budget_spent(conn)
        # only each inspection's latest comparison may be routed; the batch's disagreements count towards the intake
        pool = {p: a for p, a in assessments.items() if p in candidates or not a.agrees}
        return assessments, set(choose(pool, policy=policy, spent=spent))

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

    async def flush_outbox(self) -> int:
        """Publish what an earlier run left unpublished, riding out transient failures (never raises those)."""
        try:
            return await self._retrying(self.publish_pending, "outbox")
        except Exception as exc:
            if not self._policy.is_transient(exc):
                raise
            log.warning("outbox not flushed (%r); the next batch publishes it", exc)
            return 0

    async def publish_pending(self, limit: int = 500) -> int:
        """Publish DiscrepancyFound and ComparisonRecorded not yet on the broker (this batch's, or a crash's)."""
        total = 0
        while True:
            async with self._pool.connection(timeout=self._connect_timeout_s) as conn, conn.transaction():
                items = await outbox.claim_discrepancies(conn, producer=self._consumer, limit=limit)
                events = [i.event for i in items if i.event is not None]
                await asyncio.gather(*(publish_event(self._publisher, e) for e in events))
                await outbox.mark_discrepancies_published(conn, [i.discrepancy_id for i in items])
            async with self._pool.connection(timeout=self._connect_timeout_s) as conn, conn.transaction():
                pending = await outbox.claim_comparisons(conn, producer=self._consumer, limit=limit)
                await asyncio.gather(*(publish_event(self._publisher, p.event) for p in pending))
                await outbox.mark_comparisons_published(conn, [p.row_id for p in pending])
            total += len(events) + len(pending)
            if len(items) < limit and len(pending) < limit:
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
