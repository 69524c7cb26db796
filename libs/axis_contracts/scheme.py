"""The facility's user-score scheme and its mapping to the binary crystal/other label."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

BinaryLabel = Literal["crystal", "other"]

DEFAULT_CLASSES: dict[str, BinaryLabel] = {
    "clear": "other",
    "denatured": "other",
    "precipitate": "other",
    "phase_separation": "other",
    "microcrystals": "crystal",
    "single_crystals": "crystal",
    "interesting": "other",
}

# Colours used on the plate map for the users' scores (hex RGB).
DEFAULT_COLOURS: dict[str, str] = {
    "clear": "#f2f2f2",
    "denatured": "#8c6d46",
    "precipitate": "#b35806",
    "phase_separation": "#7570b3",
    "microcrystals": "#1b9e77",
    "single_crystals": "#006d2c",
    "interesting": "#e7298a",
}


class UnknownScoreClass(ValueError):
    """A user score whose class is not in the facility's scheme."""

    def __init__(self, raw: str, allowed: list[str]) -> None:
        super().__init__(f"unknown score class {raw!r}; allowed classes: {', '.join(allowed)}")
        self.raw = raw
        self.allowed = allowed


class ScoreScheme(BaseModel):
    """Which raw user-score classes mean ``crystal`` and which mean ``other`` (configuration)."""

    model_config = ConfigDict(frozen=True)

    name: str = "axis-7"
    classes: dict[str, BinaryLabel] = Field(default_factory=lambda: dict(DEFAULT_CLASSES))
    colours: dict[str, str] = Field(default_factory=lambda: dict(DEFAULT_COLOURS))

    @model_validator(mode="after")
    def _check(self) -> ScoreScheme:
        if not self.classes:
            raise ValueError("a score scheme needs at least one class")
        if "crystal" not in self.classes.values():
            raise ValueError("a score scheme needs at least one class that maps to 'crystal'")
        return self

    @property
    def allowed(self) -> list[str]:
        """Class names in configuration order."""
        return list(self.classes)

    def normalise(self, raw: str) -> str:
        """The canonical class name for ``raw`` (case and spaces ignored) or UnknownScoreClass."""
        key = raw.strip().lower().replace(" ", "_").replace("-", "_")
        for name in self.classes:
            if name.lower() == key:
                return name
        raise UnknownScoreClass(raw, self.allowed)

    def to_label(self, raw: str) -> BinaryLabel:
        """Map a raw class to ``crystal``/``other``; raises UnknownScoreClass naming the allowed classes."""
        return self.classes[self.normalise(raw)]

    def colour(self, raw: str) -> str:
        """Plate-map colour of a class (grey when the scheme gives none)."""
        return self.colours.get(self.normalise(raw), "#999999")

    @classmethod
    def from_mapping(cls, classes: Mapping[str, str], name: str = "custom") -> ScoreScheme:
        """Build a scheme from a ``{class: 'crystal'|'other'}`` mapping (e.g. parsed from JSON)."""
        return cls.model_validate({"name": name, "classes": dict(classes), "colours": {}})


DEFAULT_SCHEME = ScoreScheme()
