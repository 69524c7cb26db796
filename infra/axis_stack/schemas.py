"""One PostgreSQL schema and one login role per service, and each service's own migrations.

Each service owns the tables of its schema and nothing else: its role ``axis_<service>`` owns the schema, its
``search_path`` is that schema (so the services' unqualified SQL lands there), and no role is granted anything
on another service's schema — PostgreSQL refuses the read. What a service needs from another it learns from
that service's events (curation's and the trainer's read models).

Migrations live with the service (``<package>/migrations/NNNN_*.sql``) after the tables every consumer keeps
(``axis_adapters/migrations``: processed events, dead-letter claims); they are applied as the service's role,
versioned per schema in its own ``schema_migrations``.
"""

from __future__ import annotations

import importlib.util
import secrets
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from axis_stack.migrate import apply_migration_files


@dataclass(frozen=True)
class ServiceSchema:
    """A service's schema, role and the packages whose ``migrations/`` folders build it (in this order)."""

    name: str
    packages: tuple[str, ...]

    @property
    def role(self) -> str:
        return f"axis_{self.name}"

    def migration_files(self) -> list[Path]:
        files: list[Path] = []
        for pkg in self.packages:
            folder = package_dir(pkg) / "migrations"
            files.extend(sorted(p for p in folder.glob("*.sql") if p.is_file()))
        return sorted(files, key=lambda p: p.name)


COMMON = "axis_adapters"
SCHEMAS: dict[str, ServiceSchema] = {
    s.name: s
    for s in (
        ServiceSchema("inference", (COMMON, "axis_inference")),
        ServiceSchema("discrepancy", (COMMON, "axis_discrepancy")),
        ServiceSchema("curation", (COMMON, "axis_curation")),
        ServiceSchema("trainer", (COMMON, "axis_trainer")),
        ServiceSchema("promote", (COMMON, "axis_cli")),
        ServiceSchema("ingest", (COMMON, "axis_ingest")),
    )
}
# Tools of the operator (status, audit, the simulators' checks) connect as the admin role and see every schema.
ADMIN_SEARCH_PATH = ", ".join([*SCHEMAS, "public"])


def package_dir(package: str) -> Path:
    """The folder of an importable package (its migrations are package data)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {package} is not installed (run `make install`)")
    return Path(next(iter(spec.submodule_search_locations)))


def new_role_passwords() -> dict[str, str]:
    """A random password per service role (the embedded stack's dev passwords)."""
    return {name: secrets.token_hex(16) for name in SCHEMAS}


def provision_roles(admin_conninfo: str, passwords: dict[str, str], *, dbname: str = "axis") -> None:
    """Create (or update the password of) every service's role and schema; idempotent.

    Run as the database's admin. Each role: LOGIN, no other privileges; owner of its schema; search_path its
    schema. ``public`` is closed to them (no CREATE; PostgreSQL 15 already does that) and the admin's tools get a
    search_path over every schema.
    """
    missing = sorted(set(SCHEMAS) - set(passwords))
    if missing:
        raise ValueError(f"no database password for the service role(s): {', '.join(missing)}")
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(4240418)")
        try:
            for name, schema in SCHEMAS.items():
                role = sql.Identifier(schema.role)
                exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (schema.role,)).fetchone()
                password = sql.Literal(passwords[name])
                if exists:  # (a non-superuser admin may not restate NOSUPERUSER: only the password is set)
                    conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(role, password))
                else:
                    conn.execute(
                        sql.SQL("CREATE ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD {}").format(
                            role, password
                        )
                    )
                # the admin may act as the role (CREATE SCHEMA ... AUTHORIZATION needs it; so do backups)
                conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(role))
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(sql.Identifier(name), role)
                )
                conn.execute(sql.SQL("ALTER ROLE {} SET search_path = {}").format(role, sql.Identifier(name)))
                conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM {}").format(sql.Identifier(dbname), role))
                conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(dbname), role))
            conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET search_path = " + ADMIN_SEARCH_PATH).format(sql.Identifier(dbname))
            )
        finally:
            conn.execute("SELECT pg_advisory_unlock(4240418)")


def role_conninfo(admin_conninfo: str, service: str, password: str) -> str:
    """The admin conninfo with the service's role and password instead (same host, port, database)."""
    params = conninfo_to_dict(admin_conninfo)
    params.update(user=SCHEMAS[service].role, password=password)
    return make_conninfo(**{k: str(v) for k, v in params.items() if v is not None})


def migrate_service(conninfo: str, service: str) -> list[str]:
    """Apply the service's pending migrations, connected as its own role (``conninfo``); the versions applied."""
    return apply_migration_files(conninfo, SCHEMAS[service].migration_files())


def migrate_all(admin_conninfo: str, passwords: dict[str, str]) -> list[str]:
    """Provision every role and schema, then apply each service's migrations as that service: ``schema/version``."""
    refuse_shared_layout(admin_conninfo)
    provision_roles(admin_conninfo, passwords)
    done: list[str] = []
    for name in SCHEMAS:
        done += [f"{name}/{v}" for v in migrate_service(role_conninfo(admin_conninfo, name, passwords[name]), name)]
    return done


def refuse_shared_layout(admin_conninfo: str) -> None:
    """Stop with a clear message on a database made before services had their own schemas (tables in public)."""
    with psycopg.connect(admin_conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT 1 FROM pg_tables WHERE schemaname = 'public' AND tablename = 'images'").fetchone()
    if row is not None:
        raise RuntimeError(
            "this database holds the old single-schema layout (public.images): services now own one schema each; "
            "start from a new data directory (or move the tables: docs/operations.md, 'Schemas per service')"
        )
