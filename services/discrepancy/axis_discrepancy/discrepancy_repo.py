"""PostgreSQL side of the discrepancy service: idempotency claims, inspection look-ups, batch writes, statistics.

Every statement is parameterised; batch writes use ``executemany`` (pipelined by psycopg) inside the caller's
transaction, so one Kafka batch is one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from axis_core.discrepancy import Comparison, FoldResult, HumanScore, InspectionState, MlScore
from axis_core.routing import Assessment, BudgetState, ModeProbability, Reliability
from psycopg import AsyncConnection
from psycopg.types.json import Jsonb


async def claim_events(conn: AsyncConnection, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]:
    """Record events as processed by ``consumer``; return those not processed before (the ones to apply)."""
    if not event_ids:
        return set()
    cur = await conn.execute(
        "INSERT INTO processed_events (consumer, event_id) SELECT %s, unnest(%s::uuid[]) "
        "ON CONFLICT DO NOTHING RETURNING event_id",
        (consumer, list(event_ids)),
    )
    return {row[0] for row in await cur.fetchall()}


async def known_inspections(conn: AsyncConnection, inspection_ids: Sequence[str]) -> set[str]:
    """The inspections among ``inspection_ids`` that an ImageCaptured or an ML score named."""
    if not inspection_ids:
        return set()
    ids = list(inspection_ids)
    cur = await conn.execute(
        "SELECT inspection_id FROM captured_inspections WHERE inspection_id = ANY(%s) "
        "UNION SELECT inspection_id FROM ml_scores WHERE inspection_id = ANY(%s)",
        (ids, ids),
    )
    return {row[0] for row in await cur.fetchall()}


@dataclass(frozen=True)
class DropRef:
    """A user score's reference by experiment and time instead of inspection id."""

    plate_barcode: str
    well: str
    drop: int
    scored_at: datetime


async def resolve_refs(conn: AsyncConnection, refs: Sequence[DropRef]) -> list[str | None]:
    """For each reference, the latest inspection of that drop imaged at or before ``scored_at`` (None if none)."""
    if not refs:
        return []
    cur = await conn.execute(
        """
        SELECT r.ord, (
            SELECT c.inspection_id FROM (
                SELECT inspection_id, imaged_at FROM captured_inspections
                 WHERE plate_barcode = r.plate AND well = r.well AND drop_no = r.drop_no AND imaged_at <= r.at
                UNION ALL
                SELECT inspection_id, imaged_at FROM ml_scores
                 WHERE plate_barcode = r.plate AND well = r.well AND drop_no = r.drop_no AND imaged_at <= r.at
            ) c ORDER BY c.imaged_at DESC, c.inspection_id DESC LIMIT 1)
        FROM unnest(%s::text[], %s::text[], %s::int[], %s::timestamptz[]) WITH ORDINALITY
             AS r(plate, well, drop_no, at, ord)
        """,
        (
            [r.plate_barcode for r in refs],
            [r.well for r in refs],
            [r.drop for r in refs],
            [r.scored_at for r in refs],
        ),
    )
    found = {int(row[0]): row[1] for row in await cur.fetchall()}
    return [found.get(i + 1) for i in range(len(refs))]


async def lock_inspections(conn: AsyncConnection, inspection_ids: Sequence[str]) -> None:
    """Serialise writers of the same inspections (two consumers, two partitions) until the transaction ends."""
    if inspection_ids:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(i, 4300)) FROM unnest(%s::text[]) AS i",
            (sorted(set(inspection_ids)),),
        )


_ML_COLS = (
    "inspection_id, plate_barcode, plate_type, well, drop_no, imaged_at, fused_probability, label, threshold, "
    "model_name, model_version, event_id, scored_at, mode_scores"
)
_USER_COLS = "event_id, inspection_id, user_id, raw_class, human_label, scored_at"


def _ml_from_row(r: Sequence[Any]) -> MlScore:
    return MlScore(
        inspection_id=r[0],
        plate_barcode=r[1],
        plate_type=r[2],
        well=r[3],
        drop=r[4],
        imaged_at=r[5],
        probability=r[6],
        threshold=r[8],
        model_name=r[9],
        model_version=r[10],
        event_id=r[11],
        scored_at=r[12],
        modes=tuple(ModeProbability(m["mode"], m["probability"], m["threshold"]) for m in (r[13] or [])),
    )


