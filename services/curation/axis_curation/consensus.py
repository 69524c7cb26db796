"""Curator consensus on a queued disagreement: resolved, unresolved (conflict) or still open."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

CuratorLabel = Literal["crystal", "other", "uncertain", "unusable"]
CURATOR_LABELS: tuple[CuratorLabel, ...] = ("crystal", "other", "uncertain", "unusable")
ItemStatus = Literal["open", "resolved", "unresolved"]


@dataclass(frozen=True)
class Vote:
    """One curator label as stored (a curator may relabel; the latest counts)."""

    curator: str
    label: CuratorLabel
    at: datetime


@dataclass(frozen=True)
class ConsensusRule:
    """How many agreeing curators decide an item (2 by default; 1 for a small lab)."""

    min_agreeing: int = 2

    def __post_init__(self) -> None:
        if self.min_agreeing < 1:
            raise ValueError("consensus needs at least 1 agreeing curator")


@dataclass(frozen=True)
class Decision:
    """The outcome of the rule on the current votes."""

    status: ItemStatus
    resolved_label: CuratorLabel | None = None


def latest_votes(votes: Sequence[Vote]) -> dict[str, Vote]:
    """Each curator's latest vote (a later entry wins a tie on time)."""
    latest: dict[str, Vote] = {}
    for v in votes:
        prev = latest.get(v.curator)
        if prev is None or v.at >= prev.at:
            latest[v.curator] = v
    return latest


def decide(votes: Sequence[Vote], rule: ConsensusRule) -> Decision:
    """Apply the rule to each curator's latest label.

    crystal and other both present -> unresolved (conflict, leaves the queue);
    ``min_agreeing`` curators on crystal, other or unusable -> resolved with that label;
    ``min_agreeing`` curators saying uncertain -> unresolved (nobody can tell);
    otherwise the item stays open for more curators.
    """
    counts = Counter(v.label for v in latest_votes(votes).values())
    if counts["crystal"] and counts["other"]:
        return Decision("unresolved")
    for label in ("crystal", "other", "unusable"):
        if counts[label] >= rule.min_agreeing:
            return Decision("resolved", label)  # type: ignore[arg-type]
    if counts["uncertain"] >= rule.min_agreeing:
        return Decision("unresolved")
    return Decision("open")
