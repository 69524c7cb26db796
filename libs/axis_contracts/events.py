"""Pydantic v2 models of every event on the bus, each wrapped in the common envelope."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from axis_contracts import topics
from axis_contracts.limits import EventTime, Identifier, Text, check_no_control
from axis_contracts.wells import PlateType, experiment_key, validate_well

Probability = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
Barcode = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]
S3Uri = Annotated[str, Field(min_length=6, max_length=1024, pattern=r"^s3://[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]/.+")]
MlLabel = Literal["crystal", "other"]
Drop = Annotated[int, Field(ge=1, le=16)]


class ImagingMode(StrEnum):
    """Illumination of an image."""

    VISIBLE = "visible"
    UV = "uv"


class DiscrepancyKind(StrEnum):
    """Which way the model and the human disagree."""

    ML_CRYSTAL_HUMAN_OTHER = "ml_crystal_human_other"
    ML_OTHER_HUMAN_CRYSTAL = "ml_other_human_crystal"


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


class Event(BaseModel):
    """Envelope shared by every event: identity (idempotency key), type, version, time, producer."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    TOPIC: ClassVar[str] = ""
    # text fields where tab / newline are allowed; fields not checked for control characters at all
    FREE_TEXT: ClassVar[frozenset[str]] = frozenset()
    UNCHECKED_TEXT: ClassVar[frozenset[str]] = frozenset()
    event_id: UUID = Field(default_factory=uuid4)
    event_type: str
    schema_version: int = Field(default=1, ge=1)
    occurred_at: EventTime = Field(default_factory=lambda: datetime.now(UTC))
    producer: Identifier

    @model_validator(mode="after")
    def _no_control_characters(self) -> Any:
        # PostgreSQL cannot store NUL and no id or label needs a control character: refuse them in every field
        check_no_control(self, free_text=self.FREE_TEXT, skip=self.UNCHECKED_TEXT)
        return self

    @field_validator("occurred_at", mode="after")
    @classmethod
    def _occurred_utc(cls, v: datetime) -> datetime:
        return _utc(v)

    @model_validator(mode="before")
    @classmethod
    def _default_type(cls, data: Any) -> Any:
        if isinstance(data, dict) and "event_type" not in data:
            data = {**data, "event_type": cls.__name__}
        return data

    @field_validator("event_type", mode="after")
    @classmethod
    def _type_matches(cls, v: str) -> str:
        if cls is not Event and v != cls.__name__:
            raise ValueError(f"event_type must be {cls.__name__!r} for this topic, got {v!r}")
        return v

    def key(self) -> str | None:
        """Kafka message key (the experiment key where the event is about one drop)."""
        return None

    def to_bytes(self) -> bytes:
        """JSON encoding used on the wire."""
        return self.model_dump_json().encode()


class _DropEvent(Event):
    plate_barcode: Barcode
    plate_type: PlateType = PlateType.WELLS_96
    well: str
    drop: Drop = 1

    @field_validator("well", mode="after")
    @classmethod
    def _check_well(cls, v: str, info: ValidationInfo) -> str:
        plate_type = info.data.get("plate_type", PlateType.WELLS_96)
        return validate_well(v, plate_type)

    def key(self) -> str:
        return experiment_key(self.plate_barcode, self.well, self.drop)


class ImageCaptured(_DropEvent):
    """An imager stored one image of a drop in the object store."""

    TOPIC: ClassVar[str] = topics.IMAGE_CAPTURED
    event_type: Literal["ImageCaptured"] = "ImageCaptured"
    inspection_id: Identifier
    imaged_at: EventTime
    imaging_mode: ImagingMode
    image_uri: S3Uri
    imager_id: Identifier = "imager-1"

    @field_validator("imaged_at", mode="after")
    @classmethod
    def _imaged_utc(cls, v: datetime) -> datetime:
        return _utc(v)


