"""Curation's read model of the other services: SQL that applies their events to curation's own tables.

``images`` / ``image_scores`` / ``inspection_scores`` from CrystalScored, ``user_scores`` / ``comparisons`` from
ComparisonRecorded, the queue (``discrepancies``) from DiscrepancyFound and the routed agreements of
ComparisonRecorded, and ``curator_labels`` from curation's own CuratorLabelled. Every write is idempotent
(natural keys; "newer revision wins"), so a redelivered batch or a replay from the earliest offset ends in the
same rows. Parameterised SQL on curation's own schema only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from axis_contracts import ComparisonRecorded, CrystalScored, CuratorLabelled, DiscrepancyFound
from psycopg import AsyncConnection

READ_MODEL_TABLES = (
    "images", "image_scores", "inspection_scores", "user_scores", "comparisons", "discrepancies", "curator_labels",
    "item_verdicts", "withdrawn_labels"
)  # fmt: skip


async def apply_scores(conn: AsyncConnection, events: Sequence[CrystalScored]) -> None:
    """Images and per-image scores of each mode, and the inspection's fused score (the latest scoring wins)."""
    images, scores = [], []
    for e in events:
        for mode, s in e.scores.items():
            images.append((s.image_event_id, e.inspection_id, e.plate_barcode, str(e.plate_type), e.well, e.drop,
                           str(mode), s.image_uri, e.imaged_at))  # fmt: skip
            scores.append((s.image_event_id, e.inspection_id, str(mode), s.probability, s.threshold, s.model_name,
                           s.model_version, e.scored_at))  # fmt: skip
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO images (image_event_id, inspection_id, plate_barcode, plate_type, well, drop_no, "
            "imaging_mode, image_uri, imaged_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            images,
        )
        await cur.executemany(
            "INSERT INTO image_scores (image_event_id, inspection_id, imaging_mode, probability, threshold, "
            "model_name, model_version, scored_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            scores,
        )
        await cur.executemany(
            "INSERT INTO inspection_scores (inspection_id, plate_barcode, plate_type, well, drop_no, imaged_at, "
            "mode_scores, fused_probability, label, threshold, model_name, model_version, scored_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (inspection_id) DO UPDATE SET mode_scores = EXCLUDED.mode_scores, "
            "fused_probability = EXCLUDED.fused_probability, label = EXCLUDED.label, threshold = EXCLUDED.threshold, "
            "model_name = EXCLUDED.model_name, model_version = EXCLUDED.model_version, scored_at = EXCLUDED.scored_at "
            "WHERE inspection_scores.scored_at <= EXCLUDED.scored_at",
            [
                (
                    e.inspection_id,
                    e.plate_barcode,
                    str(e.plate_type),
                    e.well,
                    e.drop,
                    e.imaged_at,
                    _mode_json(e),
                    e.fused_probability,
                    e.label,
                    e.threshold,
                    e.model_name,
                    e.model_version,
                    e.scored_at,
                )  # fmt: skip
                for e in events
            ],
        )


def _mode_json(e: CrystalScored) -> str:
    return json.dumps({str(m): s.model_dump(mode="json") for m, s in e.scores.items()}, sort_keys=True)


