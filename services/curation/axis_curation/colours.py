"""Plate-map colour scale: ML crystal probability as the opacity of one green, on a non-linear scale.

alpha(p) = clamp((p - 0.4) / 0.6, 0, 1) ** 0.7

Below 40 % a well is invisible (alpha 0); above, the colour rises quickly (p = 0.5 -> 0.29,
0.6 -> 0.46, 0.7 -> 0.62, 0.8 -> 0.75, 0.9 -> 0.88, 1.0 -> 1). The exponent < 1 makes the first steps
above 40 % visible at once, so that a 55 % well already stands out from the background. The page
draws the fill as rgba(CRYSTAL_GREEN, alpha) with the alpha the API computed here (one source of truth).
"""

from __future__ import annotations

import math

CRYSTAL_GREEN = (0, 150, 60)
FLOOR = 0.4
GAMMA = 0.7


def crystal_alpha(probability: float, *, floor: float = FLOOR, gamma: float = GAMMA) -> float:
    """Opacity in [0, 1] of a well with this crystal probability (0 below ``floor``)."""
    if not math.isfinite(probability):
        return 0.0
    x = (probability - floor) / (1.0 - floor)
    x = min(1.0, max(0.0, x))
    return round(x**gamma, 4)


def crystal_fill(probability: float) -> str:
    """CSS colour of a well: the crystal green at the scale's opacity."""
    r, g, b = CRYSTAL_GREEN
    return f"rgba({r}, {g}, {b}, {crystal_alpha(probability):.3f})"
