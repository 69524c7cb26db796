"""Plate-map view: every well of the plate with its fused ML probability, colour and latest user score."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from axis_contracts.scheme import ScoreScheme, UnknownScoreClass
from axis_contracts.wells import PlateType, geometry, parse_well, row_names
from pydantic import BaseModel

from axis_curation.colours import crystal_alpha, crystal_fill


class UserScoreView(BaseModel):
    """The latest user score of a drop, in the facility's colours."""

    raw_class: str
    label: str
    colour: str
    user_id: str
    scored_at: datetime | None


class DropView(BaseModel):
    """The latest inspection of one drop."""

    drop: int
    inspection_id: str
    imaged_at: datetime
    probability: float | None
    ml_label: str | None
    model_name: str | None
    model_version: str | None
    mode_scores: dict[str, Any] | None
    user_score: UserScoreView | None


class WellView(BaseModel):
    """One well: the highest probability over its drops decides its colour."""

    well: str
    row: int
    col: int
    probability: float | None
    alpha: float
    fill: str
    model_name: str | None
    model_version: str | None
    user_score: UserScoreView | None
    drops: list[DropView]


class PlateView(BaseModel):
    """The whole plate, row by row."""

    barcode: str
    plate_type: str
    rows: list[str]
    columns: int
    scored_wells: int
    legend: dict[str, str]
    colour_scale: str
    wells: list[WellView]


SCALE_TEXT = "alpha = clamp((p - 0.4) / 0.6, 0, 1) ^ 0.7 of rgb(0,150,60): below 40 % invisible"


def _user_score(row: Mapping[str, Any], scheme: ScoreScheme) -> UserScoreView | None:
    raw = row.get("raw_class")
    if raw is None:
        return None
    try:
        colour = scheme.colour(raw)
    except UnknownScoreClass:
        colour = "#999999"
    return UserScoreView(
        raw_class=raw,
        label=row.get("human_label") or "",
        colour=colour,
        user_id=row.get("user_id") or "",
        scored_at=row.get("user_scored_at"),
    )


def plate_view(barcode: str, rows: Sequence[Mapping[str, Any]], scheme: ScoreScheme) -> PlateView:
    """Build the plate map from the repo's latest-inspection rows (one per well and drop)."""
    plate_type = PlateType(rows[0]["plate_type"]) if rows else PlateType.WELLS_96
    n_rows, n_cols = geometry(plate_type)
    names = row_names(plate_type)
    by_well: dict[str, list[DropView]] = {}
    for r in rows:
        prob = r.get("fused_probability")
        by_well.setdefault(r["well"], []).append(
            DropView(
                drop=r["drop"],
                inspection_id=r["inspection_id"],
                imaged_at=r["imaged_at"],
                probability=None if prob is None else float(prob),
                ml_label=r.get("ml_label"),
                model_name=r.get("model_name"),
                model_version=r.get("model_version"),
                mode_scores=r.get("mode_scores"),
                user_score=_user_score(r, scheme),
            )
        )
    wells: list[WellView] = []
    for ri in range(n_rows):
        for ci in range(n_cols):
            name = f"{names[ri]}{ci + 1}"
            drops = sorted(by_well.get(name, []), key=lambda d: d.drop)
            scored = [d for d in drops if d.probability is not None]
            best = max(scored, key=lambda d: d.probability or 0.0) if scored else None
            p = best.probability if best else None
            user = next((d.user_score for d in drops if d.user_score is not None), None)
            wells.append(
                WellView(
                    well=name,
                    row=ri,
                    col=ci,
                    probability=p,
                    alpha=crystal_alpha(p) if p is not None else 0.0,
                    fill=crystal_fill(p) if p is not None else "transparent",
                    model_name=best.model_name if best else None,
                    model_version=best.model_version if best else None,
                    user_score=user,
                    drops=drops,
                )
            )
    legend = dict(scheme.colours)
    return PlateView(
        barcode=barcode,
        plate_type=plate_type.value,
        rows=names,
        columns=n_cols,
        scored_wells=sum(1 for w in wells if w.probability is not None),
        legend=legend,
        colour_scale=SCALE_TEXT,
        wells=wells,
    )


def check_well(well: str) -> tuple[int, int]:
    """(row, col) of a well name, ValueError otherwise."""
    return parse_well(well.strip().upper())
