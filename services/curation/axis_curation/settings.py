"""Settings of the curation service (AXIS_CURATION__*), on top of the shared groups."""

from __future__ import annotations

from typing import Any, ClassVar

from axis_adapters.settings import ServiceSettings
from axis_contracts.scheme import DEFAULT_SCHEME, ScoreScheme
from pydantic import BaseModel, Field, SecretStr


class CurationOptions(BaseModel):
    """Curation-specific options."""

    host: str = "127.0.0.1"
    port: int = Field(default=8085, ge=0, le=65535)
    consensus_min: int = Field(default=2, ge=1, description="agreeing curator labels that resolve an item")
    session_hours: float = Field(default=12.0, gt=0)
    api_token_days: float = Field(default=7.0, gt=0)
    cookie_secure: bool = Field(default=False, description="set True behind HTTPS")
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)
    bootstrap_admin: bool = Field(default=True, description="dev mode: create 'admin' with a printed password")
    max_image_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    queue_page: int = Field(default=50, ge=1, le=1000)
    score_scheme: ScoreScheme = Field(default_factory=lambda: DEFAULT_SCHEME)
    dataset_defaults: dict[str, Any] = Field(
        default_factory=dict, description="DatasetConfig overrides applied to every export before the request's"
    )
    producer: str = "curation"
    consume_events: bool = Field(
        default=True, description="serve also keeps the read model from the other services' events (projector)"
    )
    read_model_batch: int = Field(default=500, ge=1, le=10_000, description="records per read-model transaction")
    read_model_stall_after_s: float = Field(default=120.0, gt=0, description="/health: stalled after this long")
    patchmap_url: str | None = Field(
        default=None, description="patch-map server (python -m axis_inference.patchmaps), e.g. http://127.0.0.1:8084"
    )
    patchmap_token: SecretStr | None = Field(
        default=None, description="its bearer token (AXIS_INFERENCE__METRICS_TOKEN)"
    )


class CurationSettings(ServiceSettings):
    """Everything the curation service reads from the environment."""

    service_schema: ClassVar[str | None] = "curation"
    curation: CurationOptions = Field(default_factory=CurationOptions)
