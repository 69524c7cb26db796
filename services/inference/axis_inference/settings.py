"""Settings of the inference service: shared connection groups plus ``AXIS_INFERENCE__*`` options."""

from __future__ import annotations

from typing import ClassVar, Literal

from axis_adapters.settings import ServiceSettings
from pydantic import BaseModel, Field, SecretStr

CONSUMER_GROUP = "axis-inference"
# = axis_model.gpu.VARIANT_PATTERN (not imported: these settings load without torch)
GPU_VARIANT_PATTERN = r"^(fp32|bf16|fp16)(-(merged|lora))?(\+(graph|compile))*$"


class InferenceOptions(BaseModel):
    """Batching, limits, model polling and the HTTP port of the inference service."""

    batch_size: int = Field(default=16, ge=1, le=1024)
    batch_timeout_ms: int = Field(default=200, ge=1, le=60_000)
    poll_seconds: float = Field(default=10.0, gt=0, le=30)
    bootstrap_bundle: str | None = Field(
        default=None, description="bundle directory used for every mode when no champion is registered"
    )
    modes: list[str] = Field(default_factory=lambda: ["visible", "uv"])
    max_object_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    max_pixels: int = Field(default=60_000_000, ge=1, description="decompression-bomb guard")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8081, ge=0, le=65535)
    metrics_token: SecretStr | None = Field(
        default=None, description="bearer token for /metrics (closed without one; /health is open)"
    )
    io_threads: int = Field(default=4, ge=1, le=64)
    shutdown_timeout_s: float = Field(default=30.0, gt=0)
    retry_backoff_s: float = Field(default=0.5, ge=0)
    retry_backoff_max_s: float = Field(default=15.0, ge=0)
    stall_after_s: float = Field(
        default=300.0, gt=0, description="/health says stalled when events wait and no batch finished this long"
    )
    lag_poll_s: float = Field(default=5.0, gt=0, description="how often the consumer lag is read")
    cache_dir: str | None = Field(default=None, description="where downloaded bundles go (default: a temp dir)")
    variant: Literal["fp32", "bf16", "bf16mix", "int8mix", "int8"] = Field(
        default="bf16mix", description="precision of axis_model's fast path (merged LoRA); the bench measures each"
    )
    score_chunk: int | None = Field(
        default=None, ge=1, description="images per forward pass (default: 8 at <= 336 px, 2 above)"
    )
    score_in: Literal["process", "thread"] = Field(
        default="process",
        description="where the CPU model runs: a child process that owns the cores (measured 20-35 % faster per "
        "image than a worker thread of the service) or a thread of the service; on a GPU always a thread",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="where scoring runs: auto = axis_model.gpu when torch sees a CUDA device, else CPU"
    )
    gpu_variant: str = Field(
        default="bf16-merged",
        pattern=GPU_VARIANT_PATTERN,
        description="axis_model.gpu variant on a GPU: <fp32|bf16|fp16>-<merged|lora>[+graph][+compile]",
    )
    gpu_batch: int | None = Field(
        default=None, ge=1, le=1024, description="images per forward on a GPU (default 64 up to 518 px)"
    )


class ModelOptions(BaseModel):
    """Where the DINOv2 base weights are (``AXIS_MODEL__BASE_PATH``); empty: the bundle's own reference."""

    base_path: str | None = None


class InferenceSettings(ServiceSettings):
    """Everything the inference service reads from the environment."""

    service_schema: ClassVar[str | None] = "inference"
    inference: InferenceOptions = Field(default_factory=InferenceOptions)
    model: ModelOptions = Field(default_factory=ModelOptions)
