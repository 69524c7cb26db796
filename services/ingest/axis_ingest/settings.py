"""Settings of the ingest service (``AXIS_INGEST__*``); docs/imaging.md lists them with examples."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal, Self

from axis_adapters.settings import ServiceSettings
from axis_contracts import ImagingMode, PlateType
from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from axis_ingest.pattern import DEFAULT_EXTENSIONS, DEFAULT_MODE_TOKENS, MappingConfig, PathMapper, PatternError
from axis_ingest.presets import PRESETS

DEFAULT_IGNORE = (".*", "*.tmp", "*.part", "*.partial", "*.crdownload", "*~", "~*", "Thumbs.db", "desktop.ini")


class IngestOptions(BaseModel):
    """The watched folder, how its paths map to events, when a file is complete, where progress shows."""

    watch_dir: Path = Field(default=Path("inbox"), description="root of the imager's folder tree")
    create_watch_dir: bool = Field(default=False, description="create it when missing (never for a network share)")
    imager_id: str = Field(default="imager-1", min_length=1, max_length=128)
    # mapping
    preset: str = Field(default="rock-imager", description="a shipped layout (presets.py); `pattern` overrides it")
    pattern: str | None = None
    field_patterns: dict[str, str] = Field(default_factory=dict)
    mode_tokens: dict[str, ImagingMode] = Field(default_factory=dict, description="added to the default tokens")
    default_mode: ImagingMode | None = None
    plate_types: dict[str, PlateType] = Field(default_factory=dict, description="barcode prefix -> plate type")
    default_plate_type: PlateType | None = Field(default=None, description="None: the preset's")
    timezone: str = "UTC"
    inspection_template: str | None = None
    extensions: list[str] = Field(default_factory=lambda: list(DEFAULT_EXTENSIONS))
    ignore: list[str] = Field(default_factory=lambda: list(DEFAULT_IGNORE), description="names skipped silently")
    # completeness
    settle_s: float = Field(default=3.0, ge=0.0, description="size and mtime unchanged this long")
    ready_marker: str | None = Field(default=None, description="e.g. '.done': wait for <file>.done to exist")
    incomplete_after_s: float = Field(default=300.0, gt=0, description="a stable but truncated image is reported")
    max_file_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    # watching
    watcher: Literal["auto", "inotify", "poll"] = "auto"
    poll_interval_s: float = Field(default=5.0, gt=0, description="between scans when polling")
    rescan_interval_s: float = Field(default=300.0, gt=0, description="full rescan with inotify (missed events)")
    batch_size: int = Field(default=64, ge=1, le=10_000)
    # unmappable files
    unmappable: Literal["list", "move"] = "list"
    unmappable_dir: str = Field(default="_unmappable", description="folder under watch_dir that `move` moves to")
    # object store and events
    key_prefix: str = Field(default="ingest", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-/]*$")
    producer: str = "axis-ingest"
    # progress, retries
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8083, ge=0, le=65535, description="/health and /metrics (0: a free port)")
    metrics_token: SecretStr | None = None
    stall_after_s: float = Field(default=600.0, gt=0, description="/health says stalled when no scan ends this long")
    retry_delay_s: float = Field(default=0.5, ge=0.0)
    retry_max_delay_s: float = Field(default=30.0, ge=0.0)
    startup_attempts: int = Field(default=12, ge=1)
    pool_size: int = Field(default=2, ge=1)
    recent_unmappable: int = Field(default=50, ge=0, description="how many /health lists")

    @field_validator("preset", mode="after")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        if v not in PRESETS:
            raise ValueError(f"unknown preset {v!r}; shipped presets: {', '.join(PRESETS)} (or set a pattern)")
        return v

    @field_validator("unmappable_dir", mode="after")
    @classmethod
    def _plain_folder(cls, v: str) -> str:
        if not v or "/" in v or v in (".", ".."):
            raise ValueError("must be one folder name (created under the watched folder)")
        return v

    @model_validator(mode="after")
    def _mapping_compiles(self) -> Self:
        try:
            PathMapper(self.mapping())
        except PatternError as exc:
            raise ValueError(str(exc)) from None
        return self

    def mapping(self) -> MappingConfig:
        """The mapping configuration: the preset, with what is set here on top."""
        preset = PRESETS[self.preset]
        return MappingConfig(
            pattern=self.pattern or preset.pattern,
            field_patterns=self.field_patterns,
            mode_tokens={**DEFAULT_MODE_TOKENS, **{k.lower(): m for k, m in self.mode_tokens.items()}},
            default_mode=self.default_mode,
            plate_types=self.plate_types,
            default_plate_type=self.default_plate_type or preset.default_plate_type,
            timezone=self.timezone,
            inspection_template=self.inspection_template,
            extensions=tuple(self.extensions),
        )


class IngestSettings(ServiceSettings):
    """Everything ``python -m axis_ingest`` reads."""

    service_schema: ClassVar[str | None] = "ingest"
    ingest: IngestOptions = Field(default_factory=IngestOptions)
