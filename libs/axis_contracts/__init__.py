"""Event contracts of AXIS Loop: pydantic models, topic names, wells and score schemes."""

from axis_contracts.dead_letter import DeadLetter
from axis_contracts.events import (
    ComparisonRecorded,
    CrystalScored,
    CuratorLabelled,
    DatasetExported,
    DiscrepancyFound,
    DiscrepancyKind,
    Event,
    ImageCaptured,
    ImagingMode,
    MlLabel,
    ModelPromoted,
    ModelRegistered,
    ModeScore,
    UserScored,
)
from axis_contracts.parsing import InvalidEvent, describe_validation_error, parse_event
from axis_contracts.scheme import DEFAULT_SCHEME, ScoreScheme, UnknownScoreClass
from axis_contracts.wells import PlateType, experiment_key, validate_well, wells_of

__all__ = [
    "DEFAULT_SCHEME",
    "CrystalScored",
    "DatasetExported",
    "DeadLetter",
    "ComparisonRecorded",
    "CuratorLabelled",
    "DiscrepancyFound",
    "DiscrepancyKind",
    "Event",
    "ImageCaptured",
    "ImagingMode",
    "InvalidEvent",
    "MlLabel",
    "ModeScore",
    "ModelPromoted",
    "ModelRegistered",
    "PlateType",
    "ScoreScheme",
    "UnknownScoreClass",
    "UserScored",
    "describe_validation_error",
    "experiment_key",
    "parse_event",
    "validate_well",
    "wells_of",
]
