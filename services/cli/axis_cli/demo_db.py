"""Read-only PostgreSQL queries the demo uses to follow the loop (counts per stage, model versions per plate)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg


class LoopDb:
    """Counts over the services' tables for a set of plates (one short connection per call)."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo

    def _rows(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10) as conn:
            return list(conn.execute(sql, params).fetchall())

    def _one(self, sql: str, params: Sequence[Any]) -> int:
        rows = self._rows(sql, params)
        return int(rows[0][0]) if rows and rows[0][0] is not None else 0

    def scored_images(self, plates: Sequence[str]) -> int:
        """Images of the plates with at least one score."""
        return self._one(
            "SELECT count(DISTINCT s.image_event_id) FROM image_scores s "
            "JOIN images i ON i.image_event_id = s.image_event_id WHERE i.plate_barcode = ANY(%s)",
            [list(plates)],
        )

    def scored_inspections(self, plates: Sequence[str]) -> int:
        """Inspections of the plates with a fused score."""
        return self._one("SELECT count(*) FROM inspection_scores WHERE plate_barcode = ANY(%s)", [list(plates)])

    def compared(self, plates: Sequence[str]) -> tuple[int, int]:
        """(inspections with an ML-vs-human comparison, of which agreements)."""
        rows = self._rows(
            "SELECT count(*), count(*) FILTER (WHERE agrees) FROM comparisons WHERE plate_barcode = ANY(%s)",
            [list(plates)],
        )
        return int(rows[0][0]), int(rows[0][1])

    def discrepancies(self, plates: Sequence[str]) -> dict[str, int]:
        """Queue items of the plates by status (open, resolved, unresolved, superseded)."""
        rows = self._rows(
            "SELECT status, count(*) FROM discrepancies WHERE plate_barcode = ANY(%s) GROUP BY status",
            [list(plates)],
        )
        return {str(s): int(n) for s, n in rows}

    def queued(self, plates: Sequence[str]) -> tuple[int, int]:
        """(queue items of the plates the discrepancy service made, of them in curation's read model)."""
        rows = self._rows(
            "SELECT (SELECT count(*) FROM discrepancy.discrepancies WHERE plate_barcode = ANY(%s)), "
            "(SELECT count(*) FROM curation.discrepancies WHERE plate_barcode = ANY(%s))",
            [list(plates), list(plates)],
        )
        return int(rows[0][0]), int(rows[0][1])

    def curator_labels(self, plates: Sequence[str]) -> int:
        """Curator verdicts given on the plates' queue items."""
        return self._one(
            "SELECT count(*) FROM curator_labels c JOIN discrepancies d ON d.id = c.discrepancy_id "
            "WHERE d.plate_barcode = ANY(%s)",
            [list(plates)],
        )

    def versions_on(self, plates: Sequence[str]) -> dict[tuple[str, str], int]:
        """(model_name, model_version) -> images of the plates scored by it."""
        rows = self._rows(
            "SELECT s.model_name, s.model_version, count(*) FROM image_scores s "
            "JOIN images i ON i.image_event_id = s.image_event_id WHERE i.plate_barcode = ANY(%s) GROUP BY 1, 2",
            [list(plates)],
        )
        return {(str(n), str(v)): int(c) for n, v, c in rows}

    def unscored_by(self, plates: Sequence[str], versions: dict[str, str]) -> int:
        """Images of the plates that have no score from the given {model_name: version}."""
        names = list(versions)
        wanted = [versions[n] for n in names]
        return self._one(
            "SELECT count(*) FROM images i WHERE i.plate_barcode = ANY(%s) AND NOT EXISTS ("
            "  SELECT 1 FROM image_scores s JOIN unnest(%s::text[], %s::text[]) AS w(name, version)"
            "    ON s.model_name = w.name AND s.model_version = w.version"
            "  WHERE s.image_event_id = i.image_event_id)",
            [list(plates), names, wanted],
        )
