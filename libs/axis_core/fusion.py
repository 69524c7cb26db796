"""Fusion of per-mode crystal probabilities into one score per inspection (pure logic, no torch).

Rule: the fused probability is the maximum over the modes scored so far (a crystal visible in either
visible light or UV counts). A probability of exactly 0.0 is a real score, never "missing": missing modes
are simply absent from the mapping.

Label choice: the fused label is decided at the threshold of the mode that gave the maximum, because the
fused probability *is* that mode's probability, and each mode's model has its own calibrated threshold.
Ties (two modes with the same maximum probability) go to the mode whose own label is ``crystal`` if any
(the lower threshold), then to the alphabetically first mode, so the result never depends on arrival order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Label = Literal["crystal", "other"]


@dataclass(frozen=True)
class ModeProbability:
    """One mode's crystal probability and the decision threshold of the model that produced it."""

    probability: float
    threshold: float

    def __post_init__(self) -> None:
        for name in ("probability", "threshold"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value!r}")

    @property
    def label(self) -> Label:
        """'crystal' when the probability reaches the threshold."""
        return "crystal" if self.probability >= self.threshold else "other"


@dataclass(frozen=True)
class FusedScore:
    """Fused result of an inspection: max probability, its mode, that mode's threshold and the label."""

    probability: float
    label: Label
    threshold: float
    mode: str


def fuse(scores: Mapping[str, ModeProbability]) -> FusedScore:
    """Fuse the modes scored so far: max probability, labelled at the threshold of the mode giving the max."""
    if len(scores) == 0:
        raise ValueError("nothing to fuse: no mode has been scored yet")
    best_mode = min(
        scores,
        key=lambda m: (-scores[m].probability, scores[m].label != "crystal", scores[m].threshold, m),
    )
    best = scores[best_mode]
    return FusedScore(probability=best.probability, label=best.label, threshold=best.threshold, mode=best_mode)


def fuse_update(
    previous: Mapping[str, ModeProbability], mode: str, score: ModeProbability
) -> tuple[dict[str, ModeProbability], FusedScore]:
    """Add (or replace, on a re-score) one mode's score and fuse again; returns the new mapping and result."""
    merged = dict(previous)
    merged[mode] = score
    return merged, fuse(merged)
