"""Versioned SQL migrations: infra/migrations/*.sql applied once each, in file-name order."""

from __future__ import annotations

import os
from pathlib import Path

import psycopg

MIGRATIONS_ENV = "AXIS_MIGRATIONS_DIR"

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
# Serialises concurrent runners (two services migrating at once): an arbitrary, fixed advisory-lock key.
_LOCK_KEY = 4_240_417


def migrations_dir() -> Path:
    """The folder of migration files: $AXIS_MIGRATIONS_DIR, else infra/migrations next to this package."""
    override = os.environ.get(MIGRATIONS_ENV)
    if override:
        return Path(override)
    return Path(__file__).resolve().parent.parent / "migrations"


def migration_files(folder: Path) -> list[Path]:
    """The ``*.sql`` files of ``folder`` in the order they are applied (by file name)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"migrations folder {folder} does not exist (set {MIGRATIONS_ENV} to the right one)")
    return sorted((p for p in folder.iterdir() if p.suffix == ".sql" and p.is_file()), key=lambda p: p.name)


def pending(applied: set[str], files: list[Path]) -> list[Path]:
    """The files whose version (file name) is not yet recorded, in order."""
    return [f for f in files if f.name not in applied]


def apply_migrations(conninfo: str, folder: Path | None = None) -> list[str]:
    """Apply every not-yet-applied migration, each in its own transaction; return the versions applied now."""
    files = migration_files(folder or migrations_dir())
    done: list[str] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(_CREATE_TABLE)
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for path in pending(applied, files):
                sql = path.read_text()
                try:
                    with conn.transaction():
                        conn.execute(sql.encode())
                        conn.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (path.name,))
                except psycopg.Error as exc:
                    raise RuntimeError(f"migration {path.name} failed and was rolled back: {exc}") from exc
                done.append(path.name)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return done
