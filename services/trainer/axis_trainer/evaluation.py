"""The trainer's evaluation records: the metrics stored on a version, per-image test predictions (read by the
promotion gate), and the fused per-inspection evaluation logged to every run of a job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from axis_adapters.registry import ModelRegistry, metric_tags
from axis_core.fused_eval import FUSED, Prediction, metrics_by_scope
from axis_core.metrics import BinaryMetrics

from axis_trainer import tracking
from axis_trainer.data import ModeData

FUSED_ARTIFACT = "evaluation_fused.json"


def test_summary(m: BinaryMetrics) -> dict[str, float]:
    """The test metrics stored on a version and compared at promotion."""
    return {
        "test_recall": m.recall,
        "test_precision": m.precision,
        "test_balanced_accuracy": m.balanced_accuracy,
        "test_f1": m.f1,
    }


def predictions_of(data: ModeData, mode: str, probs: Any, threshold: float) -> list[Prediction]:
    """Per-image predictions of one mode on the test set (what the gate and the fused evaluation read)."""
    return [
        Prediction(r.inspection_id, mode, float(p), float(threshold), r.label, r.sub_type, r.image_uri)
        for r, p in zip(data.rows, probs, strict=True)
    ]


def log_fused(registry: ModelRegistry, say: Callable[[str], None], outcomes: Sequence[Any]) -> None:
    """Per-inspection fused metrics (max over the modes trained in this job) on every run of the job
    (``outcomes``: the job's ModeOutcome of each mode)."""
    if not outcomes:
        return
    new = metrics_by_scope([p for o in outcomes for p in o.predictions])[FUSED]
    champs = [p for o in outcomes for p in o.champion_predictions]
    # the champion generation is fused only when every mode had a champion evaluated
    champ = metrics_by_scope(champs)[FUSED] if all(o.champion_predictions for o in outcomes) else None
    modes = sorted(o.mode for o in outcomes)
    say(
        f"fused per inspection ({'+'.join(modes)}): new {fmt_metrics(new)}"
        + (f"; champion {fmt_metrics(champ)}" if champ else "")
    )
    metrics = {f"fused_{k}": v for k, v in test_summary(new).items()}
    if champ is not None:
        metrics.update({f"champion_fused_{k}": v for k, v in test_summary(champ).items()})
    report = {"modes": modes, "new": new.to_dict(), "champion": champ.to_dict() if champ else None}
    note = "per inspection: max over modes, each at its own threshold"
    for o in outcomes:
        tracking.log_metrics(registry.client, o.run_id, metrics)
        registry.client.log_dict(o.run_id, report, FUSED_ARTIFACT)
        fig = tracking.confusion_figure(new, f"fused {'+'.join(modes)}, new, test set", note)
        tracking.log_figure(registry.client, o.run_id, fig, "fused_confusion_matrix.png")
        registry.set_tags(o.model_name, o.version.version, metric_tags(metrics))


def fmt_metrics(m: BinaryMetrics) -> str:
    """One line of a model's test metrics for the job's log."""
    return f"recall {m.recall:.3f} precision {m.precision:.3f} balanced acc {m.balanced_accuracy:.3f} F1 {m.f1:.3f}"
