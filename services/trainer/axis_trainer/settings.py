"""Settings of the trainer: shared connection groups plus ``AXIS_TRAINER__*`` and ``AXIS_MODEL__*`` options."""

from __future__ import annotations

from typing import ClassVar, Literal

from axis_adapters.settings import ServiceSettings
from pydantic import BaseModel, Field, SecretStr

CONSUMER_GROUP = "axis-trainer"


class TrainerOptions(BaseModel):
    """Hyper-parameters, the frozen test set and where work files go."""

    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=16, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    grad_accum: int = Field(default=1, ge=1)
    max_steps: int | None = Field(default=None, ge=1)
    target_recall: float = Field(default=0.95, gt=0, le=1)
    seed: int = 0
    device: str = "auto"
    log_every: int = Field(default=10, ge=1)
    torch_threads: int | None = Field(
        default=None, ge=1, description="torch CPU threads; 1 avoids OpenMP thrashing on a busy small machine"
    )
    start_from: Literal["champion", "base"] = Field(
        default="champion", description="champion: continue its adapter (base when there is none)"
    )
    test_manifest_uri: str | None = Field(
        default=None, description="frozen test set manifest; empty: the newest purpose=test row of `datasets`"
    )
    dataset_name_pattern: str | None = Field(
        default=None, description="regex: train only datasets whose name matches (others are acknowledged, skipped)"
    )
    work_dir: str | None = Field(default=None, description="bundles and downloads (default: a temp dir)")
    max_image_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    lora_r: int = Field(default=25, ge=1)
    lora_alpha: float = Field(default=20, gt=0)
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8086, ge=0, le=65535, description="/health and /metrics (0: a free port)")
    metrics_token: SecretStr | None = Field(default=None, description="bearer token for /metrics (open without)")


class ModelOptions(BaseModel):
    """Base weights: ``AXIS_MODEL__BASE_PATH`` (a local DINOv2 directory) or ``tiny`` / ``base`` configs."""

    base_path: str | None = None


class TrainerSettings(ServiceSettings):
    """Everything the trainer reads from the environment."""

    service_schema: ClassVar[str | None] = "trainer"
    trainer: TrainerOptions = Field(default_factory=TrainerOptions)
    model: ModelOptions = Field(default_factory=ModelOptions)
