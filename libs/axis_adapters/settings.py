"""Connection settings shared by every service: nested groups read from the environment.

The embedded stack writes these variables to ``<data-dir>/stack.env``; a service reads that file
(path in ``AXIS_ENV_FILE``) plus its own prefixed variables. Only entry points build settings.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, Literal, Self, TypeVar

from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

S = TypeVar("S", bound="ServiceSettings")

DEV_PASSWORDS = frozenset({"axis", "axis-dev", "minioadmin", "postgres", "changeme", "password", ""})


class KafkaSettings(BaseModel):
    """Kafka-protocol broker, and the message-size limits that producers and consumers share.

    An event is at most ``axis_contracts.limits.MAX_EVENT_BYTES`` (1 MiB); a larger one is dead-lettered. The
    producers' ``max_request_size`` is set above that (so a dead letter of an event near the limit still goes),
    and a dead letter keeps at most ``dead_letter_keep_bytes`` of the raw message (the whole message goes to the
    object store). The broker must accept ``max_request_size`` (Kafka: ``message.max.bytes``).
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 1000
    max_request_size: int = Field(default=2 * 1_048_576, ge=1_048_576)
    dead_letter_keep_bytes: int = Field(default=65_536, ge=1024)


class PostgresSettings(BaseModel):
    """PostgreSQL (psycopg conninfo parts)."""

    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "axis"
    password: SecretStr = SecretStr("axis-dev")
    dbname: str = "axis"

    def conninfo(self) -> str:
        """libpq connection string (password included: never log it)."""
        return (
            f"host={self.host} port={self.port} user={self.user} "
            f"password={self.password.get_secret_value()} dbname={self.dbname}"
        )


class S3Settings(BaseModel):
    """S3-compatible object store (MinIO in production)."""

    endpoint: str = "127.0.0.1:9000"
    access_key: str = "axis"
    secret_key: SecretStr = SecretStr("axis-dev")
    secure: bool = False
    region: str = "us-east-1"
    images_bucket: str = "axis-images"
    datasets_bucket: str = "axis-datasets"
    models_bucket: str = "axis-mlflow"
    allowed_buckets: list[str] = Field(default_factory=lambda: ["axis-images", "axis-datasets"])


class MlflowSettings(BaseModel):
    """MLflow tracking server and registered model names."""

    tracking_uri: str = "http://127.0.0.1:5000"
    visible_model: str = "axis-visible"
    uv_model: str = "axis-uv"
    experiment: str = "axis-loop"


class ServiceSettings(BaseSettings):
    """Base of every service's settings: ``AXIS_`` prefix, ``__`` between nested groups.

    A service subclasses this and adds its own group (e.g. ``inference: InferenceOptions`` read from
    ``AXIS_INFERENCE__BATCH_SIZE``). Build it only in the entry point, with ``load()``.

    A service that owns a PostgreSQL schema names it in ``service_schema``; it then connects as its own role
    ``axis_<schema>`` when ``AXIS_ROLES__<SCHEMA>`` holds that role's password (the embedded stack writes one per
    service into stack.env). Without it (a deployment that sets ``AXIS_POSTGRES__USER``/``PASSWORD`` per
    service), the ``postgres`` group is used as given. Tools without a schema connect as the admin.
    """

    service_schema: ClassVar[str | None] = None

    model_config = SettingsConfigDict(env_prefix="AXIS_", env_nested_delimiter="__", extra="ignore")

    env: Literal["dev", "test", "production"] = Field(
        default="dev", validation_alias=AliasChoices("AXIS_ENV", "ENV", "env")
    )
    max_future_skew_s: float = Field(
        default=600.0, ge=0.0, description="how far in the future an event's times may lie (sender clock skew)"
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    postgres: PostgresSettings = Field(default_factory=PostgresSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    roles: dict[str, SecretStr] = Field(
        default_factory=dict, description="service -> password of its own database role (AXIS_ROLES__<SERVICE>)"
    )

    @model_validator(mode="after")
    def _own_database_role(self) -> Self:
        schema = type(self).service_schema
        if schema is not None and schema in self.roles:
            self.postgres = self.postgres.model_copy(update={"user": f"axis_{schema}", "password": self.roles[schema]})
        return self

    @model_validator(mode="after")
    def _no_default_secrets_outside_dev(self) -> Self:
        refuse_default_secrets(
            self.env,
            {
                "AXIS_POSTGRES__PASSWORD": self.postgres.password,
                "AXIS_S3__SECRET_KEY": self.s3.secret_key,
            },
        )
        return self


class DefaultSecretError(ValueError):
    """A service outside dev mode was configured with a default password."""


def refuse_default_secrets(env: str, secrets: dict[str, SecretStr]) -> None:
    """Raise DefaultSecretError naming every setting that still holds a default password outside dev/test."""
    if env in ("dev", "test"):
        return
    bad = [name for name, value in secrets.items() if value.get_secret_value() in DEV_PASSWORDS]
    if bad:
        raise DefaultSecretError(
            f"refusing to start with ENV={env} and a default password; set a real secret in: {', '.join(bad)}"
        )


def env_file() -> str | None:
    """The stack env file to read, from AXIS_ENV_FILE, else ./.axis/stack.env when it exists."""
    path = os.environ.get("AXIS_ENV_FILE")
    if path:
        return path
    default = os.path.join(".axis", "stack.env")
    return default if os.path.exists(default) else None


def load_settings(cls: type[S], **overrides: Any) -> S:
    """Build settings from the environment, the stack env file (if any) and explicit overrides.

    Invalid settings (including default passwords outside dev mode) end the process with exit status 1
    and one readable line per problem naming the setting, instead of a traceback.
    """
    try:
        return cls(_env_file=env_file(), **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False, include_input=False):
            where = "AXIS_" + "__".join(str(p).upper() for p in err["loc"]) if err["loc"] else "settings"
            problems.append(f"  {where}: {err['msg'].removeprefix('Value error, ')}")
        raise SystemExit(f"{cls.__name__}: cannot start with these settings:\n" + "\n".join(problems)) from None