class ModeScore(BaseModel):
    """One image's crystal probability from one model version."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    probability: Probability
    threshold: Probability
    model_name: Identifier
    model_version: Identifier
    image_uri: S3Uri
    image_event_id: UUID

    @property
    def label(self) -> MlLabel:
        return "crystal" if self.probability >= self.threshold else "other"


class CrystalScored(_DropEvent):
    """Fused crystal probability of an inspection (max over the modes scored so far)."""

    TOPIC: ClassVar[str] = topics.CRYSTAL_SCORED
    event_type: Literal["CrystalScored"] = "CrystalScored"
    inspection_id: Identifier
    imaged_at: EventTime
    scores: dict[ImagingMode, ModeScore] = Field(min_length=1)
    fused_probability: Probability
    label: MlLabel
    threshold: Probability
    model_name: Identifier
    model_version: Identifier
    scored_at: EventTime = Field(default_factory=lambda: datetime.now(UTC))

    @model_validator(mode="after")
    def _fused_is_max(self) -> CrystalScored:
        best = max(s.probability for s in self.scores.values())
        if abs(best - self.fused_probability) > 1e-9:
            raise ValueError(
                f"fused_probability {self.fused_probability} must equal the max of the mode probabilities ({best})"
            )
        return self


class UserScored(Event):
    """A scientist scored a drop in the LIMS (raw class of the facility's scheme)."""

    TOPIC: ClassVar[str] = topics.USER_SCORED
    event_type: Literal["UserScored"] = "UserScored"
    inspection_id: Identifier | None = None
    plate_barcode: Barcode | None = None
    well: str | None = None
    drop: Drop | None = None
    user_id: Identifier
    score: Annotated[Text, Field(min_length=1, max_length=64)]
    scored_at: EventTime

    @field_validator("scored_at", mode="after")
    @classmethod
    def _scored_utc(cls, v: datetime) -> datetime:
        return _utc(v)

    @model_validator(mode="after")
    def _identifies_drop(self) -> UserScored:
        if self.inspection_id is None:
            if self.plate_barcode is None or self.well is None:
                raise ValueError("give inspection_id, or plate_barcode + well (+ drop) with scored_at")
        return self

    @field_validator("well", mode="after")
    @classmethod
    def _check_well(cls, v: str | None) -> str | None:
        # the LIMS does not say the plate format; accept any well of the largest format
        return None if v is None else validate_well(v, PlateType.WELLS_1536)

    def key(self) -> str | None:
        if self.plate_barcode and self.well:
            return experiment_key(self.plate_barcode, self.well, self.drop or 1)
        return self.inspection_id


class DiscrepancyFound(_DropEvent):
    """The model and a human disagree on an inspection; queued for curators."""

    TOPIC: ClassVar[str] = topics.DISCREPANCY_FOUND
    event_type: Literal["DiscrepancyFound"] = "DiscrepancyFound"
    discrepancy_id: int | None = None
    inspection_id: Identifier
    kind: DiscrepancyKind
    ml_probability: Probability
    ml_label: MlLabel
    threshold: Probability
    model_name: Identifier
    model_version: Identifier
    human_label: MlLabel
    human_score: str
    user_id: Identifier
    # schema_version 1 additions (optional: older producers omit them; consumers must not require them)
    ml_event_id: UUID | None = Field(default=None, description="the CrystalScored this item compares")
    user_event_id: UUID | None = Field(default=None, description="the UserScored this item compares")
    imaged_at: EventTime | None = None
    priority: float | None = Field(default=None, ge=0.0, le=1.0, description="the queue's expected value of a label")

    @model_validator(mode="after")
    def _kind_consistent(self) -> DiscrepancyFound:
        expected = (
            DiscrepancyKind.ML_CRYSTAL_HUMAN_OTHER
            if self.ml_label == "crystal"
            else DiscrepancyKind.ML_OTHER_HUMAN_CRYSTAL
        )
        if self.ml_label == self.human_label:
            raise ValueError("ml_label and human_label agree: that is not a discrepancy")
        if self.kind != expected:
            raise ValueError(f"kind must be {expected.value} when ml_label is {self.ml_label}")
        return self


class ComparisonRecorded(_DropEvent):
    """The discrepancy service compared an inspection's ML score with a user's score (one per revision).

    Published for agreements and disagreements alike, so that others keep their own view of the comparisons
    (curation: plate maps, well history, the dataset builder's agreements) without reading the discrepancy
    service's tables. ``revision`` counts the comparisons of the inspection; the highest is the current one.
    ``queue_item_id`` is set when the comparison became a curator queue item: every disagreement, and an
    agreement routed to curators (``reason`` says why: near_threshold, modes_disagree, unreliable_user).
    """

    TOPIC: ClassVar[str] = topics.COMPARISON_RECORDED
    event_type: Literal["ComparisonRecorded"] = "ComparisonRecorded"
    inspection_id: Identifier
    revision: int = Field(ge=1)
    imaged_at: EventTime
    ml_event_id: UUID
    ml_probability: Probability
    ml_label: MlLabel
    threshold: Probability
    model_name: Identifier
    model_version: Identifier
    user_event_id: UUID
    user_id: Identifier
    human_label: MlLabel
    human_score: Annotated[Text, Field(min_length=1, max_length=64)]
    user_scored_at: EventTime
    agrees: bool
    kind: DiscrepancyKind | None = None
    queue_item_id: int | None = None
    reason: Literal["disagreement", "near_threshold", "modes_disagree", "unreliable_user"] | None = None
    priority: float | None = Field(default=None, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _agreement_consistent(self) -> ComparisonRecorded:
        if self.agrees != (self.ml_label == self.human_label):
            raise ValueError("agrees must say whether ml_label equals human_label")
        if self.agrees == (self.kind is not None):
            raise ValueError("kind is set exactly for disagreements")
        return self


CuratorLabel = Literal["crystal", "other", "uncertain", "unusable"]


class CuratorLabelled(Event):
    """A curator labelled a queue item, or took a label back (``withdraws`` names the label event undone).

    Curation's labels are kept on the log so that its read model can be rebuilt from the topics alone, and so
    that others learn the verdicts: ``item_status`` / ``resolved_label`` are the item's state after this label
    under the consensus rule (the discrepancy service keeps per-user reliability from them).
    """

    TOPIC: ClassVar[str] = topics.CURATOR_LABELLED
    event_type: Literal["CuratorLabelled"] = "CuratorLabelled"
    queue_item_id: int
    inspection_id: Identifier
    plate_barcode: Barcode
    well: str
    drop: Drop = 1
    user_id: Identifier = Field(description="the LIMS user whose score the item compares")
    curator: Identifier
    label: CuratorLabel | None = Field(default=None, description="None when this event withdraws a label")
    withdraws: UUID | None = Field(default=None, description="event_id of the CuratorLabelled taken back")
    comment: Annotated[str, Field(max_length=2000)] = ""
    labelled_at: EventTime
    item_status: Literal["open", "resolved", "unresolved", "superseded"]
    resolved_label: CuratorLabel | None = None

    @model_validator(mode="after")
    def _label_or_withdrawal(self) -> CuratorLabelled:
        if (self.label is None) == (self.withdraws is None):
            raise ValueError("exactly one of label (a new label) and withdraws (an undo) must be set")
        return self

    def key(self) -> str:
        return experiment_key(self.plate_barcode, self.well, self.drop)


class DatasetPointer(BaseModel):
    """A dataset version and its manifest (e.g. the frozen test set of a train dataset)."""

    model_config = ConfigDict(extra="forbid")

    dataset_name: Identifier
    dataset_version: Identifier
    manifest_uri: S3Uri
    manifest_sha256: str | None = None


class DatasetExported(Event):
    """A quality-controlled dataset version is in the object store."""

    TOPIC: ClassVar[str] = topics.DATASET_EXPORTED
    event_type: Literal["DatasetExported"] = "DatasetExported"
    dataset_name: Identifier
    dataset_version: Identifier
    purpose: Literal["train", "test"] = "train"
    manifest_uri: S3Uri
    manifest_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    qc_report_uri: S3Uri
    card_uri: S3Uri | None = None
    counts: dict[str, dict[str, int]] = Field(default_factory=dict)
    # schema_version 1 addition (optional): the frozen test set a train dataset is to be evaluated on, so that
    # the trainer need not read curation's tables (absent: the newest purpose=test dataset the trainer has seen)
    test_set: DatasetPointer | None = None

    def key(self) -> str:
        return f"{self.dataset_name}:{self.dataset_version}"


class ModelRegistered(Event):
    """The trainer registered a new model version (alias ``challenger``)."""

    TOPIC: ClassVar[str] = topics.MODEL_REGISTERED
    event_type: Literal["ModelRegistered"] = "ModelRegistered"
    model_name: Identifier
    version: Identifier
    imaging_mode: ImagingMode
    alias: str = "challenger"
    run_id: str | None = None
    dataset_name: str | None = None
    dataset_version: str | None = None
    threshold: Probability | None = None
    metrics: dict[str, float] = Field(default_factory=dict)

    def key(self) -> str:
        return self.model_name


class ModelPromoted(Event):
    """An admin moved the ``champion`` alias to a version."""

    TOPIC: ClassVar[str] = topics.MODEL_PROMOTED
    FREE_TEXT: ClassVar[frozenset[str]] = frozenset({"reason"})
    event_type: Literal["ModelPromoted"] = "ModelPromoted"
    model_name: Identifier
    version: Identifier
    alias: str = "champion"
    previous_version: str | None = None
    promoted_by: Identifier
    reason: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)

    def key(self) -> str:
        return self.model_name