async def apply_comparisons(conn: AsyncConnection, events: Sequence[ComparisonRecorded]) -> None:
    """User scores, the inspection's current comparison, routed agreements as queue items, supersessions."""
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO user_scores (event_id, inspection_id, plate_barcode, well, drop_no, user_id, raw_class, "
            "human_label, scored_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            [
                (
                    e.user_event_id,
                    e.inspection_id,
                    e.plate_barcode,
                    e.well,
                    e.drop,
                    e.user_id,
                    e.human_score,
                    e.human_label,
                    e.user_scored_at,
                )
                for e in events
            ],  # fmt: skip
        )
        await cur.executemany(
            "INSERT INTO comparisons (inspection_id, plate_barcode, well, drop_no, imaged_at, ml_probability, "
            "ml_label, threshold, model_name, model_version, human_label, human_class, user_id, user_event_id, "
            "ml_event_id, agrees, kind, revision) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (inspection_id) DO UPDATE SET plate_barcode = EXCLUDED.plate_barcode, well = EXCLUDED.well, "
            "drop_no = EXCLUDED.drop_no, imaged_at = EXCLUDED.imaged_at, ml_probability = EXCLUDED.ml_probability, "
            "ml_label = EXCLUDED.ml_label, threshold = EXCLUDED.threshold, model_name = EXCLUDED.model_name, "
            "model_version = EXCLUDED.model_version, human_label = EXCLUDED.human_label, "
            "human_class = EXCLUDED.human_class, user_id = EXCLUDED.user_id, user_event_id = EXCLUDED.user_event_id, "
            "ml_event_id = EXCLUDED.ml_event_id, agrees = EXCLUDED.agrees, kind = EXCLUDED.kind, "
            "revision = EXCLUDED.revision WHERE comparisons.revision < EXCLUDED.revision",
            [_comparison_row(e) for e in events],
        )
        routed = [e for e in events if e.agrees and e.queue_item_id is not None]
        await cur.executemany(
            "INSERT INTO discrepancies (id, inspection_id, plate_barcode, plate_type, well, drop_no, kind, "
            "ml_probability, ml_label, threshold, model_name, model_version, human_label, human_class, user_id, "
            "ml_event_id, user_event_id, reason, priority) "
            "VALUES (%s, %s, %s, %s, %s, %s, 'agreement', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO NOTHING",
            [
                (
                    e.queue_item_id,
                    e.inspection_id,
                    e.plate_barcode,
                    str(e.plate_type),
                    e.well,
                    e.drop,
                    e.ml_probability,
                    e.ml_label,
                    e.threshold,
                    e.model_name,
                    e.model_version,
                    e.human_label,
                    e.human_score,
                    e.user_id,
                    e.ml_event_id,
                    e.user_event_id,
                    e.reason or "disagreement",
                    e.priority if e.priority is not None else 0.5,
                )
                for e in routed
            ],  # fmt: skip
        )
    await settle(conn, inspection_ids=sorted({e.inspection_id for e in events}))


def _comparison_row(e: ComparisonRecorded) -> tuple[Any, ...]:
    return (e.inspection_id, e.plate_barcode, e.well, e.drop, e.imaged_at, e.ml_probability, e.ml_label, e.threshold,
            e.model_name, e.model_version, e.human_label, e.human_score, e.user_id, e.user_event_id, e.ml_event_id,
            e.agrees, e.kind.value if e.kind else None, e.revision)  # fmt: skip


async def apply_discrepancies(conn: AsyncConnection, events: Sequence[DiscrepancyFound]) -> None:
    """Queue items from DiscrepancyFound (by the discrepancy service's id), superseded when already outdated."""
    rows = [
        (
            e.discrepancy_id,
            e.inspection_id,
            e.plate_barcode,
            str(e.plate_type),
            e.well,
            e.drop,
            e.kind.value,
            e.ml_probability,
            e.ml_label,
            e.threshold,
            e.model_name,
            e.model_version,
            e.human_label,
            e.human_score,
            e.user_id,
            e.ml_event_id,
            e.user_event_id,
            e.priority if e.priority is not None else 0.5,
        )  # fmt: skip
        for e in events
        if e.discrepancy_id is not None
    ]
    async with conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO discrepancies (id, inspection_id, plate_barcode, plate_type, well, drop_no, kind, "
            "ml_probability, ml_label, threshold, model_name, model_version, human_label, human_class, user_id, "
            "ml_event_id, user_event_id, priority) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (id) DO NOTHING",
            rows,
        )
    await settle(conn, inspection_ids=sorted({e.inspection_id for e in events}))


