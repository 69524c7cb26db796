"""PostgreSQL access of the curation service: queue, curator labels, plate views, dataset records.

Every query is parameterised. The consensus decision is passed in (pure logic lives in the service),
and applied in the same transaction that stores the label, under a row lock on the queued item.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql
from psycopg.rows import dict_row
from pydantic import BaseModel

from axis_curation.curation_labels import record_label_event
from axis_curation.curation_plates import PlateQueries


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
    threshold: float | None = None


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
    "d.reason, d.priority, d.threshold"
)


@dataclass(frozen=True)
class QueueFilter:
    """What a curator narrows the queue to, and in which order it comes."""

    plate: str | None = None
    kind: str | None = None  # a disagreement kind (ml_crystal_human_other, …) or a routing reason (near_threshold, …)
    min_probability: float | None = None
    max_probability: float | None = None
    others_labelled: bool = False  # only items another curator has labelled (no consensus yet)
    sort: str = "priority"  # priority | probability | probability_desc | oldest | others_first
    exclude: tuple[int, ...] = ()  # items skipped in this session


_ORDER = {
    "priority": "d.priority DESC, d.created_at, d.id",
    "probability": "d.ml_probability, d.created_at, d.id",
    "probability_desc": "d.ml_probability DESC, d.created_at, d.id",
    "oldest": "d.created_at, d.id",
    "others_first": "label_count DESC, d.priority DESC, d.created_at, d.id",
}
QUEUE_SORTS = tuple(_ORDER)
QUEUE_REASONS = ("near_threshold", "modes_disagree", "unreliable_user")


class NoLabelOfYours(LookupError):
    """Undo asked for an item the caller has not labelled."""


class CurationRepo(PlateQueries):
    """Queries of the curation service over a psycopg ConnectionPool."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    # queue ---------------------------------------------------------------------------------------
    def queue(self, curator: str, limit: int) -> tuple[int, list[QueueItem]]:
        """(total, first ``limit``) open items this curator has not labelled, highest expected value first.

        ``priority`` is the chance that a curator overturns the model's label (axis_core.routing); ties go
        oldest first.
        """
        total, _, items = self.queue_page(curator, limit)
        return total, items

    def queue_page(
        self, curator: str, limit: int, filters: QueueFilter | None = None
    ) -> tuple[int, int, list[QueueItem]]:
        """(open for the curator, matching the filters, first ``limit`` matching) of the items this curator has
        not labelled, in the filter's order (by default as ``queue``)."""
        f = filters or QueueFilter()
        mine = (
            "d.status = 'open' AND NOT EXISTS "
            "(SELECT 1 FROM curator_labels l WHERE l.discrepancy_id = d.id AND l.curator = %(c)s)"
        )
        where = [mine]
        params: dict[str, Any] = {"c": curator, "n": limit}
        if f.plate:
            where.append("d.plate_barcode = %(plate)s")
            params["plate"] = f.plate
        if f.kind:
            where.append("d.reason = %(kind)s" if f.kind in QUEUE_REASONS else "d.kind = %(kind)s")
            params["kind"] = f.kind
        if f.min_probability is not None:
            where.append("d.ml_probability >= %(pmin)s")
            params["pmin"] = f.min_probability
        if f.max_probability is not None:
            where.append("d.ml_probability <= %(pmax)s")
            params["pmax"] = f.max_probability
        if f.others_labelled:
            where.append("EXISTS (SELECT 1 FROM curator_labels l WHERE l.discrepancy_id = d.id)")
        if f.exclude:
            where.append("NOT (d.id = ANY(%(skip)s))")
            params["skip"] = list(f.exclude)
        order = _ORDER.get(f.sort, _ORDER["priority"])
        # every fragment is one of the fixed strings above (values go in as parameters)
        cond = sql.SQL(" AND ").join(sql.SQL(w) for w in where)  # type: ignore[arg-type]
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(f"SELECT count(*) AS n FROM discrepancies d WHERE {mine}", {"c": curator})  # noqa: S608
            total = int(cur.fetchone()["n"])  # type: ignore[index]
            cur.execute(sql.SQL("SELECT count(*) AS n FROM discrepancies d WHERE {}").format(cond), params)
            matching = int(cur.fetchone()["n"])  # type: ignore[index]
            cur.execute(
                sql.SQL("SELECT {} FROM discrepancies d WHERE {} ORDER BY {} LIMIT %(n)s").format(
                    sql.SQL(_ITEM_COLS),
                    cond,
                    sql.SQL(order),  # type: ignore[arg-type]
                ),
                params,
            )
            items = [QueueItem.model_validate(r) for r in cur.fetchall()]
        return total, matching, items

    def queue_plates(self, curator: str) -> list[str]:
        """Plates that have open items for this curator (the queue's plate filter)."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT DISTINCT d.plate_barcode FROM discrepancies d WHERE d.status = 'open' AND NOT EXISTS "
                "(SELECT 1 FROM curator_labels l WHERE l.discrepancy_id = d.id AND l.curator = %s) "
                "ORDER BY 1 LIMIT 500",
                (curator,),
            ).fetchall()
        return [r[0] for r in rows]

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
            _lock_labelable(cur, item_id, f"item {item_id} was superseded by a newer score and takes no labels")
            event_id = uuid.uuid4()
            cur.execute(
                "INSERT INTO curator_labels (discrepancy_id, curator, label, comment, label_event_id) "
                "VALUES (%s, %s, %s, %s, %s) RETURNING created_at",
                (item_id, curator, label, comment, event_id),
            )
            at = cur.fetchone()["created_at"]  # type: ignore[index]
            status, resolved = _redecide(cur, item_id, decide)
            record_label_event(cur, item_id=item_id, curator=curator, at=at, status=status, resolved=resolved,
                               label=label, comment=comment, event_id=event_id)  # fmt: skip
            return _queue_item(cur, item_id)

    def remove_last_label(self, item_id: int, curator: str, decide: Decider) -> tuple[QueueItem, str]:
        """Take back the curator's latest label of an item and re-apply the consensus rule, atomically.

        Returns the updated item and the label removed; NoLabelOfYours when the curator has none on it.
        """
        with self._pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            _lock_labelable(
                cur, item_id, f"item {item_id} was superseded by a newer score; its labels stay as they are"
            )
            cur.execute(
                "DELETE FROM curator_labels WHERE id = (SELECT id FROM curator_labels WHERE discrepancy_id = %s "
                "AND curator = %s ORDER BY created_at DESC, id DESC LIMIT 1) RETURNING label, label_event_id",
                (item_id, curator),
            )
            removed = cur.fetchone()
            if removed is None:
                raise NoLabelOfYours(f"you have not labelled item {item_id}")
            cur.execute("SELECT clock_timestamp() AS at")
            undone_at = cur.fetchone()["at"]  # type: ignore[index]
            status, resolved = _redecide(cur, item_id, decide)
            record_label_event(cur, item_id=item_id, curator=curator, at=undone_at, status=status, resolved=resolved,
                               withdraws=removed["label_event_id"])  # fmt: skip
            return _queue_item(cur, item_id), str(removed["label"])

    def admins(self, limit: int = 5) -> list[str]:
        """Names of admin accounts (whom a refused user can ask), oldest first."""
        with self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT username FROM accounts WHERE role = 'admin' ORDER BY created_at, username LIMIT %s", (limit,)
            ).fetchall()
        return [r[0] for r in rows]

    # dataset candidates --------------------------------------------------------------------------
    def test_plates(self) -> list[str]:
        """Plates of every frozen test set."""
        with self._pool.connection() as conn:
            return [r[0] for r in conn.execute("SELECT plate_barcode FROM test_set_plates ORDER BY plate_barcode")]

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

    def datasets(self, name: str | None = None) -> list[DatasetRecord]:
        """Recorded datasets, newest first (optionally of one name)."""
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT * FROM datasets WHERE %(n)s::text IS NULL OR name = %(n)s "
                "ORDER BY created_at DESC, name, version",
                {"n": name},
            )
            return [DatasetRecord.model_validate(r) for r in cur.fetchall()]


def _lock_labelable(cur: Any, item_id: int, superseded: str) -> None:
    """Lock an item's row for a label change: ItemNotFound, or ItemClosed with ``superseded`` when it is."""
    cur.execute("SELECT status FROM discrepancies WHERE id = %s FOR UPDATE", (item_id,))
    row = cur.fetchone()
    if row is None:
        raise ItemNotFound(f"no queued item {item_id}")
    if row["status"] == "superseded":
        raise ItemClosed(superseded)


def _redecide(cur: Any, item_id: int, decide: Decider) -> tuple[str, str | None]:
    """Apply the consensus rule to the item's labels as they are now and store its status."""
    cur.execute(
        "SELECT curator, label, created_at FROM curator_labels WHERE discrepancy_id = %s ORDER BY created_at, id",
        (item_id,),
    )
    votes = [(r["curator"], r["label"], r["created_at"]) for r in cur.fetchall()]
    status, resolved = decide(votes)
    cur.execute("UPDATE discrepancies SET status = %s, resolved_label = %s WHERE id = %s", (status, resolved, item_id))
    return status, resolved


def _queue_item(cur: Any, item_id: int) -> QueueItem:
    cur.execute(f"SELECT {_ITEM_COLS} FROM discrepancies d WHERE d.id = %s", (item_id,))  # noqa: S608
    return QueueItem.model_validate(cur.fetchone())
