"""Binary crystal-detection metrics in numpy: recall, precision, balanced accuracy, F1, confusion, PR curve.

Conventions: the positive class is ``crystal``. Labels may be strings (``crystal``/``other``), booleans
(True = crystal) or integer ids (``positive_id``, default 1, is crystal). An image is predicted crystal
when P(crystal) >= threshold. A ratio with an empty denominator (e.g. precision with no predicted
crystal) is 0.0, as scikit-learn's ``zero_division=0``, so that the numbers stay JSON/MLflow friendly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

CLASS_NAMES: tuple[str, str] = ("crystal", "other")


def to_crystal_mask(y_true: ArrayLike, *, positive_id: int = 1) -> NDArray[np.bool_]:
    """True where a label means crystal; raises ValueError on an unknown string label."""
    arr = np.asarray(y_true)
    if arr.dtype == np.bool_:
        return arr.astype(bool)
    if arr.dtype.kind in "iu":
        return arr == positive_id
    if arr.dtype.kind in "US" or arr.dtype == object:
        labels = np.char.lower(arr.astype(str))
        unknown = sorted(set(labels.tolist()) - set(CLASS_NAMES))
        if unknown:
            raise ValueError(f"labels must be 'crystal' or 'other' (or integer ids); got {unknown[:5]}")
        return labels == "crystal"
    raise ValueError(f"labels must be strings, booleans or integer ids, not {arr.dtype}")


def _probabilities(p: ArrayLike, n: int) -> NDArray[np.float64]:
    arr = np.asarray(p, dtype=np.float64).ravel()
    if arr.shape[0] != n:
        raise ValueError(f"{n} labels but {arr.shape[0]} probabilities")
    if not np.all(np.isfinite(arr)):
        raise ValueError("probabilities must be finite numbers")
    return arr


def _ratio(num: int, den: int) -> float:
    return float(num) / den if den else 0.0


@dataclass(frozen=True)
class ConfusionMatrix:
    """2x2 counts; rows = true class, columns = predicted class, both in order (crystal, other)."""

    tp: int
    fn: int
    fp: int
    tn: int

    @property
    def matrix(self) -> NDArray[np.int64]:
        """[[TP, FN], [FP, TN]]."""
        return np.array([[self.tp, self.fn], [self.fp, self.tn]], dtype=np.int64)

    def to_dict(self) -> dict[str, dict[str, int]]:
        """{true_class: {predicted_class: count}} with labelled rows and columns."""
        return {
            "crystal": {"crystal": self.tp, "other": self.fn},
            "other": {"crystal": self.fp, "other": self.tn},
        }


@dataclass(frozen=True)
class BinaryMetrics:
    """Metrics of a binary crystal/other classifier at one threshold."""

    threshold: float
    n: int
    n_crystal: int
    recall: float
    precision: float
    specificity: float
    balanced_accuracy: float
    f1: float
    accuracy: float
    confusion: ConfusionMatrix
    per_subtype_recall: dict[str, float] = field(default_factory=dict)
    per_subtype_count: dict[str, int] = field(default_factory=dict)

    def scalars(self) -> dict[str, float]:
        """Flat name -> value dict (e.g. for MLflow log_metrics); sub-types as ``recall_<subtype>``."""
        out = {
            "recall": self.recall,
            "precision": self.precision,
            "specificity": self.specificity,
            "balanced_accuracy": self.balanced_accuracy,
            "f1": self.f1,
            "accuracy": self.accuracy,
            "threshold": self.threshold,
        }
        out.update({f"recall_{k}": v for k, v in self.per_subtype_recall.items()})
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form including the confusion matrix."""
        return {
            **self.scalars(),
            "n": self.n,
            "n_crystal": self.n_crystal,
            "confusion": self.confusion.to_dict(),
            "per_subtype_recall": dict(self.per_subtype_recall),
            "per_subtype_count": dict(self.per_subtype_count),
        }


def binary_metrics(
    y_true: ArrayLike,
    p_crystal: ArrayLike,
    threshold: float = 0.5,
    *,
    sub_types: Sequence[str | None] | None = None,
    positive_id: int = 1,
) -> BinaryMetrics:
    """Metrics at ``threshold``; with ``sub_types``, the share of each sub-type predicted as its true class.

    For a crystal sub-type (e.g. microcrystals) that share is its crystal recall; for an ``other``
    sub-type it is the specificity within that sub-type. Items whose sub-type is None are skipped there.
    """
    truth = to_crystal_mask(y_true, positive_id=positive_id).ravel()
    p = _probabilities(p_crystal, truth.shape[0])
    pred = p >= threshold
    tp = int(np.count_nonzero(truth & pred))
    fn = int(np.count_nonzero(truth & ~pred))
    fp = int(np.count_nonzero(~truth & pred))
    tn = int(np.count_nonzero(~truth & ~pred))
    recall = _ratio(tp, tp + fn)
    precision = _ratio(tp, tp + fp)
    specificity = _ratio(tn, tn + fp)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    per_recall: dict[str, float] = {}
    per_count: dict[str, int] = {}
    if sub_types is not None:
        if len(sub_types) != truth.shape[0]:
            raise ValueError(f"{truth.shape[0]} labels but {len(sub_types)} sub-types")
        correct = pred == truth
        for name in sorted({s for s in sub_types if s is not None}):
            mask = np.array([s == name for s in sub_types], dtype=bool)
            per_count[name] = int(mask.sum())
            per_recall[name] = _ratio(int(np.count_nonzero(correct & mask)), per_count[name])
    return BinaryMetrics(
        threshold=float(threshold),
        n=int(truth.shape[0]),
        n_crystal=int(truth.sum()),
        recall=recall,
        precision=precision,
        specificity=specificity,
        balanced_accuracy=(recall + specificity) / 2.0,
        f1=f1,
        accuracy=_ratio(tp + tn, truth.shape[0]),
        confusion=ConfusionMatrix(tp=tp, fn=fn, fp=fp, tn=tn),
        per_subtype_recall=per_recall,
        per_subtype_count=per_count,
    )


@dataclass(frozen=True)
class PRCurve:
    """Precision and recall at each distinct score used as threshold, thresholds in decreasing order."""

    thresholds: NDArray[np.float64]
    precision: NDArray[np.float64]
    recall: NDArray[np.float64]

    def average_precision(self) -> float:
        """Step-wise area under the PR curve: sum over thresholds of (recall gain) x precision."""
        gains = np.diff(np.concatenate([[0.0], self.recall]))
        return float(np.sum(gains * self.precision))


def pr_curve(y_true: ArrayLike, p_crystal: ArrayLike, *, positive_id: int = 1) -> PRCurve:
    """PR curve points: for each distinct P(crystal) t (high to low), precision and recall of ``p >= t``."""
    truth = to_crystal_mask(y_true, positive_id=positive_id).ravel()
    p = _probabilities(p_crystal, truth.shape[0])
    if p.size == 0:
        empty = np.zeros(0, dtype=np.float64)
        return PRCurve(empty, empty, empty)
    order = np.argsort(-p, kind="stable")
    p_sorted, t_sorted = p[order], truth[order]
    tps = np.cumsum(t_sorted)
    fps = np.cumsum(~t_sorted)
    last = np.r_[np.nonzero(np.diff(p_sorted))[0], p_sorted.size - 1]  # last index of each distinct score
    tp, fp = tps[last].astype(np.float64), fps[last].astype(np.float64)
    n_pos = float(truth.sum())
    recall = tp / n_pos if n_pos else np.zeros_like(tp)
    return PRCurve(thresholds=p_sorted[last], precision=tp / (tp + fp), recall=recall)
