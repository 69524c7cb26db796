"""MLflow run logging for one training: params, dataset inputs, per-epoch metrics, figures, provenance."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
from axis_core.metrics import BinaryMetrics, pr_curve

PACKAGES = ("torch", "transformers", "peft", "numpy", "mlflow", "axis-loop")


def package_versions(names: Sequence[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that decide the numbers (``?`` when one is missing)."""
    out = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "?"
    return out


def git_commit(cwd: str | Path | None = None) -> str:
    """HEAD commit of the working tree (suffix ``-dirty`` with local changes), or ``unknown``."""
    root = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"{sha}-dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def experiment_id(client: Any, name: str) -> str:
    """Id of the named experiment, created when missing."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    try:
        return str(client.create_experiment(name))
    except Exception:  # created concurrently by another process
        exp = client.get_experiment_by_name(name)
        if exp is None:
            raise
        return str(exp.experiment_id)


def log_params(client: Any, run_id: str, params: dict[str, Any]) -> None:
    """Log parameters in one batch (values as text, MLflow's 6000-char limit respected)."""
    from mlflow.entities import Param

    client.log_batch(run_id, params=[Param(str(k), str(v)[:6000]) for k, v in params.items()])


def log_metrics(client: Any, run_id: str, metrics: dict[str, float], step: int | None = None) -> None:
    """Log finite metrics in one batch."""
    import time

    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    batch = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if np.isfinite(v)]
    if batch:
        client.log_batch(run_id, metrics=batch)


def log_dataset(
    client: Any, run_id: str, *, name: str, version: str, manifest_uri: str, sha256: str, context: str
) -> None:
    """Record a dataset as an MLflow run input (source = the manifest URI, digest = its sha256)."""
    from mlflow.data.dataset_source_registry import resolve_dataset_source
    from mlflow.data.meta_dataset import MetaDataset
    from mlflow.entities import DatasetInput, InputTag

    dataset = MetaDataset(  # type: ignore[abstract]
        source=resolve_dataset_source(manifest_uri), name=f"{name}@{version}", digest=sha256[:36]
    )
    tags = [InputTag("mlflow.data.context", context), InputTag("manifest_sha256", sha256)]
    client.log_inputs(run_id, datasets=[DatasetInput(dataset._to_mlflow_entity(), tags)])


def confusion_figure(metrics: BinaryMetrics, title: str, note: str | None = None) -> Any:
    """Confusion matrix (rows = truth, columns = prediction; crystal first) as a matplotlib figure.

    ``note`` replaces the threshold line under the title (e.g. for fused decisions, each at its own threshold).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = metrics.confusion.matrix
    fig, ax = plt.subplots(figsize=(4, 3.6))
    ax.imshow(m, cmap="Blues")
    for (i, j), v in np.ndenumerate(m):
        ax.text(j, i, str(v), ha="center", va="center", color="black", fontsize=12)
    ax.set_xticks([0, 1], ["crystal", "other"])
    ax.set_yticks([0, 1], ["crystal", "other"])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{title}\n{note or f'threshold {metrics.threshold:.3f}'}", fontsize=9)
    fig.tight_layout()
    return fig


def pr_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str) -> Any:
    """Precision-recall curves, one per name → (is_crystal, P(crystal))."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4))
    for name, (truth, probs) in curves.items():
        curve = pr_curve(truth, probs)
        ax.step(curve.recall, curve.precision, where="post", label=f"{name} (AP {curve.average_precision():.3f})")
    ax.set_xlabel("crystal recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1.01)
    ax.set_ylim(0, 1.01)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def log_figure(client: Any, run_id: str, fig: Any, name: str) -> None:
    """Log a figure as a PNG artifact and close it."""
    import matplotlib.pyplot as plt

    try:
        client.log_figure(run_id, fig, name)
    finally:
        plt.close(fig)
