"""``python -m axis_cli promote MODEL VERSION --by NAME --reason TEXT [--force] [--dry-run] [--margin 0.02]``.

Moves the ``champion`` alias, records who and why (version tags + the ``model_promotions`` table, via=cli)
and publishes ModelPromoted. The gate: challenger vs champion on the same frozen test set, from the test-set
predictions both training runs stored (paired bootstrap over inspections, per mode and fused with the other
modes' champions; :mod:`axis_core.gate`); refused when the lower bound of Δrecall is below -margin or ΔBA is
confidently negative, unless ``--force`` (audited as forced). A version without stored predictions (one
registered outside the trainer) falls back to comparing the test metrics on the version tags. The report
(JSON, text, plot) is logged to the challenger's MLflow run; ``--dry-run`` prints it and changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from axis_adapters.registry import CHAMPION, METRIC_TAG_PREFIX, RegisteredVersion, Registry, RegistryError
from axis_core.gate import GateConfig

from axis_cli.gate_report import GateOutcome, gate_for, log_gate, scalar_summary

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


@dataclass
class Evaluation:
    """Everything the gate knows about a candidate: the tag comparison and the bootstrap report (if any)."""

    candidate: RegisteredVersion
    champion: RegisteredVersion | None
    comparison: Comparison
    gate: GateOutcome

    @property
    def refused(self) -> bool:
        """The bootstrap decides when it could run; else the tag comparison."""
        return self.gate.report.refused if self.gate.report is not None else self.comparison.refused

    @property
    def problems(self) -> list[str]:
        """Why it is refused."""
        return self.gate.report.problems if self.gate.report is not None else self.comparison.problems

    def text(self) -> str:
        """Printable: the metric table, then the bootstrap report or why there is none."""
        out = [self.comparison.table(), ""]
        if self.gate.report is not None:
            out.append(self.gate.report.table())
        else:
            out.append("bootstrap gate not run: " + "; ".join(self.gate.notes) + " (the tag comparison decides)")
            out.append(f"gate verdict: {'REFUSE' if self.refused else 'ACCEPT'}")
        return "\n".join(out)

    def to_dict(self) -> dict[str, object]:
        """JSON-able verdict for the audit row."""
        return {
            "verdict": "refuse" if self.refused else "accept",
            "champion_version": self.champion.version if self.champion else None,
            "problems": self.problems,
            "bootstrap": self.gate.to_dict(),
        }

    def metrics(self) -> dict[str, float]:
        """Candidate test metrics plus the gate's headline numbers (for ModelPromoted)."""
        out = {r.metric: r.candidate for r in self.comparison.rows if r.candidate is not None}
        out.update(scalar_summary(self.gate.report))
        return out


def evaluate_candidate(
    registry: Registry,
    model: str,
    version: str,
    *,
    margin: float = DEFAULT_MARGIN,
    gate_config: GateConfig | None = None,
    other_models: Sequence[str] = (),
    champion: RegisteredVersion | None | str = "current",
    log_report: bool = True,
) -> Evaluation:
    """Gate a candidate against ``champion`` (default: the current champion) without changing anything."""
    candidate = registry.version(model, version)
    current = registry.champion(model) if champion == "current" else champion
    assert not isinstance(current, str)
    cfg = gate_config or GateConfig(margin=margin)
    comparison = compare(candidate, current, cfg.margin)
    outcome = gate_for(registry, candidate, current, cfg, other_models=other_models)  # type: ignore[arg-type]
    if log_report and outcome.report is not None and current is not None:
        try:
            log_gate(registry, candidate, current, outcome.report)  # type: ignore[arg-type]
        except Exception as exc:  # the verdict stands without the MLflow copy of it
            outcome.notes.append(f"could not log the gate report to MLflow: {type(exc).__name__}: {exc}")
    return Evaluation(candidate, current, comparison, outcome)


@dataclass(frozen=True)
class PromotionResult:
    """What a promotion did."""

    model: str
    version: str
    previous_version: str | None
    forced: bool
    comparison: Comparison
    evaluation: Evaluation | None = None

    @property
    def refused(self) -> bool:
        """Whether the gate refused (so a done promotion was forced)."""
        return self.evaluation.refused if self.evaluation is not None else self.comparison.refused


def apply(registry: Registry, evaluation: Evaluation, *, by: str, reason: str, force: bool) -> PromotionResult:
    """Move the champion alias to the evaluated candidate and tag who, why and when."""
    candidate, current = evaluation.candidate, evaluation.champion
    # tags first: the caller writes its audit row right after the alias moves, so that promote-watch
    # (which waits a few seconds for that row) never takes this for a move made in MLflow
    registry.set_tags(
        candidate.name,
        candidate.version,
        {
            "promoted_by": by,
            "promoted_reason": reason,
            "promoted_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "promoted_forced": str(bool(force and evaluation.refused)).lower(),
            "previous_champion": current.version if current else "",
            "promoted_gate": "refuse" if evaluation.refused else "accept",
        },
    )
    registry.set_alias(candidate.name, CHAMPION, candidate.version)
    return PromotionResult(
        candidate.name,
        candidate.version,
        current.version if current else None,
        force,
        evaluation.comparison,
        evaluation,
    )


