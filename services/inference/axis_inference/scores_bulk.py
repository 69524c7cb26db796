"""Bulk import for the inference service's tables: a facility's past (or a benchmark's year) with COPY.

The same rows as the scoring pipeline writes through ``PgScoresTx`` (images, image_scores, inspection_scores,
processed_events), one transaction per call. COPY has no ON CONFLICT: every key must be new, or the whole batch
fails and nothing of it is written.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from axis_contracts import CrystalScored, ImageCaptured

from axis_inference.scores_repo import ImageScore

_COPY_IMAGES = (
    "COPY images (image_event_id, inspection_id, plate_barcode, plate_type, well, drop_no, imaging_mode, image_uri,"
    " imager_id, imaged_at) FROM STDIN"
)
_COPY_IMAGE_SCORES = (
    "COPY image_scores (image_event_id, inspection_id, imaging_mode, probability, threshold, model_name,"
    " model_version, scored_at) FROM STDIN"
)
_COPY_INSPECTIONS = (
    "COPY inspection_scores (inspection_id, plate_barcode, plate_type, well, drop_no, imaged_at, mode_scores,"
    " fused_probability, label, threshold, model_name, model_version, scored_at) FROM STDIN"
)
_COPY_PROCESSED = "COPY processed_events (consumer, event_id) FROM STDIN"


def _image_row(e: ImageCaptured) -> tuple[Any, ...]:
    return (e.event_id, e.inspection_id, e.plate_barcode, str(e.plate_type), e.well, e.drop, str(e.imaging_mode),
            e.image_uri, e.imager_id, e.imaged_at)  # fmt: skip


def _image_score_row(s: ImageScore) -> tuple[Any, ...]:
    e = s.event
    return (e.event_id, e.inspection_id, str(e.imaging_mode), s.probability, s.threshold, s.model_name,
            s.model_version, s.scored_at)  # fmt: skip


def _mode_scores(c: CrystalScored) -> str:
    # the same JSON as PgScoresTx.put_inspection stores (mode -> ModeScore)
    return json.dumps({str(m): s.model_dump(mode="json") for m, s in c.scores.items()}, sort_keys=True)


def _inspection_row(c: CrystalScored) -> tuple[Any, ...]:
    return (c.inspection_id, c.plate_barcode, str(c.plate_type), c.well, c.drop, c.imaged_at, _mode_scores(c),
            c.fused_probability, c.label, c.threshold, c.model_name, c.model_version, c.scored_at)  # fmt: skip


async def bulk_load(
    pool: Any, scores: Sequence[ImageScore], inspections: Sequence[CrystalScored], *, consumer: str
) -> None:
    """Write scored images and their fused inspection scores, marked processed by ``consumer``, in one COPY batch."""
    tables: list[tuple[str, Iterable[tuple[Any, ...]]]] = [
        (_COPY_IMAGES, (_image_row(s.event) for s in scores)),
        (_COPY_IMAGE_SCORES, (_image_score_row(s) for s in scores)),
        (_COPY_INSPECTIONS, (_inspection_row(c) for c in inspections)),
        (_COPY_PROCESSED, ((consumer, s.event.event_id) for s in scores)),
    ]
    async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
        for statement, rows in tables:
            async with cur.copy(statement) as copy:
                for row in rows:
                    await copy.write_row(row)
