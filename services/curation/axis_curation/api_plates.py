"""Plate map JSON API: plates, one plate's wells as of an imaging round, one well's history.

Read-only: scientists, curators and admins (role ``scientist`` or one that implies it).
"""

from __future__ import annotations

from typing import Annotated, Any

from axis_contracts.wells import PlateType, validate_well
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response

from axis_curation.api_curate import services_of
from axis_curation.auth import Account, require_role
from axis_curation.colours import class_colour
from axis_curation.platemap import PlateView, class_title, imaging_rounds, plate_map_json

router = APIRouter(prefix="/v1", tags=["plates"])
Viewer = Annotated[Account, Depends(require_role("scientist"))]
Barcode = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]


@router.get("/plates")
def list_plates(request: Request, account: Viewer) -> dict[str, Any]:
    """Plates with ML scores, most recently imaged first."""
    return {"plates": services_of(request).repo.plates()}


@router.get("/plates/{barcode}", response_model=PlateView, response_model_exclude_none=True)
def get_plate(
    barcode: Barcode,
    request: Request,
    account: Viewer,
    at: Annotated[int | None, Query(alias="round", ge=0, le=100_000, description="imaging round, 0 = first")] = None,
) -> Response:
    """Every well of a plate as of one imaging round: fused ML probability and label, colour, model version,
    user score and whether they disagree. Fields without a value are left out (compact for 1536 wells)."""
    # The map is built as plain dicts in PlateView's shape and encoded once by pydantic's encoder, not built as
    # 4,600 models and re-validated against the response model (tests/unit/test_curation_rules.py holds the bytes
    # equal to PlateView's own encoding).
    svc = services_of(request)
    rounds = imaging_rounds(svc.repo.plate_times(barcode))
    if not rounds:
        raise HTTPException(status_code=404, detail=f"no images or scores for plate {barcode!r}")
    if at is not None and at >= len(rounds):
        raise HTTPException(
            status_code=404, detail=f"plate {barcode} has {len(rounds)} imaging rounds (0 … {len(rounds) - 1})"
        )
    selected = len(rounds) - 1 if at is None else at
    rows = svc.repo.plate_wells(barcode, until=rounds[selected].ended_at)
    body = plate_map_json(barcode, rows, svc.options.score_scheme, rounds=rounds, selected=selected)
    return Response(content=body, media_type="application/json")


@router.get("/plates/{barcode}/wells/{well}")
def get_well(
    barcode: Barcode,
    well: Annotated[str, Path(min_length=2, max_length=4)],
    request: Request,
    account: Viewer,
) -> dict[str, Any]:
    """A well's history: images per inspection, per-image scores per model version, user scores, curator labels,
    the queue items of its drops; every row with its inspection and imaging time."""
    svc = services_of(request)
    try:
        name = validate_well(well, PlateType.WELLS_1536)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=f"well: {exc}") from None
    history = svc.repo.well_history(barcode, name)
    if not history["images"] and not history["fused_scores"]:
        raise HTTPException(status_code=404, detail=f"nothing recorded for {barcode} {name}")
    scheme = svc.options.score_scheme
    for us in history["user_scores"]:
        us["title"] = class_title(us["raw_class"])
        us["colour"] = class_colour(scheme, us["raw_class"])
    return {"barcode": barcode, "well": name, **history}
