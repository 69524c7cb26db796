"""PostgreSQL side of dataset export jobs: the ``export_jobs`` rows, their claim, and the streamed candidates.

A job is created under a transaction-level advisory lock on its dataset name (concurrent requests for one name
are serialised by the database) and a partial unique index on (name, version) of live jobs. A runner claims a
job by taking a session-level advisory lock on its id on one connection and keeps it for the whole run; a
killed runner's connection closes and frees the job for the next one. The dataset row is inserted in the same
transaction that marks the job succeeded, so a version is registered whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from axis_curation.curation_repo import DatasetExists, DatasetRecord

# two-key advisory locks (class, job id): a space apart from the one-key locks of the migrations and names
JOB_LOCK_CLASS = 4_240_900
UNFINISHED = ("queued", "running")


class JobConflict(DatasetExists):
    """Another live job already exports this dataset name and version (or this frozen test set)."""

    def __init__(self, message: str, job_id: int) -> None:
        super().__init__(message)
        self.job_id = job_id


class ExportJob(BaseModel):
    """A row of ``export_jobs``."""

    id: int
    name: str
    version: str
    purpose: str
    request: dict[str, Any]
    created_by: str
    state: str
    stage: str
    items_done: int
    items_total: int
    message: str
    attempts: int
    stages: list[dict[str, Any]]
    result: dict[str, Any] | None
    publish: bool
    published_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    updated_at: datetime
    finished_at: datetime | None

    @property
    def finished(self) -> bool:
        """True once the job succeeded or failed."""
        return self.state not in UNFINISHED


def next_version(existing: Sequence[str]) -> str:
    """The next integer version after the integer versions already used (1 for a new name)."""
    numbers = [int(v) for v in existing if v.isdigit()]
    return str(max(numbers, default=0) + 1)


@dataclass
class Claim:
    """A job this runner holds (the advisory lock lives on ``conn`` until the claim is released)."""

    job: ExportJob
    conn: psycopg.Connection[Any]


_AGREEMENTS = """
SELECT c.inspection_id, c.plate_barcode, c.well, c.drop_no, c.imaged_at, c.ml_probability, c.ml_label,
       c.model_version, c.human_label, c.human_class, i.image_uri, i.imaging_mode
FROM comparisons c JOIN images i ON i.inspection_id = c.inspection_id
WHERE c.agrees AND (%(plates)s::text[] IS NULL OR c.plate_barcode = ANY(%(plates)s::text[]))
  AND NOT EXISTS (SELECT 1 FROM discrepancies d JOIN curator_labels l ON l.discrepancy_id = d.id
                  WHERE d.inspection_id = c.inspection_id AND d.status <> 'superseded')
"""
_CURATED_ITEMS = """
SELECT DISTINCT ON (d.inspection_id) d.id, d.inspection_id, d.plate_barcode, d.well, d.drop_no,
       d.ml_probability, d.ml_label, d.model_version, d.human_label, d.human_class
FROM discrepancies d
WHERE d.status <> 'superseded'
  AND (%(plates)s::text[] IS NULL OR d.plate_barcode = ANY(%(plates)s::text[]))
  AND EXISTS (SELECT 1 FROM curator_labels l WHERE l.discrepancy_id = d.id)
ORDER BY d.inspection_id, d.created_at DESC, d.id DESC
"""
_CURATED = f"""
WITH items AS ({_CURATED_ITEMS})
SELECT it.*, i.image_uri, i.imaging_mode, min(i.imaged_at) OVER (PARTITION BY i.inspection_id) AS imaged_at,
       v.curators, v.labels, v.ats
