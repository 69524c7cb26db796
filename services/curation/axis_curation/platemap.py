"""Plate-map view: every well with its fused ML probability and label, its latest user score, and whether they
disagree, as of one imaging round of the plate (the inspection selector)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from axis_contracts.scheme import ScoreScheme
from axis_contracts.wells import PlateType, geometry, parse_well, row_names
from pydantic import BaseModel
from pydantic_core import to_json

from axis_curation.colours import UNKNOWN_GREY, class_colour, crystal_alpha, crystal_fill, display_colour

# A plate is imaged well after well; a pause longer than this starts the next imaging round (inspection).
ROUND_GAP = timedelta(hours=2)


class UserScoreView(BaseModel):
    """The latest user score of a drop, in the facility's colours (the page draws ``legend``'s display colour)."""

    raw_class: str
    label: str
    colour: str
    user_id: str
    scored_at: datetime | None = None


class DropView(BaseModel):
    """One drop's inspection in the selected round (compact: the well carries the model)."""

    drop: int
    inspection_id: str
    imaged_at: datetime
    probability: float | None = None
    ml_label: str | None = None
    modes: dict[str, float] | None = None  # per-mode probability, visible first
    user_class: str | None = None


class WellView(BaseModel):
    """One well: the highest probability over its drops decides its colour; ``disagrees`` marks a drop whose
    ML label and user label differ. Fields without a value are left out of the response."""

    well: str
    row: int
    col: int
    probability: float | None = None
    alpha: float
    fill: str
    ml_label: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    user_score: UserScoreView | None = None
    disagrees: bool = False
    drops: list[DropView]


class ClassView(BaseModel):
    """A user-score class as the legend shows it."""

    name: str
    title: str
    label: str
    colour: str


class ImagingRound(BaseModel):
    """One imaging round of the plate: the drops imaged between ``started_at`` and ``ended_at``."""

    index: int
    started_at: datetime
    ended_at: datetime
    inspections: int


class PlateView(BaseModel):
    """The whole plate, row by row, as of ``rounds[selected]``."""

    barcode: str
    plate_type: str
    rows: list[str]
    columns: int
    scored_wells: int
    disagreements: int
    legend: dict[str, str]
    classes: list[ClassView]
    colour_scale: str
    rounds: list[ImagingRound]
    selected: int | None = None
    wells: list[WellView]


SCALE_TEXT = "the stronger the green, the likelier a crystal: none below 40 %, rising quickly above, full at 100 %"


def class_title(raw: str) -> str:
    """A class name as people write it: ``single_crystals`` -> ``Single crystals``."""
    text = raw.replace("_", " ").strip()
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class _Span:
    start: datetime
    end: datetime
    count: int


def imaging_rounds(times: Sequence[tuple[datetime, int]], gap: timedelta = ROUND_GAP) -> list[ImagingRound]:
    """Group a plate's (imaging time, inspections) into rounds, oldest first: a pause over ``gap`` starts one."""
    spans: list[_Span] = []
    for at, n in sorted(times):
        if spans and at - spans[-1].end <= gap:
            last = spans[-1]
            spans[-1] = _Span(last.start, at, last.count + n)
        else:
            spans.append(_Span(at, at, n))
    return [ImagingRound(index=i, started_at=s.start, ended_at=s.end, inspections=s.count) for i, s in enumerate(spans)]


def _user_score(row: Mapping[str, Any], scheme: ScoreScheme, cache: dict[str, str]) -> dict[str, Any] | None:
    raw = row.get("raw_class")
    if raw is None:
        return None
    colour = cache.get(raw)
    if colour is None:  # looked up once per class and plate (1,536 wells, a handful of classes)
        colour = cache[raw] = class_colour(scheme, raw)
    out = {
        "raw_class": raw,
        "label": row.get("human_label") or "",
        "colour": colour,
        "user_id": row.get("user_id") or "",
    }
    at = row.get("user_scored_at")
    if at is not None:
        out["scored_at"] = at
    return out


def _modes(raw: Any) -> dict[str, float] | None:
    """Per-mode probabilities, visible first, from {mode: probability} (the repo's) or {mode: {probability, …}}."""
    if not isinstance(raw, Mapping):
        return None
    out: dict[str, float] = {}
    for m in sorted(raw, key=lambda k: (k != "visible", k)):
        v = raw[m]
        p = v.get("probability") if isinstance(v, Mapping) else v
        if isinstance(p, int | float) and not isinstance(p, bool):
            out[m] = float(p)
    return out or None


