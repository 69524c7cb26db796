"""The demo's figure: recall / precision / balanced accuracy per model version, and a confusion matrix each."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class PlotEntry:
    """One model generation: its name, the four confusion counts and its metrics (fractions)."""

    name: str
    recall: float
    precision: float
    balanced_accuracy: float
    tp: int
    fn: int
    fp: int
    tn: int


def loop_figure(entries: Sequence[PlotEntry], out: Path, *, title: str = "Lab-in-the-Loop on facility B") -> Path:
    """Write a PNG: a bar chart of the metrics per version, then one confusion matrix per version."""
    if not entries:
        raise ValueError("nothing to plot: no model versions")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(entries)
    fig, axes = plt.subplots(1, 1 + n, figsize=(4.2 + 3.2 * n, 3.8), gridspec_kw={"width_ratios": [1.6] + [1] * n})
    bars = axes[0]
    metrics = (("recall", "recall"), ("balanced_accuracy", "balanced acc."), ("precision", "precision"))
    width = 0.8 / len(metrics)
    xs = range(n)
    colours = ("#2e7d32", "#1565c0", "#9e9e9e")
    for k, ((attr, label), colour) in enumerate(zip(metrics, colours, strict=True)):
        vals = [100.0 * getattr(e, attr) for e in entries]
        pos = [x + (k - 1) * width for x in xs]
        bars.bar(pos, vals, width, label=label, color=colour)
        for p, v in zip(pos, vals, strict=True):
            bars.text(p, v + 1, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
    bars.set_xticks(list(xs), [e.name for e in entries], fontsize=8)
    bars.set_ylim(0, 110)
    bars.set_ylabel("% on the facility-B test set")
    bars.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)
    bars.set_title(title, fontsize=9)
    for ax, e in zip(axes[1:], entries, strict=True):
        grid = [[e.tp, e.fn], [e.fp, e.tn]]
        ax.imshow(grid, cmap="Greens")
        for i in range(2):
            for j in range(2):
                ax.text(j, i, str(grid[i][j]), ha="center", va="center", fontsize=11)
        ax.set_xticks([0, 1], ["crystal", "other"], fontsize=8)
        ax.set_yticks([0, 1], ["crystal", "other"], fontsize=8)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(e.name, fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
