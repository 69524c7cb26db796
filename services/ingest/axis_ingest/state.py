"""The ingest service's own state (table ``ingest_files``, infra/migrations/0600_ingest.sql): a port, its
PostgreSQL adapter and an in-memory fake for unit tests.

Every file version the service decides about gets one row keyed by (imager, path, size, mtime): published (or
being published), a duplicate of a published file, or unmappable with the reason. A restarted service loads the
keys and never looks at those files again, except unmappable ones decided under another mapping configuration.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from uuid import UUID

from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool

from axis_ingest.stability import FileKey

ClaimOutcome = Literal["claimed", "duplicate", "decided"]


@dataclass
class KnownFiles:
    """What a starting service needs from its table."""

    keys: set[FileKey] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    recent_unmappable: list[dict[str, Any]] = field(default_factory=list)  # newest first


@dataclass(frozen=True)
class Claim:
    """The result of claiming a file for publication."""

    outcome: ClaimOutcome
    duplicate_of: str | None = None


class IngestState(Protocol):
    """What the service stores about files."""

    async def load(self, digest: str, *, recent: int = 50) -> KnownFiles: ...
    async def published_with(self, sha256: str) -> str | None: ...
    async def record_unmappable(
        self, key: FileKey, reason: str, *, digest: str, sha256: str | None = None, moved_to: str | None = None
    ) -> None: ...
    async def record_duplicate(self, key: FileKey, *, sha256: str, duplicate_of: str) -> None: ...
    async def claim(self, key: FileKey, *, sha256: str, event_id: UUID, image_uri: str, event_json: str) -> Claim: ...
    async def mark_published(self, keys: list[FileKey]) -> None: ...
    async def unpublished(self) -> list[tuple[FileKey, str]]: ...


# Every insert below ends the same way: an existing row is revised only when it says unmappable (a file found
# unmappable under an earlier mapping configuration); published and duplicate verdicts are final.


class PostgresIngestState:
    """IngestState over the service's PostgreSQL pool, for one ingest instance (``imager_id``)."""

    def __init__(self, pool: AsyncConnectionPool, imager_id: str) -> None:
        self._pool = pool
        self._imager = imager_id

    def _k(self, key: FileKey) -> tuple[str, str, int, int]:
        return (self._imager, key.path, key.size, key.mtime_ns)

    async def load(self, digest: str, *, recent: int = 50) -> KnownFiles:
        known = KnownFiles()
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT path, size_bytes, mtime_ns, status FROM ingest_files WHERE imager_id = %s"
                " AND (status <> 'unmappable' OR config_digest = %s)",
                (self._imager, digest),
            )
            for path, size, mtime_ns, status in await cur.fetchall():
                known.keys.add(FileKey(path, int(size), int(mtime_ns)))
                known.counts[status] += 1
            cur = await conn.execute(
                "SELECT path, reason, decided_at, moved_to FROM ingest_files WHERE imager_id = %s"
                " AND status = 'unmappable' AND config_digest = %s ORDER BY decided_at DESC LIMIT %s",
                (self._imager, digest, recent),
            )
            known.recent_unmappable = [
                {"path": p, "reason": r, "at": at.isoformat(), "moved_to": m} for p, r, at, m in await cur.fetchall()
            ]
        return known

    async def published_with(self, sha256: str) -> str | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT path FROM ingest_files WHERE sha256 = %s AND status IN ('publishing', 'published') LIMIT 1",
                (sha256,),
            )
            row = await cur.fetchone()
        return None if row is None else str(row[0])

    async def record_unmappable(
        self, key: FileKey, reason: str, *, digest: str, sha256: str | None = None, moved_to: str | None = None
    ) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO ingest_files (imager_id, path, size_bytes, mtime_ns, status, sha256, reason,"
                " config_digest, moved_to)"
                " VALUES (%s, %s, %s, %s, 'unmappable', %s, %s, %s, %s)"
                " ON CONFLICT (imager_id, path, size_bytes, mtime_ns) DO UPDATE SET status = EXCLUDED.status,"
                " sha256 = EXCLUDED.sha256, reason = EXCLUDED.reason, duplicate_of = EXCLUDED.duplicate_of,"
                " event_id = EXCLUDED.event_id, image_uri = EXCLUDED.image_uri, event_json = EXCLUDED.event_json,"
                " config_digest = EXCLUDED.config_digest, moved_to = EXCLUDED.moved_to, decided_at = now()"
                " WHERE ingest_files.status = 'unmappable'",
                (*self._k(key), sha256, reason, digest, moved_to),
            )

    async def record_duplicate(self, key: FileKey, *, sha256: str, duplicate_of: str) -> None:
        async with self._pool.connection() as conn:
            await conn.execute(
                "INSERT INTO ingest_files (imager_id, path, size_bytes, mtime_ns, status, sha256, duplicate_of)"
                " VALUES (%s, %s, %s, %s, 'duplicate', %s, %s)"
                " ON CONFLICT (imager_id, path, size_bytes, mtime_ns) DO UPDATE SET status = EXCLUDED.status,"
                " sha256 = EXCLUDED.sha256, reason = EXCLUDED.reason, duplicate_of = EXCLUDED.duplicate_of,"
                " event_id = EXCLUDED.event_id, image_uri = EXCLUDED.image_uri, event_json = EXCLUDED.event_json,"
                " config_digest = EXCLUDED.config_digest, moved_to = EXCLUDED.moved_to, decided_at = now()"
                " WHERE ingest_files.status = 'unmappable'",
                (*self._k(key), sha256, duplicate_of),
            )

    async def claim(self, key: FileKey, *, sha256: str, event_id: UUID, image_uri: str, event_json: str) -> Claim:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    "INSERT INTO ingest_files (imager_id, path, size_bytes, mtime_ns, status, sha256, event_id,"
                    " image_uri, event_json) VALUES (%s, %s, %s, %s, 'publishing', %s, %s, %s, %s)"
                    " ON CONFLICT (imager_id, path, size_bytes, mtime_ns) DO UPDATE SET status = EXCLUDED.status,"
                    " sha256 = EXCLUDED.sha256, reason = EXCLUDED.reason, duplicate_of = EXCLUDED.duplicate_of,"
                    " event_id = EXCLUDED.event_id, image_uri = EXCLUDED.image_uri, event_json = EXCLUDED.event_json,"
                    " config_digest = EXCLUDED.config_digest, moved_to = EXCLUDED.moved_to, decided_at = now()"
                    " WHERE ingest_files.status = 'unmappable'"
                    " RETURNING status",
                    (*self._k(key), sha256, event_id, image_uri, event_json),
                )
                row = await cur.fetchone()
        except pg_errors.UniqueViolation:  # another file with these bytes was claimed meanwhile
            return Claim("duplicate", await self.published_with(sha256))
        return Claim("claimed") if row is not None else Claim("decided")

    async def mark_published(self, keys: list[FileKey]) -> None:
        if not keys:
            return
        async with self._pool.connection() as conn:
            await conn.execute(
                "UPDATE ingest_files SET status = 'published', published_at = now() FROM"
                " unnest(%s::text[], %s::bigint[], %s::bigint[]) AS k(path, size_bytes, mtime_ns)"
                " WHERE ingest_files.imager_id = %s AND ingest_files.path = k.path"
                " AND ingest_files.size_bytes = k.size_bytes AND ingest_files.mtime_ns = k.mtime_ns"
                " AND ingest_files.status = 'publishing'",
                ([k.path for k in keys], [k.size for k in keys], [k.mtime_ns for k in keys], self._imager),
            )

    async def unpublished(self) -> list[tuple[FileKey, str]]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT path, size_bytes, mtime_ns, event_json FROM ingest_files"
                " WHERE imager_id = %s AND status = 'publishing' ORDER BY decided_at",
                (self._imager,),
            )
            rows = await cur.fetchall()
        return [(FileKey(p, int(s), int(m)), str(j)) for p, s, m, j in rows]


