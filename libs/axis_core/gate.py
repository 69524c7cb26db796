"""Promotion gate: challenger vs champion on one frozen test set, paired bootstrap by inspection (pure logic).

For each scope (each mode's images, and the fused per-inspection decision) both versions' decisions are
reduced to confusion counts per inspection; the bootstrap resamples inspections (not images, so the
visible and UV images of a drop, or several images of one inspection, stay together) with one seeded
generator, and each resample gives Δrecall and Δbalanced accuracy (challenger − champion) on the same
inspections for both versions (paired).

Default rule (non-inferiority on recall, no loss on balanced accuracy), at confidence ``c``:

- refuse when the lower bound of the two-sided ``c`` interval of Δrecall is below ``-margin``;
- refuse when ΔBA is confidently negative (upper bound below 0); with ``require_ba_gain`` the stricter
  reading: refuse unless ΔBA is confidently positive (lower bound above 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from axis_core.fused_eval import FUSED, Prediction, fuse_inspections

MIN_RESAMPLES = 1000


@dataclass(frozen=True)
class GateConfig:
    """The gate's parameters (validated here, once)."""

    margin: float = 0.02
    confidence: float = 0.95
    resamples: int = 2000
    seed: int = 0
    require_ba_gain: bool = False

    def __post_init__(self) -> None:
        if not 0.0 <= self.margin < 1.0:
            raise ValueError(f"margin must be in [0, 1) (a share of recall, 0.02 = 2 points), got {self.margin}")
        if not 0.5 <= self.confidence < 1.0:
            raise ValueError(f"confidence must be in [0.5, 1), got {self.confidence}")
        if self.resamples < MIN_RESAMPLES:
            raise ValueError(f"resamples must be at least {MIN_RESAMPLES}, got {self.resamples}")


@dataclass(frozen=True)
class Interval:
    """Observed difference and its bootstrap percentile interval."""

    observed: float
    low: float
    high: float


@dataclass(frozen=True)
class ScopeResult:
    """Gate result of one scope (a mode, or ``fused``)."""

    scope: str
    n_inspections: int
    n_crystal_units: int
    challenger_recall: float
    champion_recall: float
    challenger_ba: float
    champion_ba: float
    d_recall: Interval
    d_ba: Interval
    problems: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when this scope raises no objection."""
        return not self.problems


@dataclass
class GateReport:
    """All scopes, the config, and the verdict."""

    config: GateConfig
    scopes: list[ScopeResult]
    notes: list[str] = field(default_factory=list)

    @property
    def refused(self) -> bool:
        """True when any scope failed."""
        return any(not s.passed for s in self.scopes)

    @property
    def problems(self) -> list[str]:
        """Every scope's objections, prefixed with the scope."""
        return [f"{s.scope}: {p}" for s in self.scopes for p in s.problems]

    def verdict(self) -> str:
        """``accept`` or ``refuse``."""
        return "refuse" if self.refused else "accept"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored with the promotion and logged to MLflow)."""
        return {
            "verdict": self.verdict(),
            "config": asdict(self.config),
            "scopes": [{**asdict(s), "passed": s.passed} for s in self.scopes],
            "problems": self.problems,
            "notes": list(self.notes),
        }

    def table(self) -> str:
        """Printable report."""
        c = self.config
        pct = int(round(100 * c.confidence))
        head = f"{'scope':<10}{'n insp':>8}{'recall ch/champ':>18}{'Δrecall [' + str(pct) + '% CI]':>28}"
        head += f"{'BA ch/champ':>16}{'ΔBA [' + str(pct) + '% CI]':>28}  ok"
        lines = [head, "-" * len(head)]
        for s in self.scopes:
            lines.append(
                f"{s.scope:<10}{s.n_inspections:>8}{f'{s.challenger_recall:.3f}/{s.champion_recall:.3f}':>18}"
                f"{_iv(s.d_recall):>28}{f'{s.challenger_ba:.3f}/{s.champion_ba:.3f}':>16}{_iv(s.d_ba):>28}"
                f"  {'yes' if s.passed else 'NO'}"
            )
        rule = "ΔBA lower bound > 0" if c.require_ba_gain else "ΔBA upper bound >= 0"
        lines.append(
            f"(paired bootstrap over inspections: {c.resamples} resamples, seed {c.seed}; rule: Δrecall lower "
            f"bound >= -{c.margin:g} and {rule})"
        )
        lines += [f"note: {n}" for n in self.notes]
        lines.append(
            f"gate verdict: {self.verdict().upper()}" + (f" ({'; '.join(self.problems)})" if self.refused else "")
        )
        return "\n".join(lines)


def _iv(i: Interval) -> str:
    return f"{i.observed:+.4f} [{i.low:+.4f}, {i.high:+.4f}]"


# counts per unit: columns tp, fn, fp, tn
def _unit_counts(units: Sequence[str], decided: dict[str, list[tuple[bool, bool]]]) -> NDArray[np.int64]:
    out = np.zeros((len(units), 4), dtype=np.int64)
    for i, u in enumerate(units):
        for truth, pred in decided.get(u, []):
            out[i, 0 if truth and pred else 1 if truth else 2 if pred else 3] += 1
    return out


def mode_decisions(preds: Sequence[Prediction], mode: str) -> dict[str, list[tuple[bool, bool]]]:
    """(truth, decision) of each image of ``mode``, grouped by inspection."""
    out: dict[str, list[tuple[bool, bool]]] = {}
    for p in preds:
        if p.mode == mode:
            out.setdefault(p.inspection_id, []).append((p.is_crystal, p.predicted_crystal))
    return out


def fused_decisions(preds: Sequence[Prediction]) -> dict[str, list[tuple[bool, bool]]]:
    """(truth, fused decision) of each inspection."""
    return {o.inspection_id: [(o.is_crystal, o.predicted_crystal)] for o in fuse_inspections(preds)}


def _rates(counts: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(recall, balanced accuracy) from summed counts (..., 4); an empty class gives 0."""
    tp, fn, fp, tn = counts[..., 0], counts[..., 1], counts[..., 2], counts[..., 3]
    with np.errstate(invalid="ignore", divide="ignore"):
        recall = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
        spec = np.where(tn + fp > 0, tn / np.maximum(tn + fp, 1), 0.0)
    return recall, (recall + spec) / 2.0