async def load_states(conn: AsyncConnection, inspection_ids: Sequence[str]) -> dict[str, InspectionState]:
    """Current ML score, latest human score and last compared pair of each inspection."""
    ids = sorted(set(inspection_ids))
    states = {i: InspectionState(inspection_id=i) for i in ids}
    if not ids:
        return states
    cur = await conn.execute(f"SELECT {_ML_COLS} FROM ml_scores WHERE inspection_id = ANY(%s)", (ids,))  # noqa: S608
    for r in await cur.fetchall():
        states[r[0]].ml = _ml_from_row(r)
    cur = await conn.execute(
        f"SELECT DISTINCT ON (inspection_id) {_USER_COLS} FROM user_scores "  # noqa: S608
        "WHERE inspection_id = ANY(%s) ORDER BY inspection_id, scored_at DESC, event_id DESC",
        (ids,),
    )
    for r in await cur.fetchall():
        states[r[1]].human = HumanScore(
            event_id=r[0], inspection_id=r[1], user_id=r[2], raw_class=r[3], label=r[4], scored_at=r[5]
        )
    cur = await conn.execute(
        "SELECT inspection_id, revision, ml_event_id, user_event_id FROM comparisons WHERE inspection_id = ANY(%s)",
        (ids,),
    )
    for r in await cur.fetchall():
        states[r[0]].revision = r[1]
        states[r[0]].pair = (r[2], r[3])
    return states


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Transpose rows into one list per column (the arrays that ``unnest`` turns back into rows)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(col) for col in zip(*rows, strict=True)]


async def _insert_unnest(
    conn: AsyncConnection, statement: str, types: Sequence[str], rows: list[tuple[Any, ...]]
) -> set[Any]:
    """``statement`` with ``{rows}`` replaced by ``unnest(%s::t1[], …)``: one round trip for any number of rows.

    Returns the first column of what the statement RETURNs (nothing when it has no RETURNING clause).
    """
    if not rows:
        return set()
    arrays = ", ".join(f"%s::{t}[]" for t in types)
    query = statement.replace("{rows}", f"unnest({arrays})")
    cur = await conn.execute(query.encode(), _columns(rows, len(types)))
    return {r[0] for r in await cur.fetchall()} if cur.description else set()


async def insert_ml_history(conn: AsyncConnection, mls: Sequence[MlScore]) -> set[UUID]:
    """Record CrystalScored events; returns the event ids not seen before (the unique key is the idempotency)."""
    return await _insert_unnest(
        conn,
        "INSERT INTO ml_score_history (event_id, inspection_id, fused_probability, label, threshold, model_name, "
        "model_version, scored_at) SELECT * FROM {rows} ON CONFLICT DO NOTHING RETURNING event_id",
        ("uuid", "text", "float8", "text", "float8", "text", "text", "timestamptz"),
        [_ml_history_row(m) for m in mls],
    )


async def insert_user_scores(conn: AsyncConnection, humans: Sequence[HumanScore]) -> set[UUID]:
    """Record user scores (the history); returns the event ids not seen before."""
    return await _insert_unnest(
        conn,
        f"INSERT INTO user_scores ({_USER_COLS}) SELECT * FROM {{rows}} "  # noqa: S608
        "ON CONFLICT DO NOTHING RETURNING event_id",
        ("uuid", "text", "text", "text", "text", "timestamptz"),
        [(h.event_id, h.inspection_id, h.user_id, h.raw_class, h.label, h.scored_at) for h in humans],
    )


_ML_TYPES = ("text", "text", "text", "text", "int", "timestamptz", "float8", "text", "float8", "text", "text", "uuid",
             "timestamptz", "jsonb")  # fmt: skip


def _ml_row(m: MlScore) -> tuple[Any, ...]:
    modes = Jsonb([{"mode": x.mode, "probability": x.probability, "threshold": x.threshold} for x in m.modes])
    return (m.inspection_id, m.plate_barcode, m.plate_type, m.well, m.drop, m.imaged_at, m.probability, m.label,
            m.threshold, m.model_name, m.model_version, m.event_id, m.scored_at, modes)  # fmt: skip


_CMP_TYPES = ("text", "text", "text", "int", "timestamptz", "float8", "text", "float8", "text", "text", "text", "text",
              "text", "uuid", "uuid", "bool", "text", "int")  # fmt: skip


def _cmp_row(c: Comparison) -> tuple[Any, ...]:
    m, h = c.ml, c.human
    return (c.inspection_id, m.plate_barcode, m.well, m.drop, m.imaged_at, m.probability, m.label, m.threshold,
            m.model_name, m.model_version, h.label, h.raw_class, h.user_id, h.event_id, m.event_id, c.agrees,
            _kind(c), c.revision)  # fmt: skip


def _kind(c: Comparison) -> str | None:
    return c.kind.value if c.kind else None


