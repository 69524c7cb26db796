"""Synthetic crystallization-drop images (visible and UV) with facility domains, and the robot's plate layout."""

from axis_synth.codec import real_size_jpeg, to_jpeg_bytes, to_png_bytes, write_jpeg
from axis_synth.domain import DOMAIN_A, DOMAIN_B, DOMAINS, REAL_SIZE, Domain, WellShape
from axis_synth.planner import PlannedImage, inspection_days, plan_plates, stable_seed
from axis_synth.render import crystal_mask, render, render_array
from axis_synth.spec import (
    CRYSTAL_OUTCOMES,
    DEFAULT_CLASS_MIX,
    MODES,
    OUTCOMES,
    SUBTYPES,
    USER_SCORE_CLASS,
    DropSpec,
    Label,
    Mode,
    Outcome,
    label_of,
)

__all__ = [
    "CRYSTAL_OUTCOMES",
    "DEFAULT_CLASS_MIX",
    "DOMAINS",
    "DOMAIN_A",
    "DOMAIN_B",
    "MODES",
    "OUTCOMES",
    "REAL_SIZE",
    "SUBTYPES",
    "USER_SCORE_CLASS",
    "Domain",
    "DropSpec",
    "Label",
    "Mode",
    "Outcome",
    "PlannedImage",
    "WellShape",
    "crystal_mask",
    "domain_shift_check",
    "inspection_days",
    "label_of",
    "plan_plates",
    "real_size_jpeg",
    "render",
    "render_array",
    "stable_seed",
    "to_jpeg_bytes",
    "to_png_bytes",
    "write_jpeg",
]


def domain_shift_check(*args: object, **kwargs: object) -> object:
    """Train a cheap classifier on A and B and report recall/balanced accuracy (see axis_synth.shift)."""
    from axis_synth.shift import domain_shift_check as check

    return check(*args, **kwargs)  # type: ignore[arg-type]