def bootstrap_weights(n_units: int, resamples: int, seed: int) -> NDArray[np.int64]:
    """How often each unit is drawn in each resample: (resamples, n_units), rows summing to n_units."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=resamples)


def compare_scope(
    scope: str,
    challenger: dict[str, list[tuple[bool, bool]]],
    champion: dict[str, list[tuple[bool, bool]]],
    config: GateConfig,
) -> ScopeResult:
    """Paired bootstrap of Δrecall / ΔBA over the inspections both versions decided, and the rule."""
    units = sorted(set(challenger) & set(champion))
    if not units:
        raise ValueError(f"{scope}: the two versions share no test inspection")
    a, b = _unit_counts(units, challenger), _unit_counts(units, champion)
    ra, ba_a = _rates(a.sum(axis=0).astype(np.float64))
    rb, ba_b = _rates(b.sum(axis=0).astype(np.float64))
    w = bootstrap_weights(len(units), config.resamples, config.seed).astype(np.float64)
    rec_a, bal_a = _rates(w @ a.astype(np.float64))
    rec_b, bal_b = _rates(w @ b.astype(np.float64))
    alpha = 1.0 - config.confidence
    d_rec, d_bal = rec_a - rec_b, bal_a - bal_b
    lo, hi = alpha / 2.0, 1.0 - alpha / 2.0
    d_recall = Interval(float(ra - rb), float(np.quantile(d_rec, lo)), float(np.quantile(d_rec, hi)))
    d_ba = Interval(float(ba_a - ba_b), float(np.quantile(d_bal, lo)), float(np.quantile(d_bal, hi)))
    problems = []
    if d_recall.low < -config.margin:
        problems.append(
            f"crystal recall may be worse by more than {config.margin:g}: Δrecall {d_recall.observed:+.4f}, "
            f"lower bound {d_recall.low:+.4f}"
        )
    if config.require_ba_gain and d_ba.low <= 0.0:
        problems.append(f"balanced accuracy is not confidently better: ΔBA lower bound {d_ba.low:+.4f}")
    elif not config.require_ba_gain and d_ba.high < 0.0:
        problems.append(f"balanced accuracy is confidently worse: ΔBA {d_ba.observed:+.4f}, upper {d_ba.high:+.4f}")
    n_crystal = int(np.count_nonzero((a[:, 0] + a[:, 1]) > 0))
    return ScopeResult(
        scope, len(units), n_crystal, float(ra), float(rb), float(ba_a), float(ba_b), d_recall, d_ba, problems
    )


def evaluate_gate(
    challenger: Sequence[Prediction],
    champion: Sequence[Prediction],
    config: GateConfig | None = None,
    *,
    modes: Sequence[str] | None = None,
    fused: bool = True,
) -> GateReport:
    """Gate report per mode (``modes``, default those in both) and fused per inspection."""
    cfg = config or GateConfig()
    chal, champ = list(challenger), list(champion)
    if modes is None:
        modes = sorted({p.mode for p in chal} & {p.mode for p in champ})
    scopes = [compare_scope(m, mode_decisions(chal, m), mode_decisions(champ, m), cfg) for m in modes]
    if fused:
        scopes.append(compare_scope(FUSED, fused_decisions(chal), fused_decisions(champ), cfg))
    return GateReport(cfg, scopes)
