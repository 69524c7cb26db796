"""Plate formats, well names and the experiment key that orders all events of one drop."""

from __future__ import annotations

import re
from enum import StrEnum
from functools import cache


class PlateType(StrEnum):
    """SBS plate formats the facility images."""

    WELLS_96 = "96"
    WELLS_384 = "384"
    WELLS_1536 = "1536"


# rows x columns per format
_GEOMETRY: dict[PlateType, tuple[int, int]] = {
    PlateType.WELLS_96: (8, 12),
    PlateType.WELLS_384: (16, 24),
    PlateType.WELLS_1536: (32, 48),
}

_WELL_RE = re.compile(r"^([A-Z]{1,2})(\d{1,2})$")


def row_names(plate_type: PlateType) -> list[str]:
    """Row letters of a plate: A…H, A…P, or A…Z then AA…AF for 1536 wells."""
    return list(_row_names(PlateType(plate_type)))


@cache
def _row_names(plate_type: PlateType) -> tuple[str, ...]:
    rows, _ = _GEOMETRY[plate_type]
    letters = [chr(ord("A") + i) for i in range(26)]
    return tuple((letters + ["A" + c for c in letters])[:rows])


def geometry(plate_type: PlateType) -> tuple[int, int]:
    """(rows, columns) of a plate format."""
    return _GEOMETRY[PlateType(plate_type)]


def wells_of(plate_type: PlateType) -> list[str]:
    """All well names of a plate, row by row (A1, A2, …)."""
    _, cols = _GEOMETRY[PlateType(plate_type)]
    return [f"{r}{c}" for r in row_names(plate_type) for c in range(1, cols + 1)]


def parse_well(well: str) -> tuple[int, int]:
    """Zero-based (row, column) of a well name such as ``B7``; no format check."""
    m = _WELL_RE.match(well)
    if not m:
        raise ValueError(f"{well!r} is not a well name (expected a row letter and a column number, e.g. A1)")
    letters, col = m.groups()
    row = ord(letters[-1]) - ord("A") + (26 if len(letters) == 2 else 0)
    if len(letters) == 2 and letters[0] != "A":
        raise ValueError(f"{well!r} is not a well name (two-letter rows run AA…AF)")
    return row, int(col) - 1


def validate_well(well: str, plate_type: PlateType = PlateType.WELLS_96) -> str:
    """Return the normalised well name, or raise ValueError saying why it is not on the plate."""
    norm = well.strip().upper()
    pt = PlateType(plate_type)
    rows, cols = _GEOMETRY[pt]
    names = _row_names(pt)
    try:
        row, col = parse_well(norm)
    except ValueError:
        raise ValueError(
            f"{well!r} is not a well of a {pt.value}-well plate (rows {names[0]}-{names[-1]}, columns 1-{cols})"
        ) from None
    if not (0 <= row < rows and 0 <= col < cols):
        raise ValueError(
            f"{well!r} is not a well of a {pt.value}-well plate (rows {names[0]}-{names[-1]}, columns 1-{cols})"
        )
    return f"{names[row]}{col + 1}"


def experiment_key(plate_barcode: str, well: str, drop: int) -> str:
    """Kafka message key of a drop: all its events land on one partition, in order."""
    return f"{plate_barcode}:{well}:{drop}"
