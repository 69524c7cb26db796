"""The promotion gate from MLflow artifacts: each version's test-set predictions, the paired bootstrap, the report.

The trainer stores ``test_predictions.jsonl`` in every training run: the new version's predictions
(``model=new``) and, when there was one, the then-champion's on the same test set (``model=champion``,
``version=N``). The predictions of a version on a test set are therefore found in its own run, or in a
later run that evaluated it as champion. Fused scopes combine the promoted mode with the other modes'
current champions, when those were measured on the same test set.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from axis_adapters.registry import RegisteredVersion
from axis_core.fused_eval import FUSED, PREDICTIONS_ARTIFACT, Prediction, from_jsonl
from axis_core.gate import GateConfig, GateReport, compare_scope, evaluate_gate, fused_decisions

GATE_DIR = "gate"


class ArtifactRegistry(Protocol):
    """What the gate needs from the registry (ModelRegistry and the tests' fakes.InMemoryRegistry have it)."""

    def champion(self, model_name: str) -> RegisteredVersion | None: ...
    def read_run_text(self, run_id: str, path: str) -> str | None: ...
    def log_run_text(self, run_id: str, text: str, path: str) -> None: ...
    def log_run_figure(self, run_id: str, figure: Any, path: str) -> None: ...


@dataclass
class GateOutcome:
    """The bootstrap report, or why there is none (then the tag comparison decides)."""

    report: GateReport | None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the audit row."""
        out: dict[str, Any] = self.report.to_dict() if self.report else {"verdict": "unavailable"}
        out["notes"] = [*out.get("notes", []), *self.notes]
        return out


def _own_predictions(reg: ArtifactRegistry, v: RegisteredVersion) -> list[Prediction]:
    text = reg.read_run_text(v.run_id, PREDICTIONS_ARTIFACT) if v.run_id else None
    return from_jsonl(text, model="new") if text else []


def predictions_of(
    reg: ArtifactRegistry, version: RegisteredVersion, *, test_set: str | None, measured_in: RegisteredVersion
) -> list[Prediction]:
    """``version``'s predictions on ``test_set``: from ``measured_in``'s run (as champion), else its own run."""
    if measured_in.tags.get("champion_version_at_training") == version.version and measured_in.run_id:
        text = reg.read_run_text(measured_in.run_id, PREDICTIONS_ARTIFACT)
        if text:
            found = from_jsonl(text, model="champion", version=version.version)
            if found:
                return found
    if test_set and version.tags.get("test_set") == test_set:
        return _own_predictions(reg, version)
    return []


def gate_for(
    reg: ArtifactRegistry,
    candidate: RegisteredVersion,
    champion: RegisteredVersion | None,
    config: GateConfig,
    *,
    other_models: Sequence[str] = (),
) -> GateOutcome:
    """Paired bootstrap of ``candidate`` against ``champion`` (per mode, and fused with the other modes)."""
    if champion is None:
        return GateOutcome(None, ["no champion to compare with"])
    if champion.version == candidate.version:
        return GateOutcome(None, [f"v{candidate.version} is already the champion"])
    test_set = candidate.tags.get("test_set")
    chal = _own_predictions(reg, candidate)
    if not chal:
        return GateOutcome(
            None, [f"v{candidate.version} has no {PREDICTIONS_ARTIFACT} (registered outside the trainer)"]
        )
    champ = predictions_of(reg, champion, test_set=test_set, measured_in=candidate)
    if not champ:
        return GateOutcome(
            None, [f"no predictions of champion v{champion.version} on {test_set or 'the same test set'}"]
        )
    notes: list[str] = []
    others: dict[str, list[Prediction]] = {}
    for name in other_models:
        if name == candidate.name:
            continue
        other = reg.champion(name)
        preds = _own_predictions(reg, other) if other and other.tags.get("test_set") == test_set else []
        if preds:
            others[name] = preds
        else:
            notes.append(f"{name}: no champion predictions on {test_set}; fused without it")
    report = evaluate_gate(chal, champ, config, fused=False)
    # fused: the candidate or the champion of this mode, with the same champions of the other modes
    rest = [p for preds in others.values() for p in preds]
    report.scopes.append(
        compare_scope(FUSED, fused_decisions([*chal, *rest]), fused_decisions([*champ, *rest]), config)
    )
    report.notes += notes
    if others:
        report.notes.append(f"fused with the champions of {', '.join(sorted(others))}")
    return GateOutcome(report, [])


def gate_figure(report: GateReport, title: str) -> Any:
    """Δrecall and ΔBA with their intervals per scope, the margin drawn as a dashed line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 0.6 + 0.6 * len(report.scopes)), sharey=True)
    names = [s.scope for s in report.scopes]
    for ax, key, label in ((axes[0], "d_recall", "Δ crystal recall"), (axes[1], "d_ba", "Δ balanced accuracy")):
        for i, s in enumerate(report.scopes):
            iv = getattr(s, key)
            color = "tab:green" if s.passed else "tab:red"
            ax.errorbar(iv.observed, i, xerr=[[iv.observed - iv.low], [iv.high - iv.observed]], fmt="o", color=color)
        ax.axvline(0.0, color="grey", lw=0.8)
        if key == "d_recall":
            ax.axvline(
                -report.config.margin, color="tab:red", ls="--", lw=0.8, label=f"-margin {report.config.margin:g}"
            )
            ax.legend(fontsize=7, loc="lower right")
        ax.set_xlabel(f"{label} (challenger − champion)", fontsize=8)
    axes[0].set_yticks(range(len(names)), names)
    fig.suptitle(f"{title}: {report.verdict()} ({int(round(100 * report.config.confidence))}% CI)", fontsize=9)
    fig.tight_layout()
    return fig


def log_gate(
    reg: ArtifactRegistry, candidate: RegisteredVersion, champion: RegisteredVersion, report: GateReport
) -> str:
    """Log the report (JSON, text, plot) to the candidate's run; returns the artifact folder."""
    import json

    import matplotlib.pyplot as plt

    folder = f"{GATE_DIR}/vs_champion_v{champion.version}"
    if not candidate.run_id:
        return ""
    reg.log_run_text(candidate.run_id, json.dumps(report.to_dict(), indent=1), f"{folder}/gate_report.json")
    reg.log_run_text(candidate.run_id, report.table() + "\n", f"{folder}/gate_report.txt")
    fig = gate_figure(report, f"{candidate.name} v{candidate.version} vs v{champion.version}")
    try:
        reg.log_run_figure(candidate.run_id, fig, f"{folder}/gate_report.png")
    finally:
        plt.close(fig)
    return folder


def scalar_summary(report: GateReport | None) -> Mapping[str, float]:
    """A few gate numbers for the ModelPromoted event's metrics."""
    if report is None:
        return {}
    out: dict[str, float] = {}
    for s in report.scopes:
        out[f"gate_{s.scope}_d_recall"] = s.d_recall.observed
        out[f"gate_{s.scope}_d_recall_low"] = s.d_recall.low
        out[f"gate_{s.scope}_d_ba"] = s.d_ba.observed
    return out
