"""The discrepancy service's tables that face the bus: inspections announced by the robots, curators' verdicts
on its queue items, and its two outboxes — DiscrepancyFound (queue items) and ComparisonRecorded (one event per
comparison revision, agreements included).

Parameterised SQL on the service's own schema only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from uuid import NAMESPACE_URL, UUID, uuid5

from axis_contracts import ComparisonRecorded, CuratorLabelled, DiscrepancyFound, DiscrepancyKind, ImageCaptured
from psycopg import AsyncConnection

_NS = uuid5(NAMESPACE_URL, "axis-loop/comparison-recorded")


def comparison_event_id(inspection_id: str, revision: int) -> UUID:
    """The same id for the same comparison on every publication (consumers dedupe on it)."""
    return uuid5(_NS, f"{inspection_id}#{revision}")


async def record_captured(conn: AsyncConnection, images: Sequence[ImageCaptured]) -> None:
    """Remember the inspections the imaging robots announced (the first announcement wins)."""
    if images:
        await conn.execute(
            "INSERT INTO captured_inspections (inspection_id, plate_barcode, well, drop_no, imaged_at) "
            "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::int[], %s::timestamptz[]) "
            "ON CONFLICT (inspection_id) DO NOTHING",
            (
                [i.inspection_id for i in images],
                [i.plate_barcode for i in images],
                [i.well for i in images],
                [i.drop for i in images],
                [i.imaged_at for i in images],
            ),
        )


async def record_verdicts(conn: AsyncConnection, labels: Sequence[CuratorLabelled]) -> None:
    """Curators' verdicts on this service's queue items (per-user reliability is computed from them)."""
    for e in sorted(labels, key=lambda e: e.labelled_at):
        await conn.execute(
            "UPDATE discrepancies SET status = %s, resolved_label = %s WHERE id = %s AND status <> 'superseded'",
            (e.item_status, e.resolved_label, e.queue_item_id),
        )


@dataclass(frozen=True)
class PendingComparison:
    """A comparison revision whose ComparisonRecorded is not yet on the broker."""

    row_id: int
    event: ComparisonRecorded


_COLS = (
    "h.id, h.inspection_id, h.revision, h.plate_barcode, h.plate_type, h.well, h.drop_no, h.imaged_at, "
    "h.ml_event_id, h.ml_probability, h.ml_label, h.threshold, h.model_name, h.model_version, h.user_event_id, "
    "h.user_id, h.human_label, h.human_class, h.user_scored_at, h.agrees, h.kind, d.id, d.reason, d.priority"
)


async def claim_comparisons(conn: AsyncConnection, *, producer: str, limit: int = 500) -> list[PendingComparison]:
    """Lock up to ``limit`` unpublished comparison revisions (others' locks skipped) and build their events."""
    cur = await conn.execute(
        f"SELECT {_COLS} FROM comparison_history h "  # noqa: S608
        "LEFT JOIN discrepancies d ON d.inspection_id = h.inspection_id AND d.ml_event_id = h.ml_event_id "
        "AND d.user_event_id = h.user_event_id "
        "WHERE h.published_at IS NULL ORDER BY h.id LIMIT %s FOR UPDATE OF h SKIP LOCKED",
        (limit,),
    )
    out = []
    for r in await cur.fetchall():
        event = ComparisonRecorded(
            event_id=comparison_event_id(r[1], r[2]),
            producer=producer,
            inspection_id=r[1],
            revision=r[2],
            plate_barcode=r[3],
            plate_type=r[4],
            well=r[5],
            drop=r[6],
            imaged_at=r[7],
            ml_event_id=r[8],
            ml_probability=r[9],
            ml_label=r[10],
            threshold=r[11],
            model_name=r[12],
            model_version=r[13],
            user_event_id=r[14],
            user_id=r[15],
            human_label=r[16],
            human_score=r[17],
            user_scored_at=r[18],
            agrees=r[19],
            kind=DiscrepancyKind(r[20]) if r[20] else None,
            queue_item_id=r[21],
            reason=r[22],
            priority=min(1.0, max(0.0, r[23])) if r[23] is not None else None,
        )
        out.append(PendingComparison(row_id=r[0], event=event))
    return out


async def mark_comparisons_published(conn: AsyncConnection, row_ids: Sequence[int]) -> None:
    """Record that these revisions' ComparisonRecorded are on the broker."""
    if row_ids:
        await conn.execute("UPDATE comparison_history SET published_at = now() WHERE id = ANY(%s)", (list(row_ids),))


# DiscrepancyFound ----------------------------------------------------------------------------------------
_OUTBOX_COLS = (
    "id, inspection_id, plate_barcode, plate_type, well, drop_no, kind, ml_probability, ml_label, threshold, "
    "model_name, model_version, human_label, human_class, user_id, status, ml_event_id, user_event_id, priority"
)


@dataclass(frozen=True)
class OutboxItem:
    """A queue item waiting for its DiscrepancyFound; ``event`` is None when it was superseded meanwhile."""

    discrepancy_id: int
    event: DiscrepancyFound | None


async def claim_discrepancies(conn: AsyncConnection, *, producer: str, limit: int = 500) -> list[OutboxItem]:
    """Lock up to ``limit`` unpublished queue items (others' locks skipped) and build their events."""
    cur = await conn.execute(
        f"SELECT {_OUTBOX_COLS} FROM discrepancies WHERE published_at IS NULL "  # noqa: S608
        "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED",
        (limit,),
    )
    out = []
    for r in await cur.fetchall():
        event = None
        if r[15] == "open":
            event = DiscrepancyFound(
                producer=producer,
                discrepancy_id=r[0],
                inspection_id=r[1],
                plate_barcode=r[2],
                plate_type=r[3],
                well=r[4],
                drop=r[5],
                kind=DiscrepancyKind(r[6]),
                ml_probability=r[7],
                ml_label=r[8],
                threshold=r[9] if r[9] is not None else 0.5,
                model_name=r[10],
                model_version=r[11],
                human_label=r[12],
                human_score=r[13],
                user_id=r[14],
                ml_event_id=r[16],
                user_event_id=r[17],
                priority=min(1.0, max(0.0, r[18])) if r[18] is not None else None,
            )
        out.append(OutboxItem(discrepancy_id=r[0], event=event))
    return out


async def mark_discrepancies_published(conn: AsyncConnection, ids: Sequence[int]) -> None:
    """Record that these items' DiscrepancyFound are on the broker (or that none is due)."""
    if ids:
        await conn.execute("UPDATE discrepancies SET published_at = now() WHERE id = ANY(%s)", (list(ids),))
