"""Pure aggregation of ML-vs-human comparison counts into agreement rates per group."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

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
class StatsReport:
    """Statistics per group plus the overall row."""

    group_by: GroupBy
    rows: list[StatsRow]
    total: StatsRow

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready mapping."""
        return {"group_by": self.group_by, "rows": [r.as_dict() for r in self.rows], "total": self.total.as_dict()}


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


def summarise(group_by: GroupBy, counts: Iterable[GroupCounts]) -> StatsReport:
    """Rows per group (in the order given) and the total over all groups."""
    items = list(counts)
    total = GroupCounts(
        group="all",
        comparisons=sum(c.comparisons for c in items),
        agreements=sum(c.agreements for c in items),
        ml_crystal_human_other=sum(c.ml_crystal_human_other for c in items),
        ml_other_human_crystal=sum(c.ml_other_human_crystal for c in items),
    )
    return StatsReport(group_by=group_by, rows=[to_row(c) for c in items], total=to_row(total))
