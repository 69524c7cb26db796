"""Configuration objects of the classifier: which DINOv2 base, which LoRA, which labels."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Index 0 = crystal, 1 = other, as in the published AXIS models; P(crystal) = softmax[:, 0].
LABELS: tuple[str, str] = ("crystal", "other")
CRYSTAL_INDEX = 0
MODES: tuple[str, str] = ("visible", "uv")

TINY_CONFIG: dict[str, Any] = {
    "hidden_size": 64,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 256,
    "image_size": 112,
    "patch_size": 14,
}
# DINOv2-base (facebook/dinov2-base architecture) at the AXIS input size.
BASE_CONFIG: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "mlp_ratio": 4,
    "image_size": 518,
    "patch_size": 14,
}


class BaseSpec(BaseModel):
    """Where the DINOv2 base comes from: a config (seeded random init), a local directory, or a hub id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["config", "path", "hub"]
    config: dict[str, Any] | None = None
    path: str | None = None
    seed: int = 0

    @model_validator(mode="after")
    def _consistent(self) -> BaseSpec:
        if self.kind == "config" and self.config is None:
            raise ValueError("BaseSpec(kind='config') needs config (a Dinov2Config dict)")
        if self.kind in ("path", "hub") and not self.path:
            raise ValueError(f"BaseSpec(kind={self.kind!r}) needs path (a local directory or a hub id)")
        return self

    @classmethod
    def tiny(cls, seed: int = 0) -> BaseSpec:
        """Tiny random DINOv2 (64 wide, 4 layers, 112 px) for tests and CPU demos."""
        return cls(kind="config", config=dict(TINY_CONFIG), seed=seed)

    @classmethod
    def base(cls, seed: int = 0) -> BaseSpec:
        """DINOv2-base architecture (86.6 M parameters at 518 px), random init from a seed."""
        return cls(kind="config", config=dict(BASE_CONFIG), seed=seed)

    @classmethod
    def from_path(cls, path: str) -> BaseSpec:
        """A local directory holding a saved DINOv2 (config.json + weights)."""
        return cls(kind="path", path=path)

    @classmethod
    def named(cls, name: str) -> BaseSpec:
        """'tiny' or 'base' config, else a local directory if it exists, else a hub id."""
        if name == "tiny":
            return cls.tiny()
        if name == "base":
            return cls.base()
        from pathlib import Path

        return cls(kind="path" if Path(name).is_dir() else "hub", path=name)


class LoraSpec(BaseModel):
    """LoRA hyper-parameters (AXIS defaults: r=25, alpha=20, dropout 0.1, every backbone linear layer)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    r: int = Field(default=25, ge=1)
    alpha: float = Field(default=20, gt=0)
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    target_modules: str | list[str] = "all-linear"
    head_modules: list[str] = Field(default_factory=lambda: ["classifier"])