FROM items it JOIN images i ON i.inspection_id = it.inspection_id
CROSS JOIN LATERAL (
    SELECT array_agg(l.curator ORDER BY l.created_at, l.id) AS curators,
           array_agg(l.label ORDER BY l.created_at, l.id) AS labels,
           array_agg(l.created_at ORDER BY l.created_at, l.id) AS ats
    FROM curator_labels l WHERE l.discrepancy_id = it.id
) v
"""  # noqa: S608 - constant SQL, no user text
_COUNT = f"""
SELECT (SELECT count(*) FROM ({_AGREEMENTS}) a)
     + (SELECT count(*) FROM (WITH items AS ({_CURATED_ITEMS})
                              SELECT 1 FROM items it JOIN images i ON i.inspection_id = it.inspection_id) c)
"""  # noqa: S608 - constant SQL, no user text


class ExportJobsRepo:
    """Queries of the export jobs over a psycopg ConnectionPool."""

    def __init__(self, pool: Any) -> None:
        self._pool = pool

    # requests ------------------------------------------------------------------------------------
    def create(
        self,
        *,
        name: str,
        version: str | None,
        purpose: str,
        request: dict[str, Any],
        created_by: str,
        publish: bool = True,
    ) -> ExportJob:
        """Insert a queued job; its version is ``version`` or the next integer of the name.

        DatasetExists when the version (or, for a test set, the name) is already recorded; JobConflict naming
        the live job that already exports it.
        """
        with self._pool.connection() as conn, conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"axis-dataset:{name}",))
            cur.execute("SELECT version, purpose FROM datasets WHERE name = %s", (name,))
            recorded = list(cur.fetchall())
            cur.execute(
                "SELECT id, version, purpose, state FROM export_jobs WHERE name = %s AND state <> 'failed'", (name,)
            )
            live = list(cur.fetchall())
            if purpose == "test":
                if any(r["purpose"] == "test" for r in recorded):
                    raise DatasetExists(f"the frozen test set {name!r} was already exported; it is exported once")
                for j in live:
                    if j["purpose"] == "test":
                        raise JobConflict(_conflict(name, j["version"], j), j["id"])
            chosen = version or next_version([r["version"] for r in recorded] + [j["version"] for j in live])
            if any(r["version"] == chosen for r in recorded):
                raise DatasetExists(f"dataset {name!r} version {chosen!r} already exists")
            for j in live:
                if j["version"] == chosen:
                    raise JobConflict(_conflict(name, chosen, j), j["id"])
            try:
                cur.execute(
                    "INSERT INTO export_jobs (name, version, purpose, request, created_by, publish) "
                    "VALUES (%s, %s, %s, %s, %s, %s) RETURNING *",
                    (name, chosen, purpose, Jsonb(request), created_by, publish),
                )
            except psycopg.errors.UniqueViolation:  # only reachable by a writer that skipped the name lock
                raise DatasetExists(f"dataset {name!r} version {chosen!r} is already being exported") from None
            return ExportJob.model_validate(cur.fetchone())

    def get(self, job_id: int) -> ExportJob | None:
        """One job, or None."""
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute("SELECT * FROM export_jobs WHERE id = %s", (job_id,))
            row = cur.fetchone()
            return ExportJob.model_validate(row) if row else None

    def recent(self, *, name: str | None = None, unfinished: bool = False, limit: int = 50) -> list[ExportJob]:
        """Jobs, newest first (optionally of one name, or only those not finished)."""
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT * FROM export_jobs WHERE (%(n)s::text IS NULL OR name = %(n)s) "
                "AND (NOT %(u)s OR state IN ('queued', 'running')) ORDER BY created_at DESC, id DESC LIMIT %(l)s",
                {"n": name, "u": unfinished, "l": limit},
            )
            return [ExportJob.model_validate(r) for r in cur.fetchall()]

    # the runner ----------------------------------------------------------------------------------
    @contextmanager
    def claim(self, job_id: int | None = None, *, max_attempts: int = 3) -> Iterator[Claim | None]:
        """Claim the oldest unfinished job nobody holds (or only ``job_id``); None when there is none.

        The job is marked running (attempt + 1) and stays locked until the block ends. A job already claimed
        ``max_attempts`` times (it crashed its service each time) is failed instead of run again.
        """
        with self._pool.connection() as conn:
            conn.autocommit = True
            held: int | None = None
            job: ExportJob | None = None
            try:
                ids = [job_id] if job_id is not None else self._unfinished_ids(conn)
                for candidate in ids:
                    if not conn.execute("SELECT pg_try_advisory_lock(%s, %s)", _key(candidate)).fetchone()[0]:  # type: ignore[index]
                        continue
                    job = self.start_claimed(conn, candidate, max_attempts)
                    if job is None:
                        conn.execute("SELECT pg_advisory_unlock(%s, %s)", _key(candidate))
                        continue
                    held = candidate
                    break
                yield Claim(job, conn) if job is not None and held is not None else None
            finally:
                if held is not None and not conn.closed:
                    conn.execute("SELECT pg_advisory_unlock(%s, %s)", _key(held))
                if not conn.closed:
                    conn.autocommit = False

    def _unfinished_ids(self, conn: psycopg.Connection[Any]) -> list[int]:
        rows = conn.execute(
            "SELECT id FROM export_jobs WHERE state IN ('queued', 'running') ORDER BY id LIMIT 100"
        ).fetchall()
        return [r[0] for r in rows]

    @staticmethod
    def start_claimed(conn: psycopg.Connection[Any], job_id: int, max_attempts: int = 3) -> ExportJob | None:
        """Mark a job whose advisory lock ``conn`` holds as running (attempt + 1); None when it is finished or
        was given up (claimed ``max_attempts`` times already)."""
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute("SELECT state, attempts FROM export_jobs WHERE id = %s", (job_id,))
            row = cur.fetchone()
            if row is None or row["state"] not in UNFINISHED:
                return None
            if row["attempts"] >= max_attempts:
                cur.execute(
                    "UPDATE export_jobs SET state = 'failed', finished_at = now(), updated_at = now(), message = %s "
                    "WHERE id = %s",
                    (f"interrupted {row['attempts']} times (the service stopped during the export); given up", job_id),
                )
                return None
            again = f"restarted after an interruption (attempt {row['attempts'] + 1})" if row["attempts"] else ""
            cur.execute(
                "UPDATE export_jobs SET state = 'running', attempts = attempts + 1, stage = 'starting', "
                "items_done = 0, items_total = 0, stages = '[]'::jsonb, message = %s, started_at = now(), "
                "updated_at = now() WHERE id = %s RETURNING *",
                (again, job_id),
            )
            return ExportJob.model_validate(cur.fetchone())

    @staticmethod
    def progress(claim: Claim, stage: str, done: int, total: int, finished: dict[str, Any] | None = None) -> None:
        """Record the current stage and its items (and append a finished stage to the job's stage log)."""
        entry = Jsonb(finished) if finished is not None else None
        claim.conn.execute(
            "UPDATE export_jobs SET stage = %s, items_done = %s, items_total = %s, updated_at = now(), "
            "stages = CASE WHEN %s::jsonb IS NULL THEN stages ELSE stages || jsonb_build_array(%s::jsonb) END "
            "WHERE id = %s",
            (stage, done, total, entry, entry, claim.job.id),
        )

    @staticmethod
    def fail(claim: Claim, message: str) -> None:
        """Mark the claimed job failed with a message (its version becomes free for a new request)."""
        claim.conn.execute(
            "UPDATE export_jobs SET state = 'failed', message = %s, finished_at = now(), updated_at = now() "
            "WHERE id = %s AND state = 'running'",
            (message[:2000], claim.job.id),
        )

    @staticmethod
    def register(claim: Claim, record: DatasetRecord, result: dict[str, Any], test_plates: Sequence[str] = ()) -> None:
        """Insert the dataset row (and a test set's plates) and mark the job succeeded, in one transaction."""
        conn = claim.conn
        with conn.transaction():
            if record.purpose == "test":
                row = conn.execute(
                    "SELECT version FROM datasets WHERE name = %s AND purpose = 'test' LIMIT 1", (record.name,)
                ).fetchone()
                if row is not None:
                    raise DatasetExists(f"the frozen test set {record.name!r} was already exported (version {row[0]})")
            cur = conn.execute(
                "INSERT INTO datasets (name, version, purpose, manifest_uri, manifest_sha256, qc_report_uri, card_uri, "
                "config, counts, created_by, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
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
                    record.created_at,
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
            done = conn.execute(
                "UPDATE export_jobs SET state = 'succeeded', stage = 'done', result = %s, finished_at = now(), "
                "updated_at = now(), items_done = items_total WHERE id = %s AND state = 'running' AND attempts = %s",
                (Jsonb(result), claim.job.id, claim.job.attempts),
            )
            if done.rowcount != 1:  # another runner took the job over (this one lost its lock): register nothing
                raise DatasetExists(f"job {claim.job.id} is no longer held by this runner; nothing registered")

    def unpublished(self, limit: int = 20) -> list[ExportJob]:
        """Succeeded jobs whose DatasetExported is still to be sent."""
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT * FROM export_jobs WHERE state = 'succeeded' AND publish AND published_at IS NULL "
                "ORDER BY id LIMIT %s",
                (limit,),
            )
            return [ExportJob.model_validate(r) for r in cur.fetchall()]

    def mark_published(self, job_id: int, published: bool, error: str = "") -> None:
        """Record the outcome of publishing DatasetExported in the job's result."""
        with self._pool.connection() as conn:
            conn.execute(
                "UPDATE export_jobs SET published_at = CASE WHEN %s::boolean THEN now() END, updated_at = now(), "
                "result = coalesce(result, '{}'::jsonb) "
                "|| jsonb_build_object('published', %s::boolean, 'publish_error', %s::text) "
                "WHERE id = %s",
                (published, published, error or None, job_id),
            )

    # candidates ----------------------------------------------------------------------------------
    @contextmanager
    def candidate_rows(
        self, plates: Sequence[str] | None, *, batch: int = 2000
    ) -> Iterator[tuple[int, Iterator[dict[str, Any]]]]:
        """``with repo.candidate_rows(plates) as (count, rows)``: one row per image of every agreement and of
        every curated item (``source`` says which).

        Read in one repeatable-read snapshot through server-side cursors, ``batch`` rows at a time, so that the
        count and the rows agree and no more than a batch of rows is held here. Curated rows carry ``votes``:
        the item's curator labels as (curator, label, created_at), oldest first.
        """
        params = {"plates": list(plates) if plates is not None else None}
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            row = conn.execute(_COUNT, params).fetchone()
            yield int(row[0] if row else 0), self._rows(conn, params, batch)

    @staticmethod
    def _rows(conn: psycopg.Connection[Any], params: dict[str, Any], batch: int) -> Iterator[dict[str, Any]]:
        for source, sql in (("agreement", _AGREEMENTS), ("curated", _CURATED)):
            with conn.cursor(name=f"axis_export_{source}", row_factory=dict_row) as cur:
                cur.itersize = batch
                cur.execute(sql, params)
                for row in cur:
                    row["source"] = source
                    if source == "curated":
                        votes = zip(row.pop("curators"), row.pop("labels"), row.pop("ats"), strict=True)
                        row["votes"] = list(votes)
                    yield row


def _key(job_id: int) -> tuple[int, int]:
    return (JOB_LOCK_CLASS, job_id)


def _conflict(name: str, version: str, job: dict[str, Any]) -> str:
    return (
        f"dataset {name!r} version {version!r} is already being exported by job {job['id']} ({job['state']}); "
        f"follow it at GET /v1/datasets/jobs/{job['id']}"
    )
