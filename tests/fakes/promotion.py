"""In-memory promotion audit table for unit tests (same keys and ordering rules as the SQL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import uuid4

from axis_cli.promotion_log import LatestPromotion, Pending, kind_of


class InMemoryPromotionStore:
    """Fake audit table for unit tests (same keys and ordering rules as the SQL)."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def latest(self, model: str) -> LatestPromotion | None:
        """Newest row of a model."""
        mine = [r for r in self.rows if r["model"] == model]
        if not mine:
            return None
        r = mine[-1]
        return LatestPromotion(r["id"], r["version"], r["via"], r["at"])

    def insert(self, **row: Any) -> int | None:
        """Insert unless the change key is known."""
        key = row.get("key")
        if key is not None and any(r.get("key") == key for r in self.rows):
            return None
        rid = len(self.rows) + 1
        row.setdefault("event_id", uuid4())
        self.rows.append(
            {
                **row,
                "id": rid,
                "at": datetime.now(),
                "kind": kind_of(row["version"], row.get("previous")),
                "published_at": datetime.now() if row.get("published", True) else None,
            }
        )
        return rid

    def unpublished(self) -> list[Pending]:
        """MLflow rows not yet announced."""
        return [
            Pending(r["id"], r["model"], r["version"], r["previous"], r["by"], r["reason"], r["metrics"], r["event_id"])
            for r in self.rows
            if r["via"] == "mlflow" and r["published_at"] is None
        ]

    def mark_published(self, row_id: int) -> None:
        """Set published_at."""
        self.rows[row_id - 1]["published_at"] = datetime.now()