def plate_map(
    barcode: str,
    rows: Sequence[Mapping[str, Any]],
    scheme: ScoreScheme,
    *,
    rounds: Sequence[ImagingRound] = (),
    selected: int | None = None,
) -> dict[str, Any]:
    """The plate map as JSON-ready dicts in the shape of :class:`PlateView`, fields without a value left out.

    Built from the repo's rows (one per well and drop, the selected round's inspections) without constructing a
    pydantic model per well and drop: a 1,536-well plate has 4,600 of them, and validating values that come
    from the service's own read model cost more than the query (``plate_view`` validates the result instead).
    """
    plate_type = PlateType(rows[0]["plate_type"]) if rows else PlateType.WELLS_96
    n_rows, n_cols = geometry(plate_type)
    names = row_names(plate_type)
    by_well: dict[str, list[tuple[dict[str, Any], dict[str, Any] | None, Mapping[str, Any]]]] = {}
    colours: dict[str, str] = {}
    for r in rows:
        prob = r.get("fused_probability")
        user = _user_score(r, scheme, colours)
        drop: dict[str, Any] = {"drop": r["drop"], "inspection_id": r["inspection_id"], "imaged_at": r["imaged_at"]}
        if prob is not None:
            drop["probability"] = float(prob)
        if r.get("ml_label") is not None:
            drop["ml_label"] = r["ml_label"]
        modes = _modes(r.get("mode_scores"))
        if modes is not None:
            drop["modes"] = modes
        if user is not None:
            drop["user_class"] = user["raw_class"]
        by_well.setdefault(r["well"], []).append((drop, user, r))
    wells: list[dict[str, Any]] = []
    scored_wells = disagreements = 0
    for ri in range(n_rows):
        for ci in range(n_cols):
            name = f"{names[ri]}{ci + 1}"
            entries = by_well.get(name)
            well: dict[str, Any] = {"well": name, "row": ri, "col": ci}
            if not entries:
                well.update(alpha=0.0, fill="transparent", disagrees=False, drops=[])
                wells.append(well)
                continue
            if len(entries) > 1:
                entries.sort(key=lambda e: e[0]["drop"])
            best = None
            for e in entries:
                p = e[0].get("probability")
                if p is not None and (best is None or p > best[0]["probability"]):
                    best = e
            user = next((u for _, u, _ in entries if u is not None), None)
            disagrees = any(
                d.get("ml_label") and u and u["label"] and d["ml_label"] != u["label"] for d, u, _ in entries
            )
            if best is not None:
                p = best[0]["probability"]
                scored_wells += 1
                well.update(probability=p, alpha=crystal_alpha(p), fill=crystal_fill(p))
                if best[0].get("ml_label") is not None:
                    well["ml_label"] = best[0]["ml_label"]
                for key in ("model_name", "model_version"):
                    if best[2].get(key) is not None:
                        well[key] = best[2][key]
            else:
                well.update(alpha=0.0, fill="transparent")
            if user is not None:
                well["user_score"] = user
            disagreements += bool(disagrees)
            well.update(disagrees=bool(disagrees), drops=[e[0] for e in entries])
            wells.append(well)
    classes = [
        {"name": c, "title": class_title(c), "label": label,
         "colour": display_colour(scheme.colours.get(c, UNKNOWN_GREY))}
        for c, label in scheme.classes.items()
    ]  # fmt: skip
    view: dict[str, Any] = {
        "barcode": barcode,
        "plate_type": plate_type.value,
        "rows": names,
        "columns": n_cols,
        "scored_wells": scored_wells,
        "disagreements": disagreements,
        "legend": {c["name"]: c["colour"] for c in classes},
        "classes": classes,
        "colour_scale": SCALE_TEXT,
        "rounds": [r.model_dump() for r in rounds],
    }
    if selected is not None:
        view["selected"] = selected
    view["wells"] = wells
    return view


def plate_map_json(
    barcode: str,
    rows: Sequence[Mapping[str, Any]],
    scheme: ScoreScheme,
    *,
    rounds: Sequence[ImagingRound] = (),
    selected: int | None = None,
) -> bytes:
    """:func:`plate_map` encoded by pydantic's JSON encoder (the bytes ``PlateView.model_dump_json`` writes)."""
    return to_json(plate_map(barcode, rows, scheme, rounds=rounds, selected=selected))


def plate_view(
    barcode: str,
    rows: Sequence[Mapping[str, Any]],
    scheme: ScoreScheme,
    *,
    rounds: Sequence[ImagingRound] = (),
    selected: int | None = None,
) -> PlateView:
    """:func:`plate_map` validated as a :class:`PlateView` (tests, and callers that want the model)."""
    return PlateView.model_validate(plate_map(barcode, rows, scheme, rounds=rounds, selected=selected))


def check_well(well: str) -> tuple[int, int]:
    """(row, col) of a well name, ValueError otherwise."""
    return parse_well(well.strip().upper())
