"""Pure rules of the discrepancy service: ML vs human labels, which score is latest, and the per-inspection join.

No broker, database or environment here: the service loads the current state of an inspection, folds the new
events into it with :func:`fold`, and persists what comes out.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from axis_contracts import CrystalScored, DiscrepancyKind, ScoreScheme, UserScored

from axis_core.routing import ModeProbability

Label = Literal["crystal", "other"]


class RejectedScore(ValueError):
    """An event the discrepancy service cannot use; the message says why (it becomes the dead-letter reason)."""


class ProbabilityOutOfRange(RejectedScore):
    """A crystal probability outside [0, 1] (or not a number)."""


class UnknownInspection(RejectedScore):
    """A user score for an inspection that no image or ML score names."""


def ml_label(probability: float, threshold: float) -> Label:
    """The model's binary label: ``crystal`` when the probability reaches the threshold (0.0 is a real score)."""
    return "crystal" if probability >= threshold else "other"


def discrepancy_kind(ml: Label, human: Label) -> DiscrepancyKind | None:
    """Which way the model and the human disagree, or None when they agree."""
    if ml == human:
        return None
    if ml == "crystal":
        return DiscrepancyKind.ML_CRYSTAL_HUMAN_OTHER
    return DiscrepancyKind.ML_OTHER_HUMAN_CRYSTAL


def check_probabilities(data: Mapping[str, Any]) -> None:
    """Raise ProbabilityOutOfRange naming the field when a CrystalScored payload has a probability outside [0, 1]."""
    fields: list[tuple[str, Any]] = [("fused_probability", data.get("fused_probability"))]
    scores = data.get("scores")
    if isinstance(scores, Mapping):
        for mode, score in scores.items():
            if isinstance(score, Mapping):
                fields.append((f"scores.{mode}.probability", score.get("probability")))
    fields.append(("threshold", data.get("threshold")))
    for name, value in fields:
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue  # missing or not numeric: the schema check reports it
        if math.isnan(value) or not 0.0 <= value <= 1.0:
            raise ProbabilityOutOfRange(f"{name} {value!r} is outside [0, 1]: a probability must lie between 0 and 1")


@dataclass(frozen=True)
class MlScore:
    """The fused ML score of one inspection from one CrystalScored event."""

    event_id: UUID
    inspection_id: str
    plate_barcode: str
    well: str
    drop: int
    imaged_at: datetime
    probability: float
    threshold: float
    model_name: str
    model_version: str
    scored_at: datetime
    plate_type: str = "96"
    modes: tuple[ModeProbability, ...] = ()

    @property
    def label(self) -> Label:
        """Label at this model version's threshold."""
        return ml_label(self.probability, self.threshold)

    @classmethod
    def from_event(cls, ev: CrystalScored) -> MlScore:
        """From a validated CrystalScored event."""
        return cls(
            event_id=ev.event_id,
            inspection_id=ev.inspection_id,
            plate_barcode=ev.plate_barcode,
            well=ev.well,
            drop=ev.drop,
            imaged_at=ev.imaged_at,
            probability=ev.fused_probability,
            threshold=ev.threshold,
            model_name=ev.model_name,
            model_version=ev.model_version,
            scored_at=ev.scored_at,
            plate_type=ev.plate_type.value,
            modes=tuple(
                ModeProbability(str(mode), s.probability, s.threshold) for mode, s in sorted(ev.scores.items())
            ),
        )


@dataclass(frozen=True)
class HumanScore:
    """A user's score of one inspection, mapped to the binary label by the facility's scheme."""

    event_id: UUID
    inspection_id: str
    user_id: str
    raw_class: str
    label: Label
    scored_at: datetime

    @classmethod
    def from_event(cls, ev: UserScored, *, inspection_id: str, scheme: ScoreScheme) -> HumanScore:
        """From a validated UserScored whose inspection is resolved; raises UnknownScoreClass for a bad class."""
        canonical = scheme.normalise(ev.score)
        return cls(
            event_id=ev.event_id,
            inspection_id=inspection_id,
            user_id=ev.user_id,
            raw_class=canonical,
            label=scheme.classes[canonical],
            scored_at=ev.scored_at,
        )


Score = MlScore | HumanScore


def is_newer(candidate: Score, current: Score | None) -> bool:
    """Latest wins by ``scored_at``; equal times are ordered by event id so that every replica agrees."""
    if current is None:
        return True
    return (candidate.scored_at, str(candidate.event_id)) > (current.scored_at, str(current.event_id))


@dataclass(frozen=True)
class Comparison:
    """ML vs human for one inspection at one revision: agreement (training candidate) or a discrepancy."""

    ml: MlScore
    human: HumanScore
    revision: int

    @property
    def inspection_id(self) -> str:
        """The inspection compared."""
        return self.ml.inspection_id

    @property
    def kind(self) -> DiscrepancyKind | None:
        """Disagreement kind, None when the labels agree."""
        return discrepancy_kind(self.ml.label, self.human.label)

    @property
    def agrees(self) -> bool:
        """True when the ML label equals the human label."""
        return self.kind is None

    @property
    def pair(self) -> tuple[UUID, UUID]:
        """(ML event id, user event id): the identity of a curation item."""
        return (self.ml.event_id, self.human.event_id)


@dataclass
class InspectionState:
    """What the service knows of one inspection: latest ML score, latest human score, last comparison."""

    inspection_id: str
    ml: MlScore | None = None
    human: HumanScore | None = None
    revision: int = 0
    pair: tuple[UUID, UUID] | None = None


@dataclass
class FoldResult:
    """Effects of folding new events into an inspection's state."""

    state: InspectionState
    ml_changed: bool = False
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def discrepancies(self) -> list[Comparison]:
        """The new comparisons that disagree (each becomes a curation item)."""
        return [c for c in self.comparisons if not c.agrees]


def fold(state: InspectionState, events: Iterable[Score]) -> FoldResult:
    """Apply events in arrival order: a newer score replaces the current one; each new pair is a new comparison."""
    st = replace(state)
    result = FoldResult(state=st)
    for ev in events:
        if ev.inspection_id != st.inspection_id:
            raise ValueError(f"event for {ev.inspection_id!r} folded into {st.inspection_id!r}")
        if isinstance(ev, MlScore):
            if not is_newer(ev, st.ml):
                continue
            st.ml = ev
            result.ml_changed = True
        else:
            if not is_newer(ev, st.human):
                continue
            st.human = ev
        if st.ml is None or st.human is None:
            continue
        pair = (st.ml.event_id, st.human.event_id)
        if pair == st.pair:
            continue
        st.revision += 1
        st.pair = pair
        result.comparisons.append(Comparison(ml=st.ml, human=st.human, revision=st.revision))
    return result


def group_by_inspection(events: Sequence[Score]) -> dict[str, list[Score]]:
    """Events per inspection, arrival order kept."""
    out: dict[str, list[Score]] = {}
    for ev in events:
        out.setdefault(ev.inspection_id, []).append(ev)
    return out


def latest_inspection_before(candidates: Iterable[tuple[str, datetime]], scored_at: datetime) -> str | None:
    """The inspection imaged last at or before ``scored_at`` among (inspection_id, imaged_at) of one drop."""
    best: tuple[datetime, str] | None = None
    for inspection_id, imaged_at in candidates:
        if imaged_at <= scored_at and (best is None or (imaged_at, inspection_id) > best):
            best = (imaged_at, inspection_id)
    return None if best is None else best[1]
