"""Every event type of the bus by name and by topic (what the parsers, the docs and the tests enumerate)."""

from __future__ import annotations

from axis_contracts.dead_letter import DeadLetter
from axis_contracts.events import (
    ComparisonRecorded,
    CrystalScored,
    CuratorLabelled,
    DatasetExported,
    DiscrepancyFound,
    Event,
    ImageCaptured,
    ModelPromoted,
    ModelRegistered,
    UserScored,
)

EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        ImageCaptured,
        CrystalScored,
        UserScored,
        DiscrepancyFound,
        ComparisonRecorded,
        CuratorLabelled,
        DatasetExported,
        ModelRegistered,
        ModelPromoted,
        DeadLetter,
    )
}
TOPIC_EVENTS: dict[str, type[Event]] = {cls.TOPIC: cls for cls in EVENT_TYPES.values()}
