"""PostgreSQL queries of the trainer on its own schema: frozen test sets seen, processed events."""

from __future__ import annotations

from uuid import UUID

from axis_adapters.db import connect
from axis_adapters.settings import PostgresSettings
from axis_contracts import DatasetExported

from axis_trainer.pipeline import DatasetRef


def latest_test_set(settings: PostgresSettings) -> DatasetRef | None:
    """The newest frozen test set this trainer has seen announced (DatasetExported with purpose=test), or None."""
    with connect(settings) as conn:
        row = conn.execute(
            "SELECT dataset_name, dataset_version, manifest_uri, manifest_sha256 FROM test_sets "
            "ORDER BY exported_at DESC, dataset_name, dataset_version LIMIT 1"
        ).fetchone()
    return None if row is None else DatasetRef(name=row[0], version=row[1], manifest_uri=row[2], manifest_sha256=row[3])


def record_test_set(settings: PostgresSettings, event: DatasetExported) -> None:
    """Remember a frozen test set announced by curation (the same announcement twice changes nothing)."""
    with connect(settings) as conn:
        conn.execute(
            "INSERT INTO test_sets (dataset_name, dataset_version, manifest_uri, manifest_sha256, exported_at) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (event.dataset_name, event.dataset_version, event.manifest_uri, event.manifest_sha256, event.occurred_at),
        )
        conn.commit()


def already_processed(settings: PostgresSettings, consumer: str, event_id: UUID) -> bool:
    """Whether this consumer finished the event before (redelivery after a crash)."""
    with connect(settings) as conn:
        row = conn.execute(
            "SELECT 1 FROM processed_events WHERE consumer = %s AND event_id = %s", (consumer, event_id)
        ).fetchone()
    return row is not None


def mark_processed(settings: PostgresSettings, consumer: str, event_id: UUID) -> None:
    """Record that the event's effect is durable."""
    with connect(settings) as conn:
        conn.execute(
            "INSERT INTO processed_events (consumer, event_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (consumer, event_id),
        )
        conn.commit()