def _ml_history_row(m: MlScore) -> tuple[Any, ...]:
    return (m.event_id, m.inspection_id, m.probability, m.label, m.threshold, m.model_name, m.model_version,
            m.scored_at)  # fmt: skip


def _history_row(c: Comparison) -> tuple[Any, ...]:
    m, h = c.ml, c.human
    return (c.inspection_id, c.revision, m.probability, m.label, m.model_version, h.label, h.raw_class, h.user_id,
            c.agrees, _kind(c), m.plate_barcode, m.plate_type, m.well, m.drop, m.imaged_at, m.threshold,
            m.model_name, m.event_id, h.event_id, h.scored_at)  # fmt: skip


_ITEM_TYPES = ("text", "text", "text", "text", "int", "text", "float8", "text", "float8", "text", "text", "text",
               "text", "text", "uuid", "uuid", "text", "float8")  # fmt: skip
AGREEMENT_KIND = "agreement"
"""``kind`` of a queue item that is an agreement routed to curators (it has a ``reason`` instead)."""


def _item_row(c: Comparison, a: Assessment | None) -> tuple[Any, ...]:
    m, h = c.ml, c.human
    reason, priority = (a.reason, a.value) if a is not None else ("disagreement", 0.5)
    return (c.inspection_id, m.plate_barcode, m.plate_type, m.well, m.drop, _kind(c) or AGREEMENT_KIND,
            m.probability, m.label, m.threshold, m.model_name, m.model_version, h.label, h.raw_class, h.user_id,
            m.event_id, h.event_id, reason, priority)  # fmt: skip


Routing = dict[tuple[UUID, UUID], Assessment]
"""Assessment of each comparison by its (ML event id, user event id) pair."""


async def save_results(
    conn: AsyncConnection,
    results: Sequence[FoldResult],
    *,
    assessments: Routing | None = None,
    routed: set[tuple[UUID, UUID]] | None = None,
) -> None:
    """Persist folded state: latest ML scores, comparisons (+history), queue items, supersessions.

    Every disagreement becomes a queue item (published as DiscrepancyFound through the outbox); an agreement
    does when its pair is in ``routed`` (kind 'agreement', already marked published: no DiscrepancyFound).
    ``assessments`` give each item its reason and priority.
    """
    scores = assessments or {}
    chosen = routed or set()
    await _insert_unnest(
        conn,
        f"INSERT INTO ml_scores ({_ML_COLS}) SELECT * FROM {{rows}} "  # noqa: S608
        "ON CONFLICT (inspection_id) DO UPDATE SET plate_barcode = EXCLUDED.plate_barcode, "
        "plate_type = EXCLUDED.plate_type, well = EXCLUDED.well, drop_no = EXCLUDED.drop_no, "
        "imaged_at = EXCLUDED.imaged_at, fused_probability = EXCLUDED.fused_probability, "
        "label = EXCLUDED.label, threshold = EXCLUDED.threshold, model_name = EXCLUDED.model_name, "
        "model_version = EXCLUDED.model_version, event_id = EXCLUDED.event_id, scored_at = EXCLUDED.scored_at",
        _ML_TYPES,
        [_ml_row(r.state.ml) for r in results if r.ml_changed and r.state.ml is not None],
    )
    history = [c for r in results for c in r.comparisons]
    if not history:
        return
    await _insert_unnest(
        conn,
        "INSERT INTO comparison_history (inspection_id, revision, ml_probability, ml_label, model_version, "
        "human_label, human_class, user_id, agrees, kind, plate_barcode, plate_type, well, drop_no, imaged_at, "
        "threshold, model_name, ml_event_id, user_event_id, user_scored_at, published_at) "
        "SELECT *, NULL::timestamptz FROM {rows} ON CONFLICT DO NOTHING",
        (
            "text",
            "int",
            "float8",
            "text",
            "text",
            "text",
            "text",
            "text",
            "bool",
            "text",
            "text",
            "text",
            "text",
            "int",
            "timestamptz",
            "float8",
            "text",
            "uuid",
            "uuid",
            "timestamptz",
        ),  # fmt: skip
        [_history_row(c) for c in history],
    )
    latest = [r.comparisons[-1] for r in results if r.comparisons]
    await _insert_unnest(
        conn,
        "INSERT INTO comparisons (inspection_id, plate_barcode, well, drop_no, imaged_at, ml_probability, ml_label, "
        "threshold, model_name, model_version, human_label, human_class, user_id, user_event_id, ml_event_id, agrees, "
        "kind, revision) SELECT * FROM {rows} "
        "ON CONFLICT (inspection_id) DO UPDATE SET plate_barcode = EXCLUDED.plate_barcode, "
        "well = EXCLUDED.well, drop_no = EXCLUDED.drop_no, imaged_at = EXCLUDED.imaged_at, "
        "ml_probability = EXCLUDED.ml_probability, ml_label = EXCLUDED.ml_label, threshold = EXCLUDED.threshold, "
        "model_name = EXCLUDED.model_name, model_version = EXCLUDED.model_version, "
        "human_label = EXCLUDED.human_label, human_class = EXCLUDED.human_class, user_id = EXCLUDED.user_id, "
        "user_event_id = EXCLUDED.user_event_id, ml_event_id = EXCLUDED.ml_event_id, agrees = EXCLUDED.agrees, "
        "kind = EXCLUDED.kind, revision = EXCLUDED.revision, updated_at = now()",
        _CMP_TYPES,
        [_cmp_row(c) for c in latest],
    )
    await _insert_unnest(
        conn,
        "INSERT INTO discrepancies (inspection_id, plate_barcode, plate_type, well, drop_no, kind, ml_probability, "
        "ml_label, threshold, model_name, model_version, human_label, human_class, user_id, ml_event_id, "
        "user_event_id, reason, priority, published_at) SELECT *, NULL::timestamptz FROM {rows} "
        "ON CONFLICT DO NOTHING",
        _ITEM_TYPES,
        [_item_row(c, scores.get(c.pair)) for c in history if not c.agrees],
    )
    await _insert_unnest(
        conn,
        "INSERT INTO discrepancies (inspection_id, plate_barcode, plate_type, well, drop_no, kind, ml_probability, "
        "ml_label, threshold, model_name, model_version, human_label, human_class, user_id, ml_event_id, "
        "user_event_id, reason, priority, published_at) SELECT *, now() FROM {rows} ON CONFLICT DO NOTHING",
        # (no DiscrepancyFound: an agreement is not a discrepancy; its ComparisonRecorded names the queue item)
        _ITEM_TYPES,
        [_item_row(c, scores.get(c.pair)) for c in history if c.agrees and c.pair in chosen],
    )
    # An open item whose pair is no longer the inspection's current comparison is superseded; a first
    # comparison (revision 1, alone in the batch) has no older item to supersede.
    latest = [r.comparisons[-1] for r in results if r.comparisons and r.comparisons[-1].revision > 1]
    if not latest:
        return
    await conn.execute(
        "UPDATE discrepancies d SET status = 'superseded' "
        "FROM unnest(%s::text[], %s::uuid[], %s::uuid[]) AS cur(inspection_id, ml_event_id, user_event_id) "
        "WHERE d.inspection_id = cur.inspection_id AND d.status = 'open' "
        "AND (d.ml_event_id, d.user_event_id) <> (cur.ml_event_id, cur.user_event_id)",
        ([c.inspection_id for c in latest], [c.ml.event_id for c in latest], [c.human.event_id for c in latest]),
    )


