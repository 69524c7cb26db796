"""Plate-map colour scale: ML crystal probability as the opacity of one green, on a non-linear scale.

alpha(p) = clamp((p - 0.4) / 0.6, 0, 1) ** 0.7

Below 40 % a well is invisible (alpha 0); above, the colour rises quickly (p = 0.5 -> 0.29,
0.6 -> 0.46, 0.7 -> 0.62, 0.8 -> 0.75, 0.9 -> 0.88, 1.0 -> 1). The exponent < 1 makes the first steps
above 40 % visible at once, so that a 55 % well already stands out from the background. The page
draws the fill as rgba(CRYSTAL_GREEN, alpha) with the alpha the API computed here (one source of truth).
"""

from __future__ import annotations

import math

from axis_contracts.scheme import ScoreScheme, UnknownScoreClass

UNKNOWN_GREY = "#999999"  # a user-score class the scheme does not know
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


def display_colour(hex_colour: str, *, max_luminance: float = 0.45) -> str:
    """A scheme colour that stays visible on the page's white: too light ones (``clear`` #f2f2f2 would look
    like an empty well) are darkened, keeping their hue, until their relative luminance is ``max_luminance``."""
    text = hex_colour.strip().lstrip("#")
    if len(text) != 6:
        return hex_colour
    try:
        rgb = [int(text[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    except ValueError:
        return hex_colour

    def luminance(c: list[float]) -> float:
        lin = [x / 12.92 if x <= 0.04045 else ((x + 0.055) / 1.055) ** 2.4 for x in c]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]

    k = 1.0
    while luminance([x * k for x in rgb]) > max_luminance and k > 0.05:
        k -= 0.02
    return "#" + "".join(f"{round(x * k * 255):02x}" for x in rgb)


def class_colour(scheme: ScoreScheme, raw_class: str) -> str:
    """The scheme's colour of a user-score class; grey for a class the scheme does not know (old rows, another
    facility's scheme) — every page draws unknown classes the one way."""
    try:
        return scheme.colour(raw_class)
    except UnknownScoreClass:
        return UNKNOWN_GREY
