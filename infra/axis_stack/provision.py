"""One-shot jobs of a real deployment (docker-compose): migrate the database, create the topics."""

from __future__ import annotations

import psycopg
from axis_adapters.settings import ServiceSettings, load_settings, refuse_default_secrets

from axis_stack import procs
from axis_stack.components import TOPIC_PARTITIONS, ensure_topics
from axis_stack.schemas import SCHEMAS, migrate_all


def migrate_from_settings(*, wait_s: float = 60.0) -> list[str]:
    """Create every service's role and schema and apply its migrations (waits for PostgreSQL first).

    Connects as the admin of the AXIS_POSTGRES__* settings; each service role's password comes from
    ``AXIS_ROLES__<SERVICE>`` (required, one per service: the services use the same values).
    """
    settings = load_settings(ServiceSettings)
    passwords = {name: secret.get_secret_value() for name, secret in settings.roles.items()}
    missing = [f"AXIS_ROLES__{name.upper()}" for name in SCHEMAS if name not in passwords]
    if missing:
        raise SystemExit(f"migrate: set the database password of every service role: {', '.join(missing)}")
    refuse_default_secrets(settings.env, {f"AXIS_ROLES__{n.upper()}": settings.roles[n] for n in SCHEMAS})
    applied: list[str] = []

    def attempt() -> bool:
        applied.extend(migrate_all(settings.postgres.conninfo(), passwords))
        return True

    where = f"PostgreSQL at {settings.postgres.host}:{settings.postgres.port}"
    procs.wait_until(attempt, timeout=wait_s, what=where, interval=1.0, retry_on=(psycopg.OperationalError,))
    return applied


def create_topics_from_settings(*, partitions: int = TOPIC_PARTITIONS, wait_s: float = 60.0) -> str:
    """Create the missing project topics on the broker named by AXIS_KAFKA__BOOTSTRAP_SERVERS (waits for it)."""
    settings = load_settings(ServiceSettings)
    result: list[str] = []

    def attempt() -> bool:
        result.append(ensure_topics(settings.kafka.bootstrap_servers, create=True, partitions=partitions))
        return True

    procs.wait_until(attempt, timeout=wait_s, what=f"broker at {settings.kafka.bootstrap_servers}", interval=2.0)
    return result[-1]


def probe_from_settings() -> list[str]:
    """Problems reaching the broker, PostgreSQL and the object store of the AXIS_* settings (empty: all fine)."""
    from axis_adapters.objectstore import minio_client

    settings = load_settings(ServiceSettings)
    problems: list[str] = []
    try:
        ensure_topics(settings.kafka.bootstrap_servers, create=False)
    except Exception as exc:  # every failure is a finding to report
        problems.append(f"kafka {settings.kafka.bootstrap_servers}: {exc!r}")
    try:
        with psycopg.connect(settings.postgres.conninfo(), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        problems.append(f"postgres {settings.postgres.host}:{settings.postgres.port}: {exc!r}")
    try:
        s3 = settings.s3
        client = minio_client(s3)
        client.bucket_exists(s3.images_bucket)
    except Exception as exc:
        problems.append(f"s3 {settings.s3.endpoint}: {exc!r}")
    return problems