async def user_reliability(conn: AsyncConnection, user_ids: Sequence[str]) -> dict[str, Reliability]:
    """Each user's record with the curators: queue items resolved crystal/other, and how many overturned the user."""
    ids = sorted(set(user_ids))
    out = {u: Reliability(u) for u in ids}
    if not ids:
        return out
    cur = await conn.execute(_RELIABILITY_OF_USERS, (ids,))
    for user, curated, overturned in await cur.fetchall():
        out[user] = Reliability(user, int(curated), int(overturned))
    return out


# Curated outcomes per user: queue items resolved crystal/other, and how many of them overturned the user.
# (Whole literals, not concatenations: the static check allows SQL only as constants or psycopg.sql.)
_RELIABILITY_OF_USERS = (
    "SELECT user_id, count(*), count(*) FILTER (WHERE resolved_label <> human_label) FROM discrepancies "
    "WHERE status = 'resolved' AND resolved_label IN ('crystal', 'other') AND user_id = ANY(%s) GROUP BY user_id"
)


async def budget_spent(conn: AsyncConnection) -> BudgetState:
    """Today's (UTC) queue intake: agreements routed and disagreements queued."""
    cur = await conn.execute(
        "SELECT count(*) FILTER (WHERE reason <> 'disagreement'), count(*) FILTER (WHERE reason = 'disagreement') "
        "FROM discrepancies WHERE created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
    )
    row = await cur.fetchone()
    return BudgetState(routed_today=int(row[0]), disagreements_today=int(row[1])) if row else BudgetState()


async def lock_budget(conn: AsyncConnection) -> None:
    """Serialise the agreement budget between replicas until the transaction ends."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('axis-routing-budget', 4300))")


# (key grouped over every comparison, name of each group): the name is computed once per group, not per row