async def settle(conn: AsyncConnection, *, inspection_ids: Sequence[str] = (), item_ids: Sequence[int] = ()) -> None:
    """Each touched item's status, the same whatever order the topics were read in (live or replayed):

    a curators' verdict (resolved / unresolved) stands; else an item whose pair is no longer its inspection's
    current comparison is superseded (as the discrepancy service decides); else the latest label's state
    (open). Curators label only items that are not superseded, so this is the state the live run had.
    """
    if not inspection_ids and not item_ids:
        return
    await conn.execute(
        "UPDATE discrepancies d SET "
        "status = CASE WHEN v.status IN ('resolved', 'unresolved') THEN v.status "
        "  WHEN c.inspection_id IS NOT NULL AND d.ml_event_id IS NOT NULL "
        "   AND (d.ml_event_id, d.user_event_id) <> (c.ml_event_id, c.user_event_id) THEN 'superseded' "
        "  ELSE 'open' END, "
        "resolved_label = CASE WHEN v.status IN ('resolved', 'unresolved') THEN v.resolved_label END "
        "FROM discrepancies d2 LEFT JOIN item_verdicts v ON v.item_id = d2.id "
        "LEFT JOIN comparisons c ON c.inspection_id = d2.inspection_id "
        "WHERE d.id = d2.id AND (d.inspection_id = ANY(%s) OR d.id = ANY(%s))",
        (list(inspection_ids), list(item_ids)),
    )


def rebuild_sync(postgres: Any) -> str:
    """Empty the read-model tables and start a new generation (a new consumer group: replay from the earliest
    offset on the next start). Labels come back from their events; accounts and datasets stay."""
    from axis_adapters.db import connect
    from psycopg import sql

    with connect(postgres) as conn:
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(map(sql.Identifier, READ_MODEL_TABLES))))
        row = conn.execute(
            "UPDATE read_model_state SET generation = gen_random_uuid(), rebuilt_at = now() RETURNING generation"
        ).fetchone()
        conn.commit()
    return f"axis-curation-read-model-{row[0] if row else '?'}"


# a taken-back label's tombstone (the live undo writes it in its own transaction, the replay from its event)
WITHDRAW_SQL = "INSERT INTO withdrawn_labels (label_event_id, withdrawn_at) VALUES (%s, %s) ON CONFLICT DO NOTHING"


async def apply_labels(conn: AsyncConnection, events: Sequence[CuratorLabelled]) -> None:
    """Curators' labels and undos as they happened (a live label is already there: same event id), and the
    item's state after each (the latest label event wins)."""
    if not events:
        return
    async with conn.cursor() as cur:
        # the items first, in id order, as a curator's label locks its item before its verdict: the other order
        # deadlocked against a concurrent label on item_verdicts
        await cur.execute(
            "SELECT id FROM discrepancies WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
            (sorted({e.queue_item_id for e in events}),),
        )
        for e in events:
            if e.withdraws is not None:
                await cur.execute(WITHDRAW_SQL, (e.withdraws, e.labelled_at))
                await cur.execute("DELETE FROM curator_labels WHERE label_event_id = %s", (e.withdraws,))
            else:  # not when its undo came first (a live undo, or the log read again after the undo's event)
                await cur.execute(
                    "INSERT INTO curator_labels (discrepancy_id, curator, label, comment, created_at, label_event_id) "
                    "SELECT %s, %s, %s, %s, %s, %s WHERE NOT EXISTS (SELECT 1 FROM withdrawn_labels "
                    "WHERE label_event_id = %s) ON CONFLICT (label_event_id) DO NOTHING",
                    (e.queue_item_id, e.curator, e.label, e.comment, e.labelled_at, e.event_id, e.event_id),
                )
            await record_verdict(cur, e.queue_item_id, e.item_status, e.resolved_label, e.labelled_at)
    await settle(conn, item_ids=sorted({e.queue_item_id for e in events}))


async def record_verdict(cur: Any, item_id: int, status: str, resolved: str | None, at: Any) -> None:
    """The item's state after a label event (the latest event wins)."""
    await cur.execute(
        "INSERT INTO item_verdicts (item_id, status, resolved_label, labelled_at) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (item_id) DO UPDATE SET status = EXCLUDED.status, resolved_label = EXCLUDED.resolved_label, "
        "labelled_at = EXCLUDED.labelled_at WHERE item_verdicts.labelled_at <= EXCLUDED.labelled_at",
        (item_id, status, resolved, at),
    )
