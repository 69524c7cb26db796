"""QC report (counts before/after each stage, per class and imaging mode) as JSON and as a fixed-width table."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from axis_core.dataset.model import Item, Removal

_CLASS_ORDER = ("crystal", "other", "unresolved")
_MODE_ORDER = ("visible", "uv")


@dataclass(frozen=True)
class Counts:
    """Number of images in total, per class, per imaging mode and per class/mode pair."""

    total: int = 0
    by_class: dict[str, int] = field(default_factory=dict)
    by_mode: dict[str, int] = field(default_factory=dict)
    by_class_mode: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, items: Iterable[Item]) -> Counts:
        """Count items by their (current) class and imaging mode."""
        by_class: Counter[str] = Counter()
        by_mode: Counter[str] = Counter()
        by_pair: Counter[str] = Counter()
        n = 0
        for it in items:
            mode = it.candidate.imaging_mode.value
            by_class[it.class_key] += 1
            by_mode[mode] += 1
            by_pair[f"{it.class_key}/{mode}"] += 1
            n += 1
        return cls(n, dict(sorted(by_class.items())), dict(sorted(by_mode.items())), dict(sorted(by_pair.items())))

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "total": self.total,
            "by_class": dict(self.by_class),
            "by_mode": dict(self.by_mode),
            "by_class_mode": dict(self.by_class_mode),
        }


@dataclass(frozen=True)
class StageReport:
    """What one stage saw, kept and removed (and why)."""

    stage: str
    enabled: bool
    before: Counts
    after: Counts
    removed_by_reason: dict[str, int]

    @property
    def removed(self) -> int:
        """How many images this stage removed."""
        return self.before.total - self.after.total

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "stage": self.stage,
            "enabled": self.enabled,
            "before": self.before.to_dict(),
            "after": self.after.to_dict(),
            "removed": self.removed,
            "removed_by_reason": dict(self.removed_by_reason),
        }


def stage_report(
    stage: str, enabled: bool, before: Sequence[Item], kept: Sequence[Item], removed: Sequence[Removal]
) -> StageReport:
    """Summarise one stage's input, output and removals."""
    reasons = Counter(r.reason for r in removed)
    return StageReport(stage, enabled, Counts.of(before), Counts.of(kept), dict(sorted(reasons.items())))


@dataclass(frozen=True)
class QCReport:
    """Counts before and after each stage plus the final splits (the shape of CryoDataBot's Table 2)."""

    stages: tuple[StageReport, ...]
    splits: dict[str, Counts]
    plates_per_split: dict[str, int]
    warnings: tuple[str, ...] = ()

    def stage(self, name: str) -> StageReport:
        """The report of one stage by name (KeyError naming the known stages otherwise)."""
        for s in self.stages:
            if s.stage == name:
                return s
        raise KeyError(f"no stage {name!r}; stages: {', '.join(s.stage for s in self.stages)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "stages": [s.to_dict() for s in self.stages],
            "splits": {k: {**v.to_dict(), "plates": self.plates_per_split.get(k, 0)} for k, v in self.splits.items()},
            "warnings": list(self.warnings),
        }

    def to_json_bytes(self) -> bytes:
        """Deterministic JSON (sorted keys, UTF-8, trailing newline)."""
        return (json.dumps(self.to_dict(), sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    def to_markdown(self) -> str:
        """Fixed-width Markdown tables: one row per stage, then one row per split."""
        counts = [s.before for s in self.stages] + [s.after for s in self.stages] + list(self.splits.values())
        classes = _ordered({k for c in counts for k in c.by_class}, _CLASS_ORDER)
        modes = _ordered({k for c in counts for k in c.by_mode}, _MODE_ORDER)
        header = ["stage", "on", "in", "removed", "out", *classes, *modes, "removed by reason"]
        rows: list[list[str]] = []
        if self.stages:
            first = self.stages[0].before
            rows.append(["input", "", "", "", str(first.total), *_cols(first, classes, modes), ""])
        for s in self.stages:
            reasons = ", ".join(f"{k} {v}" for k, v in s.removed_by_reason.items())
            on = "yes" if s.enabled else "no"
            rows.append(
                [
                    s.stage,
                    on,
                    str(s.before.total),
                    str(s.removed),
                    str(s.after.total),
                    *_cols(s.after, classes, modes),
                    reasons,
                ]
            )
        out = [_table(header, rows)]
        if self.splits:
            split_header = ["split", "plates", "images", *classes, *modes]
            split_rows = [
                [name, str(self.plates_per_split.get(name, 0)), str(c.total), *_cols(c, classes, modes)]
                for name, c in self.splits.items()
            ]
            out.append(_table(split_header, split_rows))
        if self.warnings:
            out.append("\n".join(f"- warning: {w}" for w in self.warnings))
        return "\n\n".join(out) + "\n"


def _ordered(keys: set[str], preferred: tuple[str, ...]) -> list[str]:
    return [k for k in preferred if k in keys] + sorted(keys - set(preferred))


def _cols(c: Counts, classes: list[str], modes: list[str]) -> list[str]:
    return [str(c.by_class.get(k, 0)) for k in classes] + [str(c.by_mode.get(m, 0)) for m in modes]


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(cell.ljust(w) for cell, w in zip(cells, widths, strict=True)) + " |"

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])
