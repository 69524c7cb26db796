"""Pure aggregation of ML-vs-human comparison counts into agreement rates per group."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from axis_core.routing import BetaPrior, Reliability

GroupBy = Literal["plate", "user", "model_version", "week"]
GROUP_BYS: tuple[GroupBy, ...] = ("plate", "user", "model_version", "week")


@dataclass(frozen=True)
class GroupCounts:
    """Raw counts of one group: comparisons, agreements and each discrepancy kind."""

    group: str
    comparisons: int
    agreements: int
    ml_crystal_human_other: int
    ml_other_human_crystal: int


@dataclass(frozen=True)
class StatsRow:
    """Counts of one group with its agreement rate (None when the group has no comparison)."""

    group: str
    comparisons: int
    agreements: int
    disagreements: int
    agreement_rate: float | None
    ml_crystal_human_other: int
    ml_other_human_crystal: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return asdict(self)


@dataclass(frozen=True)
class ReliabilityRow:
    """A LIMS user's record with the curators and the error rate the routing uses (Beta-prior posterior mean)."""

    user_id: str
    curated: int
    overturned: int
    overturn_rate: float
    reliability: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return asdict(self)


def reliability_rows(records: Iterable[Reliability], prior: BetaPrior | None = None) -> list[ReliabilityRow]:
    """Per-user rows, least reliable first: overturn rate = (overturned + a) / (curated + a + b)."""
    pr = prior or BetaPrior()
    rows = []
    for r in records:
        rate = r.error_rate(pr)
        rows.append(ReliabilityRow(r.user_id, r.curated, r.overturned, rate, 1.0 - rate))
    return sorted(rows, key=lambda x: (-x.overturn_rate, x.user_id))


@dataclass(frozen=True)
class StatsReport:
    """Statistics per group plus the overall row (and, grouped by user, each user's reliability)."""

    group_by: GroupBy
    rows: list[StatsRow]
    total: StatsRow
    reliability: list[ReliabilityRow] | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        out: dict[str, Any] = {
            "group_by": self.group_by,
            "rows": [r.as_dict() for r in self.rows],
            "total": self.total.as_dict(),
        }
        if self.reliability is not None:
            out["reliability"] = [r.as_dict() for r in self.reliability]
        return out


def check_group_by(value: str) -> GroupBy:
    """Validate a group-by name; the error lists the allowed ones."""
    if value not in GROUP_BYS:
        raise ValueError(f"cannot group by {value!r}; use one of: {', '.join(GROUP_BYS)}")
    return value  # type: ignore[return-value]


def to_row(c: GroupCounts) -> StatsRow:
    """Derive disagreements and the agreement rate from raw counts."""
    rate = c.agreements / c.comparisons if c.comparisons else None
    return StatsRow(
        group=c.group,
        comparisons=c.comparisons,
        agreements=c.agreements,
        disagreements=c.comparisons - c.agreements,
        agreement_rate=rate,
        ml_crystal_human_other=c.ml_crystal_human_other,
        ml_other_human_crystal=c.ml_other_human_crystal,
    )


def summarise(
    group_by: GroupBy, counts: Iterable[GroupCounts], reliability: list[ReliabilityRow] | None = None
) -> StatsReport:
    """Rows per group (in the order given) and the total over all groups."""
    items = list(counts)
    total = GroupCounts(
        group="all",
        comparisons=sum(c.comparisons for c in items),
        agreements=sum(c.agreements for c in items),
        ml_crystal_human_other=sum(c.ml_crystal_human_other for c in items),
        ml_other_human_crystal=sum(c.ml_other_human_crystal for c in items),
    )
    return StatsReport(group_by=group_by, rows=[to_row(c) for c in items], total=to_row(total), reliability=reliability)
