"""The ``model_promotions`` audit table: one row per champion alias change, from the CLI or from MLflow."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID, uuid4

from axis_adapters.settings import ServiceSettings


class PromoteSettings(ServiceSettings):
    """Settings of the promotion tools (``axis_cli promote`` / ``register``): they own the ``promote`` schema."""

    service_schema: ClassVar[str | None] = "promote"


LATEST = (
    "SELECT id, version, via, promoted_at FROM model_promotions WHERE model_name = %s AND alias = %s "
    "ORDER BY id DESC LIMIT 1"
)
INSERT = (
    "INSERT INTO model_promotions (model_name, version, alias, previous_version, promoted_by, reason, forced, "
    "metrics, via, kind, gate, change_key, event_id, published_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s::jsonb, %s, %s, {published}) "
    "ON CONFLICT (change_key) DO NOTHING RETURNING id"
)
UNPUBLISHED = (
    "SELECT id, model_name, version, previous_version, promoted_by, reason, metrics, event_id FROM model_promotions "
    "WHERE via = 'mlflow' AND published_at IS NULL ORDER BY id"
)
HISTORY = (
    "SELECT id, version, previous_version, via, kind, promoted_by, reason, forced, promoted_at, gate "
    "FROM model_promotions WHERE model_name = %s AND alias = %s ORDER BY id"
)


@dataclass(frozen=True)
class LatestPromotion:
    """The newest audit row of a model's alias."""

    id: int
    version: str
    via: str
    promoted_at: datetime


@dataclass(frozen=True)
class Pending:
    """A recorded MLflow promotion whose ModelPromoted is not yet published."""

    id: int
    model_name: str
    version: str
    previous_version: str | None
    promoted_by: str
    reason: str
    metrics: dict[str, float]
    event_id: UUID


def kind_of(version: str, previous: str | None) -> str:
    """``rollback`` when the alias goes back to a lower version number, else ``promotion``."""
    try:
        return "rollback" if previous is not None and int(version) < int(previous) else "promotion"
    except ValueError:
        return "promotion"


def change_key(model: str, previous: str | None, version: str, after: LatestPromotion | None) -> str:
    """One key per alias change: the same change seen twice (a restart) gives the same key."""
    return f"{model}:{previous or '-'}->{version}:after-{after.id if after else 0}"


def latest(conn: Any, model: str, alias: str = "champion") -> LatestPromotion | None:
    """The newest row of ``model``'s alias, or None."""
    row = conn.execute(LATEST, (model, alias)).fetchone()
    return None if row is None else LatestPromotion(int(row[0]), str(row[1]), str(row[2]), row[3])


def insert(
    conn: Any,
    *,
    model: str,
    version: str,
    previous: str | None,
    by: str,
    reason: str,
    forced: bool,
    metrics: dict[str, float],
    via: str,
    gate: dict[str, Any] | None,
    key: str | None,
    event_id: UUID | None = None,
    published: bool = True,
    alias: str = "champion",
) -> int | None:
    """Insert one row (nothing when ``key`` was recorded already); returns its id or None. Caller commits."""
    sql = INSERT.format(published="now()" if published else "NULL")
    row = conn.execute(
        sql,
        (
            model,
            version,
            alias,
            previous,
            by,
            reason,
            forced,
            json.dumps(metrics),
            via,
            kind_of(version, previous),
            json.dumps(gate) if gate is not None else None,
            key,
            str(event_id or uuid4()),
        ),
    ).fetchone()
    return None if row is None else int(row[0])


def unpublished(conn: Any) -> list[Pending]:
    """MLflow promotions recorded but not yet announced (a watcher stopped between the two)."""
    out = []
    for rid, model, version, prev, by, reason, metrics, event_id in conn.execute(UNPUBLISHED).fetchall():
        vals = metrics if isinstance(metrics, dict) else json.loads(metrics or "{}")
        out.append(
            Pending(int(rid), model, version, prev, by, reason, {k: float(v) for k, v in vals.items()}, event_id)
        )
    return out


def mark_published(conn: Any, row_id: int) -> None:
    """Set published_at (caller commits)."""
    conn.execute("UPDATE model_promotions SET published_at = now() WHERE id = %s", (row_id,))


def history(conn: Any, model: str, alias: str = "champion") -> list[dict[str, Any]]:
    """Every alias change of a model, oldest first."""
    cols = (
        "id",
        "version",
        "previous_version",
        "via",
        "kind",
        "promoted_by",
        "reason",
        "forced",
        "promoted_at",
        "gate",
    )
    return [dict(zip(cols, r, strict=True)) for r in conn.execute(HISTORY, (model, alias)).fetchall()]


class PgPromotionStore:
    """The audit table through a connection factory (each call commits its own transaction)."""

    def __init__(self, connect: Any) -> None:
        self._connect = connect

    def latest(self, model: str) -> LatestPromotion | None:
        """Newest champion row of a model."""
        with self._connect() as conn:
            return latest(conn, model)

    def insert(self, **row: Any) -> int | None:
        """Insert (see :func:`insert`) and commit."""
        with self._connect() as conn:
            rid = insert(conn, **row)
            conn.commit()
            return rid

    def unpublished(self) -> list[Pending]:
        """MLflow rows not yet announced."""
        with self._connect() as conn:
            return unpublished(conn)

    def mark_published(self, row_id: int) -> None:
        """Set published_at and commit."""
        with self._connect() as conn:
            mark_published(conn, row_id)
            conn.commit()
