"""PostgreSQL access: connections and pools from settings, and transient-error classification."""

from __future__ import annotations

import psycopg
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from axis_adapters.settings import PostgresSettings

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    psycopg.OperationalError,
    psycopg.errors.AdminShutdown,
    psycopg.errors.CannotConnectNow,
    ConnectionError,
    TimeoutError,
)


def connect(settings: PostgresSettings, *, autocommit: bool = False) -> psycopg.Connection:
    """A new synchronous connection."""
    return psycopg.connect(settings.conninfo(), autocommit=autocommit, connect_timeout=10)


async def aconnect(settings: PostgresSettings, *, autocommit: bool = False) -> psycopg.AsyncConnection:
    """A new asynchronous connection."""
    return await psycopg.AsyncConnection.connect(settings.conninfo(), autocommit=autocommit, connect_timeout=10)


def sync_pool(settings: PostgresSettings, *, max_size: int = 4) -> ConnectionPool:
    """A synchronous pool (opened; close it on shutdown)."""
    pool = ConnectionPool(settings.conninfo(), min_size=1, max_size=max_size, open=True, kwargs={"connect_timeout": 10})
    return pool


async def async_pool(
    settings: PostgresSettings, *, max_size: int = 4, open_timeout_s: float = 30.0, check_connections: bool = False
) -> AsyncConnectionPool:
    """An asynchronous pool, opened (close it on shutdown).

    ``check_connections``: test each connection on checkout, so a restarted server's dead ones are replaced
    instead of failing the caller's transaction. A pool that cannot open within ``open_timeout_s`` is closed
    before the error propagates (a retried start leaks no pool workers).
    """
    pool = AsyncConnectionPool(
        settings.conninfo(),
        min_size=1,
        max_size=max_size,
        open=False,
        kwargs={"connect_timeout": 10},
        check=AsyncConnectionPool.check_connection if check_connections else None,
    )
    try:
        await pool.open(wait=True, timeout=open_timeout_s)
    except BaseException:
        await pool.close()
        raise
    return pool


# SQLSTATE classes that say "this service and its database do not fit" (a missing table or column, a missing
# grant: class 42), not "this record is bad". Every record would fail the same way, so dead-lettering them one by
# one would empty the topic into the dead-letter queue; they are retried instead (the consumer's /health then says
# stalled, and the operator applies the migration or the grant).
DEPLOYMENT_SQLSTATE_CLASSES = ("42",)


def is_deployment_error(exc: BaseException) -> bool:
    """True for a database error caused by the deployment (schema or grants), not by the data."""
    state = getattr(exc, "sqlstate", None)
    return isinstance(exc, psycopg.Error) and isinstance(state, str) and state[:2] in DEPLOYMENT_SQLSTATE_CLASSES


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying (server gone, restarting, connection refused; schema not yet migrated)."""
    return isinstance(exc, TRANSIENT_ERRORS) or is_deployment_error(exc)
