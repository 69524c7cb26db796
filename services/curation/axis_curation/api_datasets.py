"""Dataset API: list, inspect, export (admin) and re-publish DatasetExported (admin)."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from axis_adapters.auth import Account, require_role
from axis_adapters.curation_repo import DatasetExists, DatasetRecord
from axis_adapters.kafka import publish_event
from axis_adapters.objectstore import ObjectMissing, ObjectStoreUnavailable
from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from axis_curation.api_curate import services_of
from axis_curation.context import Services
from axis_curation.export import NAME_PATTERN, ExportRequest, event_for

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["datasets"])
Viewer = Annotated[Account, Depends(require_role("curator"))]
Admin = Annotated[Account, Depends(require_role("admin"))]
Name = Annotated[str, Path(pattern=NAME_PATTERN)]


def _config_error(exc: ValidationError) -> RequestValidationError:
    """A 422 whose locations point into the request body's ``config`` (handled like any body error)."""
    return RequestValidationError(
        [{"loc": ("body", "config", *e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    )


async def _publish(svc: Services, record: DatasetRecord) -> bool:
    if svc.publisher is None:
        return False
    await publish_event(svc.publisher, event_for(record, svc.options.producer))
    return True


@router.get("/datasets")
def list_datasets(request: Request, account: Viewer, name: str | None = None) -> dict[str, Any]:
    """Recorded dataset versions, newest first."""
    return {"datasets": [d.model_dump(mode="json") for d in services_of(request).repo.datasets(name)]}


@router.get("/datasets/{name}/{version}")
def get_dataset(name: Name, version: Name, request: Request, account: Viewer) -> dict[str, Any]:
    """One dataset version with its QC report (read back from the object store)."""
    svc = services_of(request)
    found = [d for d in svc.repo.datasets(name) if d.version == version]
    if not found:
        raise HTTPException(status_code=404, detail=f"no dataset {name} version {version}")
    record = found[0]
    try:
        report = json.loads(svc.store.get_bytes(record.qc_report_uri))
    except (ObjectMissing, ObjectStoreUnavailable, ValueError) as exc:
        report = {"error": str(exc)}
    return {**record.model_dump(mode="json"), "qc_report": report}


@router.post("/datasets", status_code=201)
async def export_dataset(body: ExportRequest, request: Request, admin: Admin) -> dict[str, Any]:
    """Build a dataset version, write it to the datasets bucket, record it, publish DatasetExported."""
    svc = services_of(request)
    try:
        result = await run_in_threadpool(svc.exporter.export, body, created_by=admin.username)
    except ValidationError as exc:
        raise _config_error(exc) from None
    except DatasetExists as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    except ObjectStoreUnavailable as exc:
        raise HTTPException(status_code=503, detail=f"object store unreachable: {exc}") from None
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from None
    record = result.record
    out: dict[str, Any] = {
        **record.model_dump(mode="json"),
        "removed_uri": result.removed_uri,
        "removed_by_stage": result.result.removed_by_stage(),
        "warnings": list(result.result.warnings),
    }
    try:
        out["published"] = await _publish(svc, record)
    except Exception as exc:  # the dataset is recorded; say how to retry instead of failing silently
        log.error("DatasetExported for %s/%s not published: %s", record.name, record.version, exc)
        out["published"] = False
        retry = f"/v1/datasets/{record.name}/{record.version}/publish"
        out["publish_error"] = f"{type(exc).__name__}: {exc}; retry with POST {retry}"
    return out


@router.post("/datasets/{name}/{version}/publish")
async def republish(name: Name, version: Name, request: Request, admin: Admin) -> dict[str, Any]:
    """Publish DatasetExported again for a recorded version (after a broker outage)."""
    svc = services_of(request)
    found = [d for d in await run_in_threadpool(svc.repo.datasets, name) if d.version == version]
    if not found:
        raise HTTPException(status_code=404, detail=f"no dataset {name} version {version}")
    try:
        published = await _publish(svc, found[0])
    except Exception as exc:
        raise HTTPException(status_code=503, detail=f"broker unreachable: {type(exc).__name__}: {exc}") from None
    return {"name": name, "version": version, "published": published}