def promote(
    registry: Registry,
    model: str,
    version: str,
    *,
    by: str,
    reason: str,
    force: bool = False,
    margin: float = DEFAULT_MARGIN,
    gate_config: GateConfig | None = None,
    other_models: Sequence[str] = (),
) -> PromotionResult:
    """Gate, then move the champion alias and tag the version; raises PromotionRefused when gated."""
    evaluation = evaluate_candidate(
        registry, model, version, margin=margin, gate_config=gate_config, other_models=other_models
    )
    if evaluation.refused and not force:
        raise PromotionRefused(evaluation.comparison, evaluation)
    return apply(registry, evaluation, by=by, reason=reason, force=force)


class PromotionRefused(RuntimeError):
    """The candidate is worse than the champion by more than the margin."""

    def __init__(self, comparison: Comparison, evaluation: Evaluation | None = None) -> None:
        super().__init__("; ".join(evaluation.problems if evaluation else comparison.problems))
        self.comparison = comparison
        self.evaluation = evaluation


def record(
    settings: object,
    result: PromotionResult,
    *,
    by: str,
    reason: str,
    metrics: dict[str, float],
    via: str = "cli",
    event_id: UUID | None = None,
) -> None:
    """Insert the promotion into ``model_promotions`` (with the gate's verdict at that moment)."""
    from axis_adapters.db import connect

    from axis_cli import promotion_log

    with connect(settings.postgres) as conn:  # type: ignore[attr-defined]
        promotion_log.insert(
            conn,
            model=result.model,
            version=result.version,
            previous=result.previous_version,
            by=by,
            reason=reason,
            forced=bool(result.forced and result.refused),
            metrics=metrics,
            via=via,
            gate=result.evaluation.to_dict() if result.evaluation else None,
            key=None,
            event_id=event_id,
        )
        conn.commit()


async def announce(
    settings: object,
    result: PromotionResult,
    *,
    by: str,
    reason: str,
    metrics: dict[str, float],
    event_id: UUID | None = None,
) -> None:
    """Publish ModelPromoted."""
    from axis_adapters.kafka import make_broker, publish_event
    from axis_contracts import ModelPromoted

    event = ModelPromoted(
        event_id=event_id or uuid4(),
        producer="axis-cli",
        model_name=result.model,
        version=result.version,
        previous_version=result.previous_version,
        promoted_by=by,
        reason=reason,
        metrics=metrics,
    )
    broker = make_broker(settings.kafka)  # type: ignore[attr-defined]
    publisher = publish_to(broker)
    async with broker:
        await broker.start()
        await publish_event(publisher, event)


def publish_to(broker: Any) -> Any:
    """What promotion sends (the CLI and the alias watch): ModelPromoted (an ``EventPublisher``)."""
    from axis_adapters.publisher import EventPublisher
    from axis_contracts import ModelPromoted

    return EventPublisher(broker, "promote", (ModelPromoted,))


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
    p.add_argument("--margin", type=float, default=DEFAULT_MARGIN, help="allowed drop in crystal recall (0.02 = 2 pts)")
    p.add_argument(
        "--dry-run", action="store_true", help="print the gate report (and log it to MLflow), change nothing"
    )
    p.add_argument("--confidence", type=float, default=0.95, help="confidence of the bootstrap intervals")
    p.add_argument("--resamples", type=int, default=2000, help="bootstrap resamples (>= 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (same seed, same report)")
    p.add_argument(
        "--require-ba-gain", action="store_true", help="refuse unless balanced accuracy is confidently better"
    )
    return p.parse_args(argv)


def gate_config(args: argparse.Namespace) -> GateConfig:
    """GateConfig from the options (ValueError names a bad one)."""
    return GateConfig(
        margin=args.margin,
        confidence=args.confidence,
        resamples=args.resamples,
        seed=args.seed,
        require_ba_gain=args.require_ba_gain,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 promoted (dry run: would be accepted), 1 refused, 2 unknown model/version or bad option."""
    from axis_adapters.registry import ModelRegistry
    from axis_adapters.settings import load_settings

    from axis_cli.promotion_log import PromoteSettings

    args = parse_args(argv)
    try:
        cfg = gate_config(args)
    except ValueError as exc:
        print(f"promote: {exc}", file=sys.stderr)
        return 2
    settings = load_settings(PromoteSettings)
    registry = ModelRegistry(settings.mlflow.tracking_uri)
    others = (settings.mlflow.visible_model, settings.mlflow.uv_model)
    try:
        evaluation = evaluate_candidate(registry, args.model, args.version, gate_config=cfg, other_models=others)
    except RegistryError as exc:
        print(f"promote: {exc}", file=sys.stderr)
        return 2
    print(evaluation.text())
    if args.dry_run:
        verdict = "REFUSED" if evaluation.refused else "accepted"
        print(f"\ndry run: nothing changed; {args.model} v{args.version} would be {verdict}")
        return 1 if evaluation.refused else 0
    if evaluation.refused and not args.force:
        print(f"\nREFUSED: {'; '.join(evaluation.problems)}. Re-run with --force to promote anyway.", file=sys.stderr)
        return 1
    result = apply(registry, evaluation, by=args.by, reason=args.reason, force=args.force)
    metrics = evaluation.metrics()
    event_id = uuid4()
    record(settings, result, by=args.by, reason=args.reason, metrics=metrics, event_id=event_id)
    asyncio.run(announce(settings, result, by=args.by, reason=args.reason, metrics=metrics, event_id=event_id))
    forced = " (forced past the gate)" if result.forced and result.refused else ""
    print(
        f"\n{result.model}: champion v{result.previous_version or '-'} -> v{result.version}{forced}; "
        f"by {args.by}: {args.reason}; ModelPromoted published"
    )
    return 0
