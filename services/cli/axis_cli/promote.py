"""``python -m axis_cli promote MODEL VERSION --by NAME --reason TEXT [--force] [--margin 0.02]``.

Moves the ``champion`` alias, records who and why (version tags + the ``model_promotions`` table) and
publishes ModelPromoted. Refuses a version whose test recall or balanced accuracy is below the champion's
by more than the margin, unless ``--force``; the comparison table is printed either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from axis_adapters.registry import CHAMPION, METRIC_TAG_PREFIX, RegisteredVersion, Registry, RegistryError

GATED = ("test_recall", "test_balanced_accuracy")
SHOWN = ("test_recall", "test_balanced_accuracy", "test_precision", "test_f1")
DEFAULT_MARGIN = 0.02


@dataclass(frozen=True)
class Row:
    """One compared metric."""

    metric: str
    candidate: float | None
    champion: float | None
    gated: bool

    @property
    def delta(self) -> float | None:
        """candidate - champion, when both are known."""
        return None if self.candidate is None or self.champion is None else self.candidate - self.champion


@dataclass
class Comparison:
    """Candidate vs champion on the test set, and whether the promotion is allowed without --force."""

    candidate: str
    champion: str | None
    source: str
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        """True when a gate failed (needs --force)."""
        return bool(self.problems)

    def table(self) -> str:
        """Printable comparison table."""
        champ = f"champion v{self.champion}" if self.champion else "champion (none)"
        lines = [f"{'metric':<24}{'v' + self.candidate:>12}{champ:>22}{'delta':>10}", "-" * 68]
        for r in self.rows:
            c = "-" if r.candidate is None else f"{r.candidate:.4f}"
            h = "-" if r.champion is None else f"{r.champion:.4f}"
            d = "-" if r.delta is None else f"{r.delta:+.4f}"
            lines.append(f"{r.metric + (' *' if r.gated else ''):<24}{c:>12}{h:>22}{d:>10}")
        lines.append(f"(* gated; champion numbers: {self.source})")
        return "\n".join(lines)


def _metric(tags: dict[str, str], key: str) -> float | None:
    try:
        return float(tags[key]) if key in tags else None
    except ValueError:
        return None


def compare(candidate: RegisteredVersion, champion: RegisteredVersion | None, margin: float) -> Comparison:
    """Gate: candidate test recall and balanced accuracy may be at most ``margin`` below the champion's.

    The champion's numbers come from the candidate's own training run when that run evaluated the same
    champion version on the same test set (a fair comparison), else from the champion's version tags.
    """
    if champion is None:
        rows = [Row(m, candidate.metrics.get(m), None, m in GATED) for m in SHOWN]
        return Comparison(candidate.version, None, "no champion yet", rows)
    same_run = candidate.tags.get("champion_version_at_training") == champion.version
    if same_run:
        champ_metrics = {m: _metric(candidate.tags, f"champion_{METRIC_TAG_PREFIX}{m}") for m in SHOWN}
        source = f"evaluated in v{candidate.version}'s training run on the same test set"
    else:
        champ_metrics = {m: champion.metrics.get(m) for m in SHOWN}
        cand_set, champ_set = candidate.tags.get("test_set"), champion.tags.get("test_set")
        source = f"v{champion.version}'s own tags (test set {champ_set or '?'})"
        if cand_set and champ_set and cand_set != champ_set:
            source += f"; the candidate was tested on {cand_set}"
    comp = Comparison(candidate.version, champion.version, source)
    for m in SHOWN:
        comp.rows.append(Row(m, candidate.metrics.get(m), champ_metrics.get(m), m in GATED))
    for r in comp.rows:
        if not r.gated:
            continue
        if r.candidate is None:
            comp.problems.append(f"v{candidate.version} has no {r.metric} recorded")
        elif r.delta is not None and r.delta < -margin:
            comp.problems.append(
                f"{r.metric} {r.candidate:.4f} is {-r.delta:.4f} below the champion's {r.champion:.4f} "
                f"(margin {margin})"
            )
    return comp


@dataclass(frozen=True)
class PromotionResult:
    """What a promotion did."""

    model: str
    version: str
    previous_version: str | None
    forced: bool
    comparison: Comparison


def promote(
    registry: Registry,
    model: str,
    version: str,
    *,
    by: str,
    reason: str,
    force: bool = False,
    margin: float = DEFAULT_MARGIN,
) -> PromotionResult:
    """Gate, then move the champion alias and tag the version; raises PromotionRefused when gated."""
    candidate = registry.version(model, version)
    current = registry.champion(model)
    comparison = compare(candidate, current, margin)
    if comparison.refused and not force:
        raise PromotionRefused(comparison)
    registry.set_alias(model, CHAMPION, candidate.version)
    registry.set_tags(
        model,
        candidate.version,
        {
            "promoted_by": by,
            "promoted_reason": reason,
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "promoted_forced": str(bool(force and comparison.refused)).lower(),
            "previous_champion": current.version if current else "",
        },
    )
    return PromotionResult(model, candidate.version, current.version if current else None, force, comparison)


class PromotionRefused(RuntimeError):
    """The candidate is worse than the champion by more than the margin."""

    def __init__(self, comparison: Comparison) -> None:
        super().__init__("; ".join(comparison.problems))
        self.comparison = comparison


def record(settings: object, result: PromotionResult, *, by: str, reason: str, metrics: dict[str, float]) -> None:
    """Insert the promotion into ``model_promotions``."""
    from axis_adapters.db import connect

    with connect(settings.postgres) as conn:  # type: ignore[attr-defined]
        conn.execute(
            "INSERT INTO model_promotions (model_name, version, alias, previous_version, promoted_by, reason, "
            "forced, metrics) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb)",
            (
                result.model,
                result.version,
                CHAMPION,
                result.previous_version,
                by,
                reason,
                bool(result.forced and result.comparison.refused),
                json.dumps(metrics),
            ),
        )
        conn.commit()


async def announce(
    settings: object, result: PromotionResult, *, by: str, reason: str, metrics: dict[str, float]
) -> None:
    """Publish ModelPromoted."""
    from axis_adapters.kafka import make_broker, publish_event
    from axis_contracts import ModelPromoted

    event = ModelPromoted(
        producer="axis-cli",
        model_name=result.model,
        version=result.version,
        previous_version=result.previous_version,
        promoted_by=by,
        reason=reason,
        metrics=metrics,
    )
    broker = make_broker(settings.kafka)  # type: ignore[attr-defined]
    async with broker:
        await broker.start()
        await publish_event(broker, event)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(
        prog="python -m axis_cli promote",
        description="Move the champion alias to a version; refused when it is worse than the champion by > margin.",
    )
    p.add_argument("model", help="registered model name, e.g. axis-visible")
    p.add_argument("version", help="version number to make champion")
    p.add_argument("--by", required=True, help="who promotes (recorded)")
    p.add_argument("--reason", required=True, help="why (recorded)")
    p.add_argument("--force", action="store_true", help="promote even when the gate refuses")
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN, help="allowed drop in recall / balanced accuracy")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 promoted, 1 refused, 2 unknown model/version."""
    from axis_adapters.registry import ModelRegistry
    from axis_adapters.settings import ServiceSettings, load_settings

    args = parse_args(argv)
    settings = load_settings(ServiceSettings)
    registry = ModelRegistry(settings.mlflow.tracking_uri)
    try:
        result = promote(
            registry, args.model, args.version, by=args.by, reason=args.reason, force=args.force, margin=args.margin
        )
    except RegistryError as exc:
        print(f"promote: {exc}", file=sys.stderr)
        return 2
    except PromotionRefused as exc:
        print(exc.comparison.table())
        print(f"\nREFUSED: {exc}. Re-run with --force to promote anyway.", file=sys.stderr)
        return 1
    metrics = {r.metric: r.candidate for r in result.comparison.rows if r.candidate is not None}
    record(settings, result, by=args.by, reason=args.reason, metrics=metrics)  # type: ignore[arg-type]
    asyncio.run(announce(settings, result, by=args.by, reason=args.reason, metrics=metrics))  # type: ignore[arg-type]
    print(result.comparison.table())
    forced = " (forced past the gate)" if result.forced and result.comparison.refused else ""
    print(
        f"\n{result.model}: champion v{result.previous_version or '-'} -> v{result.version}{forced}; "
        f"by {args.by}: {args.reason}; ModelPromoted published"
    )
    return 0
