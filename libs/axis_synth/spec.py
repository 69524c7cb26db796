"""What a synthetic drop contains: outcome class, sub-type, growth and the seed of its geometry."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

Outcome = Literal["clear", "precipitate", "phase_separation", "microcrystals", "needles", "single_crystals"]
Mode = Literal["visible", "uv"]
Label = Literal["crystal", "other"]

OUTCOMES: tuple[str, ...] = get_args(Outcome)
MODES: tuple[str, ...] = get_args(Mode)
CRYSTAL_OUTCOMES: frozenset[str] = frozenset({"microcrystals", "needles", "single_crystals"})

SUBTYPES: dict[str, tuple[str, ...]] = {
    "clear": ("clear", "debris"),
    "precipitate": ("light", "heavy"),
    "phase_separation": ("droplets", "dense_droplets"),
    "microcrystals": ("shower", "clumps"),
    "needles": ("needles", "clusters"),
    "single_crystals": ("single", "several"),
}

# How a scientist would score each outcome in the facility's default 7-class scheme (axis_contracts.scheme).
USER_SCORE_CLASS: dict[str, str] = {
    "clear": "clear",
    "precipitate": "precipitate",
    "phase_separation": "phase_separation",
    "microcrystals": "microcrystals",
    "needles": "microcrystals",
    "single_crystals": "single_crystals",
}

DEFAULT_CLASS_MIX: dict[str, float] = {
    "clear": 0.35,
    "precipitate": 0.25,
    "phase_separation": 0.10,
    "microcrystals": 0.10,
    "needles": 0.10,
    "single_crystals": 0.10,
}


def label_of(outcome: str, growth: float = 1.0) -> Label:
    """Binary ground truth: ``crystal`` for a crystalline outcome whose crystals have appeared."""
    return "crystal" if outcome in CRYSTAL_OUTCOMES and growth > 0.0 else "other"


class DropSpec(BaseModel):
    """One drop at one inspection; ``drop_seed`` fixes its geometry across inspections and modes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    outcome: Outcome
    subtype: str | None = None
    growth: float = Field(default=1.0, ge=0.0, le=1.0)
    drop_seed: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _check_subtype(self) -> DropSpec:
        allowed = SUBTYPES[self.outcome]
        if self.subtype is None:
            object.__setattr__(self, "subtype", allowed[0])
        elif self.subtype not in allowed:
            raise ValueError(f"sub-type {self.subtype!r} is not one of {', '.join(allowed)} for {self.outcome!r}")
        return self

    @property
    def label(self) -> Label:
        """``crystal`` or ``other`` as seen in this inspection."""
        return label_of(self.outcome, self.growth)

    @property
    def visible_outcome(self) -> str:
        """The class a perfect observer gives this inspection (crystalline drops look clear before nucleation)."""
        if self.outcome in CRYSTAL_OUTCOMES and self.growth <= 0.0:
            return "clear"
        return self.outcome
