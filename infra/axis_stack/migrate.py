"""Versioned SQL migrations: ``NNNN_*.sql`` files applied once each, in file-name order (see axis_stack.schemas)."""

from __future__ import annotations

from pathlib import Path

import psycopg

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    text        PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""
# Serialises concurrent runners (two services migrating at once): an arbitrary, fixed advisory-lock key.
_LOCK_KEY = 4_240_417


def migration_files(folder: Path) -> list[Path]:
    """The ``*.sql`` files of ``folder`` in the order they are applied (by file name)."""
    if not folder.is_dir():
        raise FileNotFoundError(f"migrations folder {folder} does not exist")
    return sorted((p for p in folder.iterdir() if p.suffix == ".sql" and p.is_file()), key=lambda p: p.name)


def pending(applied: set[str], files: list[Path]) -> list[Path]:
    """The files whose version (file name) is not yet recorded, in order."""
    return [f for f in files if f.name not in applied]


def apply_migrations(conninfo: str, folder: Path) -> list[str]:
    """Apply every not-yet-applied migration of ``folder``, each in its own transaction; the versions applied."""
    return apply_migration_files(conninfo, migration_files(folder))


def apply_migration_files(conninfo: str, files: list[Path]) -> list[str]:
    """Apply the not-yet-applied ``files`` (version = file name) in order, each in its own transaction.

    ``schema_migrations`` is unqualified: it lives in the connecting role's first schema (a service's own).
    """
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
