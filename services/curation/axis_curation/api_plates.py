"""Plate map JSON API: plates, one plate's wells, one well's history."""

from __future__ import annotations

from typing import Annotated, Any

from axis_adapters.auth import Account, require_role
from axis_contracts.wells import PlateType, validate_well
from fastapi import APIRouter, Depends, HTTPException, Path, Request

from axis_curation.api_curate import services_of
from axis_curation.platemap import PlateView, plate_view

router = APIRouter(prefix="/v1", tags=["plates"])
Viewer = Annotated[Account, Depends(require_role("curator"))]
Barcode = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")]


@router.get("/plates")
def list_plates(request: Request, account: Viewer) -> dict[str, Any]:
    """Plates with ML scores, most recently imaged first."""
    return {"plates": services_of(request).repo.plates()}


@router.get("/plates/{barcode}", response_model=PlateView)
def get_plate(barcode: Barcode, request: Request, account: Viewer) -> PlateView:
    """Every well of a plate: fused ML probability (latest inspection), colour, model version, user score."""
    svc = services_of(request)
    rows = svc.repo.plate_wells(barcode)
    if not rows:
        raise HTTPException(status_code=404, detail=f"no images or scores for plate {barcode!r}")
    return plate_view(barcode, rows, svc.options.score_scheme)


@router.get("/plates/{barcode}/wells/{well}")
def get_well(
    barcode: Barcode,
    well: Annotated[str, Path(min_length=2, max_length=4)],
    request: Request,
    account: Viewer,
) -> dict[str, Any]:
    """A well's history: images per inspection, per-image scores per model version, user scores, curator labels."""
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
        try:
            us["colour"] = scheme.colour(us["raw_class"])
        except ValueError:
            us["colour"] = "#999999"
    return {"barcode": barcode, "well": name, **history}
