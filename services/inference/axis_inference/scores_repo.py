"""Scores port of the inference service: images, per-image scores, fused inspection scores, processed events.

One ``transaction()`` per batch: everything a batch writes commits together or not at all. Natural keys make
redelivery harmless: ``images`` by image event id, ``image_scores`` by (image, model name, model version),
``inspection_scores`` by inspection, ``processed_events`` by (consumer, event id).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

from axis_contracts import CrystalScored, ImageCaptured


@dataclass(frozen=True)
class ImageScore:
    """One image's crystal probability from one model version."""

    event: ImageCaptured
    probability: float
    threshold: float
    model_name: str
    model_version: str
    scored_at: datetime


class ScoresTx(Protocol):
    """Writes of one batch, inside one database transaction."""

    async def add_scores(self, scores: Sequence[ImageScore]) -> set[UUID]:
        """Insert images and their scores; returns the image event ids whose score row is new."""
        ...

    async def lock_inspections(self, inspection_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Lock the inspections for this transaction; returns their stored ``mode_scores`` (JSON by mode)."""
        ...

    async def put_inspection(self, scored: CrystalScored) -> None:
        """Insert or replace the fused score of an inspection."""
        ...

    async def mark_processed(self, consumer: str, event_ids: Sequence[UUID]) -> None:
        """Record events whose effect is durable once this transaction commits."""
        ...


class ScoresRepo(Protocol):
    """What the inference service stores."""

    async def processed(self, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]:
        """The subset of ``event_ids`` this consumer has already processed."""
        ...

    def transaction(self) -> Any:
        """``async with repo.transaction() as tx`` (a ScoresTx); commits on success, rolls back on error."""
        ...


def _mode_scores_json(scored: CrystalScored) -> str:
    return json.dumps({str(m): s.model_dump(mode="json") for m, s in scored.scores.items()}, sort_keys=True)


class PgScoresTx:
    """ScoresTx on one psycopg async connection inside a transaction."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    async def add_scores(self, scores: Sequence[ImageScore]) -> set[UUID]:
        # the whole batch in one round trip (psycopg pipeline mode), not two round trips per image
        inserted: list[tuple[UUID, Any]] = []
        async with self._conn.pipeline():
            for s in scores:
                e = s.event
                await self._conn.execute(
                    "INSERT INTO images (image_event_id, inspection_id, plate_barcode, plate_type, well, drop_no,"
                    " imaging_mode, image_uri, imager_id, imaged_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
                    " ON CONFLICT (image_event_id) DO NOTHING",
                    (
                        e.event_id,
                        e.inspection_id,
                        e.plate_barcode,
                        str(e.plate_type),
                        e.well,
                        e.drop,
                        str(e.imaging_mode),
                        e.image_uri,
                        e.imager_id,
                        e.imaged_at,
                    ),
                )
                cur = await self._conn.execute(
                    "INSERT INTO image_scores (image_event_id, inspection_id, imaging_mode, probability, threshold,"
                    " model_name, model_version, scored_at) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)"
                    " ON CONFLICT (image_event_id, model_name, model_version) DO NOTHING RETURNING image_event_id",
                    (
                        e.event_id,
                        e.inspection_id,
                        str(e.imaging_mode),
                        s.probability,
                        s.threshold,
                        s.model_name,
                        s.model_version,
                        s.scored_at,
                    ),
                )
                inserted.append((e.event_id, cur))
        return {event_id for event_id, cur in inserted if await cur.fetchone() is not None}

    async def lock_inspections(self, inspection_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        ids = sorted(set(inspection_ids))  # one lock order everywhere: no deadlocks between workers
        out: dict[str, dict[str, Any]] = {}
        async with self._conn.pipeline():  # the locks, in that order, and the read in one round trip
            for iid in ids:
                await self._conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (iid,))
            cur = await self._conn.execute(
                "SELECT inspection_id, mode_scores FROM inspection_scores WHERE inspection_id = ANY(%s)", (ids,)
            )
        for iid, mode_scores in await cur.fetchall():
            out[iid] = mode_scores if isinstance(mode_scores, dict) else json.loads(mode_scores)
        return out

    async def put_inspection(self, scored: CrystalScored) -> None:
        await self._conn.execute(
            "INSERT INTO inspection_scores (inspection_id, plate_barcode, plate_type, well, drop_no, imaged_at,"
            " mode_scores, fused_probability, label, threshold, model_name, model_version, scored_at)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s::jsonb,%s,%s,%s,%s,%s,%s)"
            " ON CONFLICT (inspection_id) DO UPDATE SET mode_scores = EXCLUDED.mode_scores,"
            " fused_probability = EXCLUDED.fused_probability, label = EXCLUDED.label,"
            " threshold = EXCLUDED.threshold, model_name = EXCLUDED.model_name,"
            " model_version = EXCLUDED.model_version, scored_at = EXCLUDED.scored_at",
            (
                scored.inspection_id,
                scored.plate_barcode,
                str(scored.plate_type),
                scored.well,
                scored.drop,
                scored.imaged_at,
                _mode_scores_json(scored),
                scored.fused_probability,
                scored.label,
                scored.threshold,
                scored.model_name,
                scored.model_version,
                scored.scored_at,
            ),
        )

    async def mark_processed(self, consumer: str, event_ids: Sequence[UUID]) -> None:
        async with self._conn.cursor() as cur:
            await cur.executemany(
                "INSERT INTO processed_events (consumer, event_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                [(consumer, eid) for eid in event_ids],
            )


class PgScoresRepo:
    """ScoresRepo over a psycopg AsyncConnectionPool."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    async def processed(self, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]:
        if not event_ids:
            return set()
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT event_id FROM processed_events WHERE consumer = %s AND event_id = ANY(%s)",
                (consumer, list(event_ids)),
            )
            return {row[0] for row in await cur.fetchall()}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgScoresTx]:
        async with self._pool.connection() as conn, conn.transaction():
            yield PgScoresTx(conn)
