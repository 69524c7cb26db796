"""PostgreSQL reads of the curation pages: plates, wells as of an imaging time, a well's and a drop's history.

A mixin of ``CurationRepo`` (it uses its ``_pool``). The tables are the curation service's read models of the
other services' data (images, image_scores, inspection_scores, user_scores), named without a schema.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from psycopg.rows import dict_row

# every query orders modes the one way the pages show them: visible before UV


class PlateQueries:
    """Plate-map and history queries (needs ``self._pool``, a psycopg ConnectionPool)."""

    _pool: Any

    def plate_wells(self, barcode: str, until: datetime | None = None) -> list[dict[str, Any]]:
        """Per (well, drop) the latest inspection imaged at or before ``until`` (default: the latest of all),
        with its fused score, its per-mode probabilities (``mode_scores``: {mode: probability}) and the latest
        user score of that inspection."""
        # The user scores of the plate's latest inspections in two set-wise arms (by inspection; plate-level ones
        # by well and drop) instead of one lookup per well; per mode only its probability (mode_scores also holds
        # URIs, models and event ids: a 1,536-well plate's rows were ~0.7 MB, parsed by the driver for nothing).
        sql = """
        WITH insp AS (
            SELECT inspection_id, plate_type, well, drop_no, imaged_at FROM images WHERE plate_barcode = %(p)s
            UNION
            SELECT inspection_id, plate_type, well, drop_no, imaged_at FROM inspection_scores
            WHERE plate_barcode = %(p)s
        ), latest AS (
            SELECT DISTINCT ON (well, drop_no) * FROM insp
            WHERE %(until)s::timestamptz IS NULL OR imaged_at <= %(until)s::timestamptz
            ORDER BY well, drop_no, imaged_at DESC, inspection_id DESC
        ), cand AS (
            SELECT u.inspection_id AS iid, u.raw_class, u.human_label, u.user_id, u.scored_at FROM user_scores u
            WHERE u.inspection_id = ANY(ARRAY(SELECT inspection_id FROM latest))
            UNION ALL
            SELECT l.inspection_id, u.raw_class, u.human_label, u.user_id, u.scored_at
            FROM user_scores u JOIN latest l ON u.well = l.well AND coalesce(u.drop_no, 1) = l.drop_no
            WHERE u.plate_barcode = %(p)s AND u.inspection_id IS NULL
        ), u AS (
            SELECT DISTINCT ON (iid) * FROM cand ORDER BY iid, scored_at DESC
        )
        SELECT l.inspection_id, l.plate_type, l.well, l.drop_no AS drop, l.imaged_at,
               s.fused_probability, s.label AS ml_label, s.threshold, s.model_name, s.model_version,
               (SELECT jsonb_object_agg(m.key, m.value -> 'probability') FROM jsonb_each(s.mode_scores) m
                WHERE m.value ? 'probability') AS mode_scores,
               u.raw_class, u.human_label, u.user_id, u.scored_at AS user_scored_at
        FROM latest l
        LEFT JOIN inspection_scores s ON s.inspection_id = l.inspection_id
        LEFT JOIN u ON u.iid = l.inspection_id
        ORDER BY l.well, l.drop_no
        """
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, {"p": barcode, "until": until})
            return list(cur.fetchall())

    def plate_times(self, barcode: str) -> list[tuple[datetime, int]]:
        """(imaging time, inspections imaged then) of a plate, oldest first: what the inspection selector groups."""
        sql = """
        SELECT imaged_at, count(DISTINCT inspection_id) AS n FROM (
            SELECT inspection_id, imaged_at FROM images WHERE plate_barcode = %(p)s
            UNION ALL
            SELECT inspection_id, imaged_at FROM inspection_scores WHERE plate_barcode = %(p)s
        ) t GROUP BY imaged_at ORDER BY imaged_at
        """
        with self._pool.connection() as conn, conn.cursor() as cur:
            cur.execute(sql, {"p": barcode})
            return [(r[0], int(r[1])) for r in cur.fetchall()]

    def plates(self, limit: int = 200) -> list[dict[str, Any]]:
        """Plates with scores, most recently imaged first, with their first and last imaging time."""
        sql = (
            "SELECT plate_barcode, max(plate_type) AS plate_type, count(DISTINCT well) AS wells, "
            "min(imaged_at) AS first_imaged_at, max(imaged_at) AS last_imaged_at FROM inspection_scores "
            "GROUP BY plate_barcode ORDER BY last_imaged_at DESC LIMIT %s"
        )
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(sql, (limit,))
            return list(cur.fetchall())

    def well_history(self, barcode: str, well: str) -> dict[str, list[dict[str, Any]]]:
        """Every inspection of a well (newest first) with images, per-image and fused scores, user scores, labels.

        Score and label rows carry the inspection's imaging time, so that rows of different inspections differ.
        """
        p = {"p": barcode, "w": well}
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT inspection_id, drop_no AS drop, imaging_mode, image_uri, imaged_at, image_event_id::text "
                "AS image_event_id FROM images WHERE plate_barcode = %(p)s AND well = %(w)s "
                "ORDER BY imaged_at DESC, CASE imaging_mode WHEN 'visible' THEN 0 ELSE 1 END",
                p,
            )
            images = list(cur.fetchall())
            cur.execute(
                "SELECT s.inspection_id, i.drop_no AS drop, i.imaged_at, s.imaging_mode, s.probability, s.threshold, "
                "s.model_name, s.model_version, s.scored_at FROM image_scores s "
                "JOIN images i ON i.image_event_id = s.image_event_id "
                "WHERE i.plate_barcode = %(p)s AND i.well = %(w)s "
                "ORDER BY i.imaged_at DESC, CASE s.imaging_mode WHEN 'visible' THEN 0 ELSE 1 END, s.scored_at DESC",
                p,
            )
            image_scores = list(cur.fetchall())
            cur.execute(
                "SELECT inspection_id, drop_no AS drop, imaged_at, fused_probability, label, threshold, model_name, "
                "model_version, scored_at FROM inspection_scores WHERE plate_barcode = %(p)s AND well = %(w)s "
                "ORDER BY imaged_at DESC",
                p,
            )
            fused = list(cur.fetchall())
            cur.execute(
                "SELECT u.inspection_id, u.drop_no AS drop, f.imaged_at, u.user_id, u.raw_class, u.human_label, "
                "u.scored_at FROM user_scores u LEFT JOIN inspection_scores f ON f.inspection_id = u.inspection_id "
                "WHERE u.plate_barcode = %(p)s AND u.well = %(w)s OR u.inspection_id = ANY(ARRAY("
                "SELECT inspection_id FROM images WHERE plate_barcode = %(p)s AND well = %(w)s)) "
                "ORDER BY u.scored_at DESC",
                p,
            )
            user_scores = list(cur.fetchall())
            cur.execute(
                "SELECT d.id AS item_id, d.inspection_id, d.drop_no AS drop, d.status, d.resolved_label, "
                "l.curator, l.label, l.comment, l.created_at FROM discrepancies d "
                "JOIN curator_labels l ON l.discrepancy_id = d.id "
                "WHERE d.plate_barcode = %(p)s AND d.well = %(w)s ORDER BY l.created_at DESC",
                p,
            )
            curator_labels = list(cur.fetchall())
            cur.execute(
                "SELECT id AS item_id, inspection_id, drop_no AS drop, status, reason FROM discrepancies "
                "WHERE plate_barcode = %(p)s AND well = %(w)s AND status <> 'superseded' ORDER BY created_at DESC",
                p,
            )
            items = list(cur.fetchall())
        return {
            "images": images,
            "image_scores": image_scores,
            "fused_scores": fused,
            "user_scores": user_scores,
            "curator_labels": curator_labels,
            "queue_items": items,
        }

    def drop_history(self, barcode: str, well: str, drop: int) -> list[dict[str, Any]]:
        """Every inspection of one drop, oldest first: imaging time, fused score, images (visible first)."""
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT i.inspection_id, i.imaging_mode, i.image_uri, i.imaged_at, i.image_event_id::text "
                "AS image_event_id, s.fused_probability, s.label FROM images i "
                "LEFT JOIN inspection_scores s ON s.inspection_id = i.inspection_id "
                "WHERE i.plate_barcode = %s AND i.well = %s AND i.drop_no = %s "
                "ORDER BY i.imaged_at, i.inspection_id, CASE i.imaging_mode WHEN 'visible' THEN 0 ELSE 1 END",
                (barcode, well, drop),
            )
            rows = list(cur.fetchall())
        out: dict[str, dict[str, Any]] = {}
        for r in rows:
            entry = out.setdefault(
                r["inspection_id"],
                {
                    "inspection_id": r["inspection_id"],
                    "imaged_at": r["imaged_at"],
                    "fused_probability": r["fused_probability"],
                    "label": r["label"],
                    "images": [],
                },
            )
            entry["imaged_at"] = min(entry["imaged_at"], r["imaged_at"])
            entry["images"].append({k: r[k] for k in ("image_event_id", "imaging_mode", "image_uri", "imaged_at")})
        return sorted(out.values(), key=lambda e: (e["imaged_at"], e["inspection_id"]))

    def mode_scores(self, inspection_id: str) -> list[dict[str, Any]]:
        """The latest score of each image of an inspection (visible first): probability, threshold, model."""
        with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT DISTINCT ON (imaging_mode) imaging_mode AS mode, probability, threshold, model_name, "
                "model_version, scored_at FROM image_scores WHERE inspection_id = %s "
                "ORDER BY imaging_mode, scored_at DESC, model_version DESC",
                (inspection_id,),
            )
            rows = list(cur.fetchall())
        order = {"visible": 0, "uv": 1}
        return sorted(rows, key=lambda r: order.get(r["mode"], 2))
