"""Decision threshold chosen on the validation split for a target crystal recall."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from axis_core.metrics import BinaryMetrics, binary_metrics, to_crystal_mask

DEFAULT_TARGET_RECALL = 0.95
DEFAULT_FALLBACK_THRESHOLD = 0.5


@dataclass(frozen=True)
class ThresholdChoice:
    """The chosen threshold, the validation metrics there, and why (``fallback`` says when no rule applied)."""

    threshold: float
    target_recall: float
    metrics: BinaryMetrics
    fallback: str | None = None

    @property
    def achieved(self) -> bool:
        """Whether the validation recall at the threshold reaches the target."""
        return self.metrics.recall >= self.target_recall


def choose_threshold(
    y_true: ArrayLike,
    p_crystal: ArrayLike,
    *,
    target_recall: float = DEFAULT_TARGET_RECALL,
    fallback_threshold: float = DEFAULT_FALLBACK_THRESHOLD,
    positive_id: int = 1,
) -> ThresholdChoice:
    """The highest threshold whose validation crystal recall is >= ``target_recall``.

    Recall only falls as the threshold rises, so the answer is the k-th highest crystal score with
    k = ceil(target x number of crystals): every crystal scoring at least that is caught, and any higher
    threshold would miss one too many. Fallback: with no crystal in the validation set the rule is
    undefined, and ``fallback_threshold`` (default 0.5) is returned with ``fallback`` set to the reason.
    """
    if not 0.0 < target_recall <= 1.0:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    truth = to_crystal_mask(y_true, positive_id=positive_id).ravel()
    p = np.asarray(p_crystal, dtype=np.float64).ravel()
    if p.shape[0] != truth.shape[0]:
        raise ValueError(f"{truth.shape[0]} labels but {p.shape[0]} probabilities")
    positives = np.sort(p[truth])[::-1]
    if positives.size == 0:
        reason = f"no crystal in the validation set; using the fallback threshold {fallback_threshold}"
        return ThresholdChoice(
            fallback_threshold,
            target_recall,
            binary_metrics(truth, p, fallback_threshold),
            reason,
        )
    k = max(1, math.ceil(target_recall * positives.size - 1e-9))
    threshold = float(positives[k - 1])
    return ThresholdChoice(threshold, target_recall, binary_metrics(truth, p, threshold))
