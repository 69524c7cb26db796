"""Data model of the dataset builder: candidates, image statistics, removals, manifest rows."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from axis_contracts.events import ImagingMode
from axis_contracts.scheme import BinaryLabel
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

LabelSource = Literal["agreement", "curated"]
CuratorVerdict = Literal["crystal", "other", "uncertain", "unusable"]
Split = Literal["train", "val", "test"]
UNRESOLVED = "unresolved"
"""Class key used in reports for curated items whose label is not decided yet."""


def _utc(v: datetime) -> datetime:
    return v.astimezone(UTC)


class CuratorLabel(BaseModel):
    """One label given by one curator at one time (a curator may label an item several times)."""

    model_config = ConfigDict(frozen=True)

    curator: str = Field(min_length=1)
    label: CuratorVerdict
    at: AwareDatetime

    @field_validator("at", mode="after")
    @classmethod
    def _at_utc(cls, v: datetime) -> datetime:
        return _utc(v)


class Candidate(BaseModel):
    """One image offered to the dataset builder: an agreement or a curated disagreement."""

    model_config = ConfigDict(frozen=True)

    image_uri: str = Field(min_length=1)
    imaging_mode: ImagingMode
    plate_barcode: str = Field(min_length=1)
    well: str = Field(min_length=1)
    drop: int = Field(ge=1)
    inspection_id: str = Field(min_length=1)
    imaged_at: AwareDatetime
    label_source: LabelSource
    ml_label: BinaryLabel | None = None
    ml_probability: float | None = Field(default=None, ge=0.0, le=1.0)
    model_version: str | None = None
    human_label: BinaryLabel | None = None
    human_class: str | None = None
    curator_labels: tuple[CuratorLabel, ...] = ()
    sub_type: str | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    """Hash of the image bytes when known; the builder measures it from the bytes when it loads them."""

    @field_validator("imaged_at", mode="after")
    @classmethod
    def _imaged_utc(cls, v: datetime) -> datetime:
        return _utc(v)

    @property
    def drop_key(self) -> tuple[str, str, int]:
        """(plate, well, drop): the physical drop this image shows."""
        return (self.plate_barcode, self.well, self.drop)

    def sort_key(self) -> tuple[datetime, str, str, str]:
        """Canonical processing order: oldest first, ties broken by inspection, mode and URI."""
        return (self.imaged_at, self.inspection_id, self.imaging_mode.value, self.image_uri)


@dataclass(frozen=True)
class ImageStats:
    """Measured statistics of one decoded image (computed from bytes by ``imageqc.measure_image``)."""

    sha256: str
    width: int
    height: int
    mean: float
    std: float
    white_fraction: float
    black_fraction: float
    laplacian_var: float
    phash: int
    dhash: int


@dataclass(frozen=True)
class ImageFailure:
    """An image that could not be loaded or decoded, with the reason."""

    reason: str
    sha256: str | None = None


ImageMeasurement = ImageStats | ImageFailure


@dataclass(frozen=True)
class Item:
    """A candidate moving through the stages, with its decided label and its measurements."""

    candidate: Candidate
    label: BinaryLabel | None = None
    measurement: ImageMeasurement | None = None

    @property
    def sha256(self) -> str | None:
        """Content hash: measured from the bytes when loaded, else the one given with the candidate."""
        m = self.measurement
        if m is not None and m.sha256 is not None:
            return m.sha256
        return self.candidate.sha256

    @property
    def stats(self) -> ImageStats | None:
        """Image statistics when the image was decoded."""
        return self.measurement if isinstance(self.measurement, ImageStats) else None

    @property
    def class_key(self) -> str:
        """Label for counting: before consensus an agreement counts as its human label, a curated item as unresolved."""
        if self.label is not None:
            return self.label
        c = self.candidate
        if c.label_source == "agreement" and c.human_label is not None:
            return c.human_label
        return UNRESOLVED


@dataclass(frozen=True)
class Removal:
    """Why one item left the dataset: the stage, a reason code and a human-readable detail."""

    item: Item
    stage: str
    reason: str
    detail: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON-able summary of the removal."""
        c = self.item.candidate
        return {
            "image_uri": c.image_uri,
            "inspection_id": c.inspection_id,
            "stage": self.stage,
            "reason": self.reason,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class StageResult:
    """Output of one stage: the items it kept and the ones it removed."""

    kept: list[Item]
    removed: list[Removal] = field(default_factory=list)


MANIFEST_FIELDS: tuple[str, ...] = (
    "image_uri",
    "sha256",
    "label",
    "label_source",
    "imaging_mode",
    "plate_barcode",
    "well",
    "drop",
    "inspection_id",
    "imaged_at",
    "split",
    "sub_type",
)


class ManifestRow(BaseModel):
    """One image of a dataset version, as written to the manifest."""

    model_config = ConfigDict(frozen=True)

    image_uri: str
    sha256: str | None
    label: BinaryLabel
    label_source: LabelSource
    imaging_mode: ImagingMode
    plate_barcode: str
    well: str
    drop: int
    inspection_id: str
    imaged_at: AwareDatetime
    split: Split
    sub_type: str | None = None

    def sort_key(self) -> tuple[str, str, str, int, str, str, str]:
        """Manifest order: split, plate, well, drop, inspection, mode, URI."""
        return (
            self.split,
            self.plate_barcode,
            self.well,
            self.drop,
            self.inspection_id,
            self.imaging_mode.value,
            self.image_uri,
        )


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()
