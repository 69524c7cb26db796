"""Configuration of the dataset builder: every stage can be switched off, every threshold set."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ConsensusConfig(_Frozen):
    """Label consensus: which curated disagreements are trusted, and with which label."""

    enabled: bool = True
    min_curators: int = Field(
        default=2, ge=1, description="k: curators whose latest label must agree (1 for a small lab)"
    )
    drop_if_any_unusable: bool = True


class ImageQCConfig(_Frozen):
    """Image QC thresholds, measured on the 8-bit grayscale image (values 0-255)."""

    enabled: bool = True
    min_width: int = Field(default=64, ge=1)
    min_height: int = Field(default=64, ge=1)
    max_width: int = Field(default=20000, ge=1)
    max_height: int = Field(default=20000, ge=1)
    min_std: float = Field(default=2.0, ge=0.0, description="blank: grey-level standard deviation below this")
    max_white_fraction: float = Field(default=0.25, ge=0.0, le=1.0, description="saturated: fraction of pixels at 255")
    max_black_fraction: float = Field(default=1.0, ge=0.0, le=1.0, description="fraction of pixels at 0 (1.0 = off)")
    min_laplacian_var: float = Field(
        default=2.0,
        ge=0.0,
        description="out of focus: variance of the Laplacian below this; 8-bit rounding alone gives about 1.7-1.9 "
        "on a perfectly smooth image, the AXIS samples measure 37-50 sharp and 1-1.8 after a strong blur",
    )

    @model_validator(mode="after")
    def _sizes(self) -> ImageQCConfig:
        if self.min_width > self.max_width or self.min_height > self.max_height:
            raise ValueError("image_qc: min_width/min_height must not exceed max_width/max_height")
        return self


class UniquenessConfig(_Frozen):
    """Uniqueness: one copy per identical image, one inspection per drop and time window."""

    enabled: bool = True
    content_hash: bool = True
    drop_window: bool = True
    window_hours: float = Field(default=72.0, gt=0.0)
    keep: Literal["latest", "earliest"] = Field(
        default="latest",
        description="which inspection of a window survives; latest: crystals grow, so the last look is the truest",
    )


class SimilarityConfig(_Frozen):
    """Similarity: drop images whose perceptual hash is within a Hamming distance of one already kept."""

    enabled: bool = True
    hash: Literal["phash", "dhash"] = "phash"
    max_distance: int = Field(
        default=5, ge=0, le=64, description="Hamming distance (of 64 bits) counted as near-duplicate"
    )
    max_distance_by_mode: dict[str, int] = Field(default_factory=dict)

    def distance_for(self, mode: str) -> int:
        """Threshold for one imaging mode (comparisons only happen within a mode)."""
        return self.max_distance_by_mode.get(mode, self.max_distance)


class TestGuardConfig(_Frozen):
    """Test-set guard: nothing from a plate of the frozen test set reaches a training set."""

    enabled: bool = True
    test_plates: tuple[str, ...] = ()

    @field_validator("test_plates", mode="after")
    @classmethod
    def _sorted(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        # sorted and unique so that the config (and the dataset card) serialises identically every time
        return tuple(sorted(set(v)))


class SplitConfig(_Frozen):
    """Train/validation split, grouped by plate and stratified by class."""

    enabled: bool = True
    train_ratio: float = Field(default=0.8, gt=0.0, le=1.0)
    val_ratio: float = Field(default=0.2, ge=0.0, lt=1.0)
    seed: int = 0

    @model_validator(mode="after")
    def _ratios(self) -> SplitConfig:
        if abs(self.train_ratio + self.val_ratio - 1.0) > 1e-9:
            raise ValueError(f"split: train_ratio + val_ratio must be 1 (got {self.train_ratio} + {self.val_ratio})")
        return self


class DatasetConfig(_Frozen):
    """All settings of one dataset build; serialised into the dataset card."""

    consensus: ConsensusConfig = ConsensusConfig()
    image_qc: ImageQCConfig = ImageQCConfig()
    image_qc_by_mode: dict[str, ImageQCConfig] = Field(
        default_factory=dict, description="per imaging mode overrides of image_qc (UV fields are mostly black)"
    )
    uniqueness: UniquenessConfig = UniquenessConfig()
    similarity: SimilarityConfig = SimilarityConfig()
    test_guard: TestGuardConfig = TestGuardConfig()
    split: SplitConfig = SplitConfig()
    analysis_max_side: int = Field(default=1024, ge=32, description="images are reduced to this side before measuring")

    def image_qc_for(self, mode: str) -> ImageQCConfig:
        """Image QC thresholds for one imaging mode."""
        return self.image_qc_by_mode.get(mode, self.image_qc)

    def with_test_plates(self, plates: Iterable[str]) -> DatasetConfig:
        """Copy with the frozen test set's plates added to the guard."""
        merged = tuple(sorted(set(self.test_guard.test_plates) | set(plates)))
        guard = TestGuardConfig(enabled=self.test_guard.enabled, test_plates=merged)
        return self.model_copy(update={"test_guard": guard})
