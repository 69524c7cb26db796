"""Settings of the discrepancy service and the LIMS gateway (``AXIS_DISCREPANCY__*``, ``AXIS_LIMS__*``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Self

from axis_adapters.settings import ServiceSettings, refuse_default_secrets
from axis_contracts import DEFAULT_SCHEME, ScoreScheme, topics
from axis_core.routing import BetaPrior, RoutingPolicy
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator


class RoutingOptions(BaseModel):
    """Agreements routed to curators (``AXIS_DISCREPANCY__ROUTING__*``); docs/curation-routing.md."""

    agreements_per_day: int = Field(
        default=0, ge=0, description="most agreements routed to curators per UTC day (0: only disagreements)"
    )
    max_queue_share: float = Field(
        default=0.25, ge=0.0, lt=1.0, description="most share of the day's queue intake that agreements may take"
    )
    min_value: float = Field(
        default=0.05, ge=0.0, le=1.0, description="least chance that the curator overturns the model, to route"
    )
    prior_a: float = Field(default=1.0, gt=0.0, description="Beta prior of a user's error rate: overturned")
    prior_b: float = Field(default=9.0, gt=0.0, description="Beta prior of a user's error rate: confirmed")

    def policy(self) -> RoutingPolicy:
        """The pure policy these settings describe."""
        return RoutingPolicy(
            agreements_per_day=self.agreements_per_day,
            max_queue_share=self.max_queue_share,
            min_value=self.min_value,
            prior=BetaPrior(self.prior_a, self.prior_b),
        )


class DiscrepancyOptions(BaseModel):
    """Consumer group, topics and micro-batch size of the discrepancy service."""

    group_id: str = "axis-discrepancy"
    crystal_scored_topic: str = topics.CRYSTAL_SCORED
    user_scored_topic: str = topics.USER_SCORED
    # the robots' announcements: a user score that arrives before its ML score still finds its inspection
    image_captured_topic: str | None = topics.IMAGE_CAPTURED
    # curators' verdicts (CuratorLabelled): the items' status here, from which per-user reliability is computed
    curator_labelled_topic: str | None = topics.CURATOR_LABELLED
    max_records: int = Field(default=1000, ge=1, le=10_000)
    batch_timeout_ms: int = Field(default=100, ge=1)
    pool_size: int = Field(default=4, ge=1)
    retry_delay_s: float = Field(default=0.5, ge=0.0, description="first wait after a transient error (doubles)")
    retry_max_delay_s: float = Field(default=10.0, ge=0.0, description="cap of the wait between two attempts")
    retry_attempts: int = Field(
        default=8, ge=1, description="attempts of one delivery of a batch before it is NACKed and redelivered"
    )
    attempt_timeout_s: float = Field(default=30.0, gt=0.0, description="bound on one attempt of a batch")
    max_outage_s: float = Field(
        default=600.0, gt=0.0, description="exit 1 (for the supervisor) after failing transiently this long"
    )
    startup_attempts: int = Field(default=12, ge=1, description="tries to reach PostgreSQL and the broker at start")
    watchdog_interval_s: float = Field(default=2.0, gt=0.0, description="how often the consumer's liveness is checked")
    heartbeat_file: Path | None = Field(default=None, description="touched at each healthy check (liveness probe)")
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8082, ge=0, le=65535, description="/health and /metrics (0: a free port)")
    metrics_token: SecretStr | None = Field(default=None, description="bearer token for /metrics (open without)")
    stall_after_s: float = Field(
        default=300.0, gt=0, description="/health says stalled when events wait and no batch finished this long"
    )
    lag_poll_s: float = Field(default=5.0, gt=0, description="how often the consumer lag is read")
    routing: RoutingOptions = Field(default_factory=RoutingOptions)


class LimsOptions(BaseModel):
    """The LIMS side: API key of the HTTP gateway, the facility's score scheme, where the gateway listens."""

    api_key: SecretStr = SecretStr("axis-dev")
    score_scheme: ScoreScheme = Field(default_factory=lambda: DEFAULT_SCHEME)
    host: str = "127.0.0.1"
    port: int = 8070

    @field_validator("score_scheme", mode="before")
    @classmethod
    def _scheme_from_mapping(cls, v: Any) -> Any:
        # AXIS_LIMS__SCORE_SCHEME may be a whole scheme or just {"class": "crystal"|"other", ...}
        if isinstance(v, str):
            v = json.loads(v)
        if isinstance(v, dict) and "classes" not in v:
            return ScoreScheme.from_mapping(v, name="facility")
        return v


class DiscrepancySettings(ServiceSettings):
    """Everything the discrepancy service, the LIMS gateway and the benchmark read."""

    service_schema: ClassVar[str | None] = "discrepancy"
    discrepancy: DiscrepancyOptions = Field(default_factory=DiscrepancyOptions)
    lims: LimsOptions = Field(default_factory=LimsOptions)

    @model_validator(mode="after")
    def _no_default_lims_key(self) -> Self:
        refuse_default_secrets(self.env, {"AXIS_LIMS__API_KEY": self.lims.api_key})
        return self
