"""PostgreSQL access of the curation service: queue, curator labels, plate views, dataset records.

Every query is parameterised. The consensus decision is passed in (pure logic lives in the service),
and applied in the same transaction that stores the label, under a row lock on the queued item.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel


class ItemNotFound(LookupError):
    """No queued item with this id."""


class ItemClosed(ValueError):
    """The item was superseded (a newer score replaced the disagreement) and takes no more labels."""


class DatasetExists(ValueError):
    """This dataset name/version (or this frozen test set) was already exported."""


class ImageRef(BaseModel):
    """One stored image of an inspection."""

    image_event_id: str
    imaging_mode: str
    image_uri: str
    imaged_at: datetime


class LabelView(BaseModel):
    """One curator label."""

    curator: str
    label: str
    comment: str
    created_at: datetime


class QueueItem(BaseModel):
    """A disagreement as listed in the curator queue."""

    id: int
    inspection_id: str
    plate_barcode: str
    well: str
    drop: int
    kind: str
    ml_probability: float
    ml_label: str
    model_name: str
    model_version: str
    human_label: str
    human_class: str
    user_id: str
    status: str
    resolved_label: str | None
    created_at: datetime
    label_count: int = 0
    reason: str = "disagreement"
    priority: float = 0.5


class ItemDetail(QueueItem):
    """A queued item with its images and labels."""

    images: list[ImageRef]
    labels: list[LabelView]


class DatasetRecord(BaseModel):
    """A row of ``datasets``."""

    name: str
    version: str
    purpose: str
    manifest_uri: str
    manifest_sha256: str
    qc_report_uri: str
    card_uri: str | None
    config: dict[str, Any]
    counts: dict[str, Any]
    created_by: str
    created_at: datetime | None = None


VoteRow = tuple[str, str, datetime]
"""(curator, label, created_at) of a stored curator label."""
Decider = Callable[[list[VoteRow]], tuple[str, str | None]]
"""Consensus rule: votes -> (status, resolved_label)."""

_ITEM_COLS = (
    "d.id, d.inspection_id, d.plate_barcode, d.well, d.drop_no AS drop, d.kind, d.ml_probability, d.ml_label, "
    "d.model_name, d.model_version, d.human_label, d.human_class, d.user_id, d.status, d.resolved_label, "
    "d.created_at, (SELECT count(*) FROM curator_labels l WHERE l.discrepancy_id = d.id) AS label_count, "
    "d.reason, d.priority"
)


class CurationRepo:
    """Queries of the curation service over a psycopg ConnectionPool."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    # queue ---------------------------------------------------------------------------------------
    def queue(self, curator: str, limit: int) -> tuple[int, list[QueueItem]]:
        """(total, first ``limit``) open items this curator has not labelled, highest expected value first.

        ``priority`` is the chance that a curator overturns the model's label (axis_core.routing); ties go
        oldest first.
        """
        where = (
            "d.status = 'open' AND NOT EXISTS "
            "(SELECT 1 FROM curator_labels l WHERE l.discrepancy_id = d.id AND l.curator = %(c)s)"
        )
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"SELECT count(*) AS n FROM discrepancies d WHERE {where}", {"c": curator})  # noqa: S608
            total = int(cur.fetchone()["n"])  # type: ignore[index]
            cur.execute(
                f"SELECT {_ITEM_COLS} FROM discrepancies d WHERE {where} "  # noqa: S608
                "ORDER BY d.priority DESC, d.created_at, d.id LIMIT %(n)s",
                {"c": curator, "n": limit},
            )
            items = [QueueItem.model_validate(r) for r in cur.fetchall()]
        return total, items

    def item(self, item_id: int) -> ItemDetail:
        """One item with its images and all curator labels; ItemNotFound when absent."""
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"SELECT {_ITEM_COLS} FROM discrepancies d WHERE d.id = %s", (item_id,))  # noqa: S608
            row = cur.fetchone()
            if row is None:
                raise ItemNotFound(f"no queued item {item_id}")
            cur.execute(
                "SELECT curator, label, comment, created_at FROM curator_labels WHERE discrepancy_id = %s "
                "ORDER BY created_at, id",
                (item_id,),
            )
            labels = [LabelView.model_validate(r) for r in cur.fetchall()]
        return ItemDetail(**row, images=self.images_of(row["inspection_id"]), labels=labels)

    def images_of(self, inspection_id: str) -> list[ImageRef]:
        """The images of an inspection, visible before UV."""
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT image_event_id::text AS image_event_id, imaging_mode, image_uri, imaged_at FROM images "
                "WHERE inspection_id = %s ORDER BY imaging_mode DESC, imaged_at, image_uri",
                (inspection_id,),
            )
            return [ImageRef.model_validate(r) for r in cur.fetchall()]

    def add_label(self, item_id: int, curator: str, label: str, comment: str, decide: Decider) -> QueueItem:
        """Store a curator label and re-apply the consensus rule, atomically; returns the updated item."""
        with self._pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute("SELECT status FROM discrepancies WHERE id = %s FOR UPDATE", (item_id,))
            row = cur.fetchone()
            if row is None:
                raise ItemNotFound(f"no queued item {item_id}")
            if row["status"] == "superseded":
                raise ItemClosed(f"item {item_id} was superseded by a newer score and takes no labels")
            cur.execute(
                "INSERT INTO curator_labels (discrepancy_id, curator, label, comment) VALUES (%s, %s, %s, %s)",
                (item_id, curator, label, comment),
            )
            cur.execute(
                "SELECT curator, label, created_at FROM curator_labels WHERE discrepancy_id = %s "
                "ORDER BY created_at, id",
                (item_id,),
            )
            votes = [(r["curator"], r["label"], r["created_at"]) for r in cur.fetchall()]
            status, resolved = decide(votes)
            cur.execute(
                "UPDATE discrepancies SET status = %s, resolved_label = %s WHERE id = %s", (status, resolved, item_id)
            )
            cur.execute(f"SELECT {_ITEM_COLS} FROM discrepancies d WHERE d.id = %s", (item_id,))  # noqa: S608
            return QueueItem.model_validate(cur.fetchone())

    # plate map -----------------------------------------------------------------------------------
    def plate_wells(self, barcode: str) -> list[dict[str, Any]]:
        """Latest inspection per (well, drop) of a plate, with its fused score and latest user score."""
        sql = """
        WITH insp AS (
            SELECT inspection_id, plate_type, well, drop_no, imaged_at FROM images WHERE plate_barcode = %(p)s
            UNION
            SELECT inspection_id, plate_type, well, drop_no, imaged_at FROM inspection_scores
            WHERE plate_barcode = %(p)s
        ), latest AS (
            SELECT DISTINCT ON (well, drop_no) * FROM insp ORDER BY well, drop_no, imaged_at DESC, inspection_id DESC
        )
        SELECT l.inspection_id, l.plate_type, l.well, l.drop_no AS drop, l.imaged_at,
               s.fused_probability, s.label AS ml_label, s.threshold, s.model_name, s.model_version, s.mode_scores,
               u.raw_class, u.human_label, u.user_id, u.scored_at AS user_scored_at
        FROM latest l
        LEFT JOIN inspection_scores s ON s.inspection_id = l.inspection_id
        LEFT JOIN LATERAL (
            SELECT raw_class, human_label, user_id, scored_at FROM user_scores us
            WHERE us.inspection_id = l.inspection_id
               OR (us.inspection_id IS NULL AND us.plate_barcode = %(p)s AND us.well = l.well
                   AND coalesce(us.drop_no, 1) = l.drop_no)
            ORDER BY us.scored_at DESC LIMIT 1
        ) u ON true
        ORDER BY l.well, l.drop_no
        """
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, {"p": barcode})
            return list(cur.fetchall())

    def plates(self, limit: int = 200) -> list[dict[str, Any]]:
        """Plates with scores, most recently imaged first."""
        sql = (
            "SELECT plate_barcode, max(plate_type) AS plate_type, count(DISTINCT well) AS wells, "
            "max(imaged_at) AS last_imaged_at FROM inspection_scores GROUP BY plate_barcode "
            "ORDER BY last_imaged_at DESC LIMIT %s"
        )
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, (limit,))
            return list(cur.fetchall())

    def well_history(self, barcode: str, well: str) -> dict[str, list[dict[str, Any]]]:
        """Every inspection of a well (newest first) with images, per-image and fused scores, user scores, labels."""
        p = {"p": barcode, "w": well}
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT inspection_id, drop_no AS drop, imaging_mode, image_uri, imaged_at, image_event_id::text "
                "AS image_event_id FROM images WHERE plate_barcode = %(p)s AND well = %(w)s "
                "ORDER BY imaged_at DESC, imaging_mode DESC",
                p,
            )
            images = list(cur.fetchall())
            cur.execute(
                "SELECT s.inspection_id, s.imaging_mode, s.probability, s.threshold, s.model_name, s.model_version, "
                "s.scored_at FROM image_scores s JOIN images i ON i.image_event_id = s.image_event_id "
                "WHERE i.plate_barcode = %(p)s AND i.well = %(w)s ORDER BY s.scored_at DESC, s.id DESC",
                p,
            )
            image_scores = list(cur.fetchall())
            cur.execute(
                "SELECT inspection_id, drop_no AS drop, imaged_at, fused_probability, label, threshold, model_name, "
                "model_version, scored_at FROM inspection_scores WHERE plate_barcode = %(p)s AND well = %(w)s "
                "ORDER BY imaged_at DESC",
                p,
            )
            fused = list(cur.fetchall())
            cur.execute(
                "SELECT inspection_id, drop_no AS drop, user_id, raw_class, human_label, scored_at FROM user_scores "
                "WHERE plate_barcode = %(p)s AND well = %(w)s OR inspection_id IN "
                "(SELECT inspection_id FROM images WHERE plate_barcode = %(p)s AND well = %(w)s) "
                "ORDER BY scored_at DESC",
                p,
            )
            user_scores = list(cur.fetchall())
            cur.execute(
                "SELECT d.id AS item_id, d.inspection_id, d.status, d.resolved_label, l.curator, l.label, l.comment, "
                "l.created_at FROM discrepancies d JOIN curator_labels l ON l.discrepancy_id = d.id "
                "WHERE d.plate_barcode = %(p)s AND d.well = %(w)s ORDER BY l.created_at DESC",
                p,
            )
            curator_labels = list(cur.fetchall())
        return {
            "images": images,
            "image_scores": image_scores,
            "fused_scores": fused,
            "user_scores": user_scores,
            "curator_labels": curator_labels,
        }

    # dataset candidates --------------------------------------------------------------------------
    def agreement_rows(self, plates: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One row per image of every agreement (ML = human) that has no curated disagreement."""
        sql = """
        SELECT c.inspection_id, c.plate_barcode, c.well, c.drop_no, c.imaged_at, c.ml_probability, c.ml_label,
               c.model_version, c.human_label, c.human_class, i.image_uri, i.imaging_mode
        FROM comparisons c JOIN images i ON i.inspection_id = c.inspection_id
        WHERE c.agrees AND (%(plates)s::text[] IS NULL OR c.plate_barcode = ANY(%(plates)s::text[]))
          AND NOT EXISTS (SELECT 1 FROM discrepancies d JOIN curator_labels l ON l.discrepancy_id = d.id
                          WHERE d.inspection_id = c.inspection_id AND d.status <> 'superseded')
        ORDER BY c.inspection_id, i.imaging_mode, i.image_uri
        """
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, {"plates": list(plates) if plates is not None else None})
            return list(cur.fetchall())

    def curated_rows(self, plates: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One row per image of the latest labelled, not superseded disagreement of each inspection.

        Each row carries ``votes``: the item's curator labels as (curator, label, created_at).
        """
        sql = """
        WITH items AS (
            SELECT DISTINCT ON (d.inspection_id) d.id, d.inspection_id, d.plate_barcode, d.well, d.drop_no,
                   d.ml_probability, d.ml_label, d.model_version, d.human_label, d.human_class
            FROM discrepancies d
            WHERE d.status <> 'superseded'
              AND (%(plates)s::text[] IS NULL OR d.plate_barcode = ANY(%(plates)s::text[]))
              AND EXISTS (SELECT 1 FROM curator_labels l WHERE l.discrepancy_id = d.id)
            ORDER BY d.inspection_id, d.created_at DESC, d.id DESC
        )
        SELECT it.*, i.image_uri, i.imaging_mode,
               min(i.imaged_at) OVER (PARTITION BY i.inspection_id) AS imaged_at
        FROM items it JOIN images i ON i.inspection_id = it.inspection_id
        ORDER BY it.inspection_id, i.imaging_mode, i.image_uri
        """
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, {"plates": list(plates) if plates is not None else None})
            rows = list(cur.fetchall())
            ids = sorted({r["id"] for r in rows})
            cur.execute(
                "SELECT discrepancy_id, curator, label, created_at FROM curator_labels "
                "WHERE discrepancy_id = ANY(%s) ORDER BY created_at, id",
                (ids,),
            )
            votes: dict[int, list[VoteRow]] = {}
            for v in cur.fetchall():
                votes.setdefault(v["discrepancy_id"], []).append((v["curator"], v["label"], v["created_at"]))
        for r in rows:
            r["votes"] = votes.get(r["id"], [])
        return rows

    # datasets ------------------------------------------------------------------------------------
    def test_plates(self) -> list[str]:
        """Plates of every frozen test set."""
        with self._pool.connection() as conn:
            return [r[0] for r in conn.execute("SELECT plate_barcode FROM test_set_plates ORDER BY plate_barcode")]

    @contextmanager
    def name_lock(self, name: str) -> Iterator[None]:
        """Hold a session advisory lock on a dataset name: one export of a name at a time."""
        with self._pool.connection() as conn:
            conn.autocommit = True
            conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"axis-dataset:{name}",))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"axis-dataset:{name}",))
                conn.autocommit = False

    def record_dataset(self, record: DatasetRecord, test_plates: Sequence[str] = ()) -> None:
        """Insert the dataset row (and, for a test set, freeze its plates); DatasetExists on a repeat."""
        with self._pool.connection() as conn, conn.transaction():
            if record.purpose == "test":
                row = conn.execute(
                    "SELECT version FROM datasets WHERE name = %s AND purpose = 'test' LIMIT 1", (record.name,)
                ).fetchone()
                if row is not None:
                    raise DatasetExists(f"the frozen test set {record.name!r} was already exported (version {row[0]})")
            cur = conn.execute(
                "INSERT INTO datasets (name, version, purpose, manifest_uri, manifest_sha256, qc_report_uri, card_uri, "
                "config, counts, created_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (
                    record.name,
                    record.version,
                    record.purpose,
                    record.manifest_uri,
                    record.manifest_sha256,
                    record.qc_report_uri,
                    record.card_uri,
                    Jsonb(record.config),
                    Jsonb(record.counts),
                    record.created_by,
                ),
            )
            if cur.rowcount == 0:
                raise DatasetExists(f"dataset {record.name!r} version {record.version!r} already exists")
            for plate in sorted(set(test_plates)):
                conn.execute(
                    "INSERT INTO test_set_plates (plate_barcode, dataset_name, dataset_version) VALUES (%s, %s, %s) "
                    "ON CONFLICT (plate_barcode) DO NOTHING",
                    (plate, record.name, record.version),
                )

    def datasets(self, name: str | None = None) -> list[DatasetRecord]:
        """Recorded datasets, newest first (optionally of one name)."""
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT * FROM datasets WHERE %(n)s::text IS NULL OR name = %(n)s "
                "ORDER BY created_at DESC, name, version",
                {"n": name},
            )
            return [DatasetRecord.model_validate(r) for r in cur.fetchall()]