@dataclass
class MemoryIngestState:
    """In-memory IngestState for unit tests (the same rules as the table and its content index)."""

    rows: dict[FileKey, dict[str, Any]] = field(default_factory=dict)

    async def load(self, digest: str, *, recent: int = 50) -> KnownFiles:
        known = KnownFiles()
        for key, row in self.rows.items():
            if row["status"] == "unmappable" and row.get("config_digest") != digest:
                continue
            known.keys.add(key)
            known.counts[row["status"]] += 1
            if row["status"] == "unmappable" and len(known.recent_unmappable) < recent:
                known.recent_unmappable.append({"path": key.path, "reason": row["reason"], "at": None})
        return known

    async def published_with(self, sha256: str) -> str | None:
        for key, row in self.rows.items():
            if row.get("sha256") == sha256 and row["status"] in ("publishing", "published"):
                return key.path
        return None

    def _decide(self, key: FileKey, row: dict[str, Any]) -> bool:
        old = self.rows.get(key)
        if old is not None and old["status"] != "unmappable":
            return False
        self.rows[key] = row
        return True

    async def record_unmappable(
        self, key: FileKey, reason: str, *, digest: str, sha256: str | None = None, moved_to: str | None = None
    ) -> None:
        self._decide(
            key,
            {"status": "unmappable", "reason": reason, "config_digest": digest, "sha256": sha256, "moved_to": moved_to},
        )

    async def record_duplicate(self, key: FileKey, *, sha256: str, duplicate_of: str) -> None:
        self._decide(key, {"status": "duplicate", "sha256": sha256, "duplicate_of": duplicate_of})

    async def claim(self, key: FileKey, *, sha256: str, event_id: UUID, image_uri: str, event_json: str) -> Claim:
        old = self.rows.get(key)
        if old is not None and old["status"] != "unmappable":
            return Claim("decided")
        other = await self.published_with(sha256)
        if other is not None:
            return Claim("duplicate", other)
        row = {"status": "publishing", "sha256": sha256, "event_id": event_id, "image_uri": image_uri}
        row["event_json"] = event_json
        return Claim("claimed") if self._decide(key, row) else Claim("decided")

    async def mark_published(self, keys: list[FileKey]) -> None:
        for key in keys:
            if self.rows.get(key, {}).get("status") == "publishing":
                self.rows[key]["status"] = "published"

    async def unpublished(self) -> list[tuple[FileKey, str]]:
        return [(k, r["event_json"]) for k, r in self.rows.items() if r["status"] == "publishing"]
