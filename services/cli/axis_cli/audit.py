"""``python -m axis_cli audit --image-uri URI | --inspection ID | --model NAME [--json]``.

Answers "which model version scored this image, and who promoted that version": every score row of the
image (or inspection), with the promotion that made the version champion before the score was written
(``model_promotions``: via the CLI, or via MLflow when the promote-watch service saw the alias move in the
MLflow UI / API), else the promotion tags on the MLflow version. ``--model`` lists every champion change
of a model, rollbacks included, with the gate's verdict at that moment.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

SCORES_BY_IMAGE = (
    "SELECT i.image_uri, s.inspection_id, s.imaging_mode, s.model_name, s.model_version, s.probability, "
    "s.threshold, s.scored_at FROM image_scores s JOIN images i ON i.image_event_id = s.image_event_id "
    "WHERE i.image_uri = %s ORDER BY s.scored_at, s.id"
)
SCORES_BY_INSPECTION = (
    "SELECT i.image_uri, s.inspection_id, s.imaging_mode, s.model_name, s.model_version, s.probability, "
    "s.threshold, s.scored_at FROM image_scores s JOIN images i ON i.image_event_id = s.image_event_id "
    "WHERE s.inspection_id = %s ORDER BY s.scored_at, s.id"
)
PROMOTION_BEFORE = (
    "SELECT promoted_by, reason, promoted_at, forced, previous_version, via, kind FROM model_promotions "
    "WHERE model_name = %s AND version = %s AND alias = 'champion' AND promoted_at <= %s "
    "ORDER BY promoted_at DESC, id DESC LIMIT 1"
)


@dataclass(frozen=True)
class AuditRow:
    """One score of an image and the promotion behind the version that produced it."""

    image_uri: str
    inspection_id: str
    imaging_mode: str
    model_name: str
    model_version: str
    probability: float
    threshold: float
    scored_at: str
    promoted_by: str | None
    promoted_at: str | None
    reason: str | None
    forced: bool | None
    promotion_source: str


def audit(
    conn: Any,
    *,
    image_uri: str | None = None,
    inspection_id: str | None = None,
    version_tags: Callable[[str, str], dict[str, str]] | None = None,
) -> list[AuditRow]:
    """Score rows of an image or an inspection, each with who promoted the scoring version and when."""
    if (image_uri is None) == (inspection_id is None):
        raise ValueError("give exactly one of image_uri or inspection_id")
    query, key = (SCORES_BY_IMAGE, image_uri) if image_uri is not None else (SCORES_BY_INSPECTION, inspection_id)
    rows = conn.execute(query, (key,)).fetchall()
    out = []
    for uri, insp, mode, name, version, prob, thr, scored_at in rows:
        promo = conn.execute(PROMOTION_BEFORE, (name, version, scored_at)).fetchone()
        by = at = reason = None
        forced: bool | None = None
        source = "none recorded (bootstrap, or promoted in the MLflow UI)"
        if promo is not None:
            by, at, reason, forced = promo[0], _iso(promo[2]), promo[1], bool(promo[3])
            source = f"model_promotions (via {promo[5]}, {promo[6]})"
        elif version_tags is not None:
            try:
                tags = version_tags(name, version)
            except Exception:  # the registry may be down or the version deleted: the DB answer still stands
                tags = {}
            if tags.get("promoted_by"):
                by, at, reason, source = (
                    tags["promoted_by"],
                    tags.get("promoted_at"),
                    tags.get("promoted_reason"),
                    "mlflow tags",
                )
        out.append(
            AuditRow(
                uri,
                insp,
                mode,
                name,
                str(version),
                float(prob),
                float(thr),
                _iso(scored_at),
                by,
                at,
                reason,
                forced,
                source,
            )
        )
    return out


def _iso(v: Any) -> str:
    return v.isoformat() if isinstance(v, datetime) else str(v)


def format_rows(rows: Sequence[AuditRow]) -> str:
    """Readable report, one block per score."""
    if not rows:
        return "no scores recorded for that image / inspection"
    lines = []
    for r in rows:
        who = f"promoted by {r.promoted_by} at {r.promoted_at}" if r.promoted_by else "promotion: " + r.promotion_source
        why = f" — {r.reason!r}" if r.reason else ""
        forced = " (forced)" if r.forced else ""
        lines.append(
            f"{r.image_uri} [{r.imaging_mode}, inspection {r.inspection_id}]\n"
            f"  scored {r.scored_at} by {r.model_name} v{r.model_version}: P(crystal) {r.probability:.4f} "
            f"(threshold {r.threshold:.4f})\n  {who}{why}{forced}"
        )
    return "\n".join(lines)


def format_history(model: str, rows: Sequence[dict[str, Any]]) -> str:
    """One line per champion change of a model: when, from, to, via, kind, who, the gate's verdict."""
    if not rows:
        return f"no champion changes recorded for {model}"
    lines = [f"champion changes of {model}:"]
    for r in rows:
        gate = r.get("gate") or {}
        verdict = gate.get("verdict", "-") if isinstance(gate, dict) else "-"
        forced = ", forced" if r.get("forced") else ""
        lines.append(
            f"  {_iso(r['promoted_at'])}  v{r['previous_version'] or '-'} -> v{r['version']}  {r['kind']} via "
            f"{r['via']}  by {r['promoted_by']}  gate {verdict}{forced}  {r['reason']!r}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 found, 1 no scores."""
    from axis_adapters.db import connect
    from axis_adapters.registry import ModelRegistry
    from axis_adapters.settings import ServiceSettings, load_settings

    p = argparse.ArgumentParser(
        prog="python -m axis_cli audit", description="Which model version scored an image, and who promoted it."
    )
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--image-uri", help="s3://… URI of the image")
    group.add_argument("--inspection", help="inspection id")
    group.add_argument("--model", help="registered model name: list its champion changes (rollbacks included)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    args = p.parse_args(argv)
    settings = load_settings(ServiceSettings)
    registry = ModelRegistry(settings.mlflow.tracking_uri)

    def tags(name: str, version: str) -> dict[str, str]:
        return registry.version(name, version).tags

    if args.model:
        from axis_cli.promotion_log import history

        with connect(settings.postgres) as conn:
            changes = history(conn, args.model)
        print(json.dumps(changes, indent=2, default=str) if args.json else format_history(args.model, changes))
        return 0 if changes else 1
    with connect(settings.postgres) as conn:
        rows = audit(conn, image_uri=args.image_uri, inspection_id=args.inspection, version_tags=tags)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(format_rows(rows))
    if not rows:
        print("audit: nothing found", file=sys.stderr)
    return 0 if rows else 1
