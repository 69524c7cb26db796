"""Dataset API: versions (QC report, files, diff), export jobs (admin starts them) and re-publishing."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any

from axis_adapters.kafka import publish_event
from axis_adapters.objectstore import ObjectMissing, ObjectStoreUnavailable, make_uri, parse_uri
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import iterate_in_threadpool, run_in_threadpool

from axis_curation.api_curate import services_of
from axis_curation.auth import Account, require_role
from axis_curation.context import Services
from axis_curation.curation_repo import DatasetExists, DatasetRecord
from axis_curation.export import NAME_PATTERN, OBJECTS, ExportRequest, event_for, frozen_test_set
from axis_curation.export_jobs import job_json
from axis_curation.export_jobs_repo import JobConflict
from axis_curation.object_streams import ObjectStreams, WholeObjectStreams, iter_lines

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["datasets"])
Viewer = Annotated[Account, Depends(require_role("scientist", "curator"))]  # read-only roles and up
Admin = Annotated[Account, Depends(require_role("admin"))]
Name = Annotated[str, Path(pattern=NAME_PATTERN)]
FILE_TYPES = {
    "manifest.jsonl": "application/x-ndjson",
    "qc_report.json": "application/json",
    "qc_report.md": "text/markdown; charset=utf-8",
    "removed.jsonl": "application/x-ndjson",
    "card.md": "text/markdown; charset=utf-8",
}
DIFF_ITEMS = 100
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _config_error(exc: ValidationError) -> RequestValidationError:
    """A 422 whose locations point into the request body's ``config`` (handled like any body error)."""
    return RequestValidationError(
        [{"loc": ("body", "config", *e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    )


def _runner(svc: Services) -> Any:
    if svc.exports is None:
        raise HTTPException(status_code=503, detail="this curation service runs no export jobs")
    return svc.exports


def _streams(svc: Services) -> ObjectStreams:
    return svc.object_streams or WholeObjectStreams(svc.store)


def _record(svc: Services, name: str, version: str) -> DatasetRecord:
    found = [d for d in svc.repo.datasets(name) if d.version == version]
    if not found:
        raise HTTPException(status_code=404, detail=f"no dataset {name} version {version}")
    return found[0]


@router.get("/datasets")
def list_datasets(request: Request, account: Viewer, name: str | None = None) -> dict[str, Any]:
    """Recorded dataset versions, newest first."""
    return {"datasets": [d.model_dump(mode="json") for d in services_of(request).repo.datasets(name)]}


@router.post("/datasets", status_code=202)
async def export_dataset(body: ExportRequest, request: Request, admin: Admin) -> JSONResponse:
    """Start an export job: 202 with its id at once; 409 naming the job that already exports this version."""
    svc = services_of(request)
    runner = _runner(svc)
    try:
        await run_in_threadpool(svc.exporter.config_for, body)
        job = await run_in_threadpool(
            runner.jobs.create,
            name=body.name,
            version=body.version,
            purpose=body.purpose,
            request=body.model_dump(mode="json"),
            created_by=admin.username,
        )
    except ValidationError as exc:
        raise _config_error(exc) from None
    except JobConflict as exc:
        url = f"/v1/datasets/jobs/{exc.job_id}"
        return JSONResponse(status_code=409, content={"detail": str(exc), "job_id": exc.job_id, "status_url": url})
    except DatasetExists as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    runner.wake()
    out = job_json(job)
    return JSONResponse(status_code=202, content=out, headers={"Location": out["status_url"]})


@router.get("/datasets/jobs")
def list_jobs(
    request: Request,
    account: Viewer,
    name: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    unfinished: bool = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Export jobs, newest first: stage, items done / total, state, message, resulting version."""
    jobs = _runner(services_of(request)).jobs.recent(name=name, unfinished=unfinished, limit=limit)
    return {"jobs": [job_json(j) for j in jobs]}


@router.get("/datasets/jobs/{job_id}")
def get_job(job_id: Annotated[int, Path(ge=1, le=2**62)], request: Request, account: Viewer) -> dict[str, Any]:
    """One export job."""
    job = _runner(services_of(request)).jobs.get(job_id)
    if job is None:
        raise HTTPException(status_code=404, detail=f"no export job {job_id}")
    return job_json(job)


@router.get("/datasets/{name}/{version}")
def get_dataset(name: Name, version: Name, request: Request, account: Viewer) -> dict[str, Any]:
    """One dataset version with its QC report (read back from the object store) and its file links."""
    svc = services_of(request)
    record = _record(svc, name, version)
    try:
        report = json.loads(svc.store.get_bytes(record.qc_report_uri))
    except (ObjectMissing, ObjectStoreUnavailable, ValueError) as exc:
        report = {"error": str(exc)}
    files = {f: f"/v1/datasets/{name}/{version}/files/{f}" for f in FILE_TYPES}
    return {**record.model_dump(mode="json"), "qc_report": report, "files": files}


def _file_uri(record: DatasetRecord, file: str) -> str:
    if file == "manifest.jsonl":
        return record.manifest_uri
    if file == "qc_report.json":
        return record.qc_report_uri
    bucket, key = parse_uri(record.manifest_uri)
    return make_uri(bucket, key.rsplit("/", 1)[0] + "/" + file)


@router.get("/datasets/{name}/{version}/files/{file}")
async def download(name: Name, version: Name, file: str, request: Request, account: Viewer) -> StreamingResponse:
    """A file of the version (manifest, QC report, removals, card), streamed from the object store."""
    if file not in FILE_TYPES:
        raise HTTPException(status_code=404, detail=f"no file {file!r}; files: {', '.join(OBJECTS)}")
    svc = services_of(request)
    record = await run_in_threadpool(_record, svc, name, version)
    uri = _file_uri(record, file)
    streams = _streams(svc)
    try:
        size = await run_in_threadpool(streams.size, uri)
    except ObjectMissing:
        raise HTTPException(status_code=404, detail=f"{file} of {name} {version} is not in the object store") from None
    except ObjectStoreUnavailable as exc:
        raise HTTPException(status_code=503, detail=f"object store unreachable: {exc}") from None
    headers = {
        "Content-Disposition": f'attachment; filename="{name}-{version}-{file}"',
        "Content-Length": str(size),
        "Cache-Control": "private, no-store",
    }
    chunks: Iterator[bytes] = streams.chunks(uri)
    return StreamingResponse(iterate_in_threadpool(chunks), media_type=FILE_TYPES[file], headers=headers)


def _previous(svc: Services, record: DatasetRecord, against: str | None) -> DatasetRecord | None:
    if against is not None:
        return _record(svc, record.name, against)
    versions = sorted(svc.repo.datasets(record.name), key=lambda d: (d.created_at or _EPOCH, d.version))
    i = [d.version for d in versions].index(record.version)
    return versions[i - 1] if i > 0 else None


def _rows(streams: ObjectStreams, uri: str) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    for line in iter_lines(streams, uri):
        row = json.loads(line)
        out[row["image_uri"]] = (row["label"], row["split"])
    return out


def _count_changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, dict[str, int]]]:
    out: dict[str, dict[str, dict[str, int]]] = {}
    for split in sorted(set(before) | set(after)):
        b, a = before.get(split, {}), after.get(split, {})
        out[split] = {
            k: {"before": int(b.get(k, 0)), "after": int(a.get(k, 0)), "change": int(a.get(k, 0)) - int(b.get(k, 0))}
            for k in sorted(set(b) | set(a))
        }
    return out


def diff_versions(svc: Services, record: DatasetRecord, previous: DatasetRecord | None) -> dict[str, Any]:
    """Counts and items added / removed / relabelled / moved between two versions (from their manifests)."""
    if previous is None:
        return {"name": record.name, "version": record.version, "previous": None}
    streams = _streams(svc)
    new, old = _rows(streams, record.manifest_uri), _rows(streams, previous.manifest_uri)
    added = sorted(set(new) - set(old))
    removed = sorted(set(old) - set(new))
    both = sorted(set(new) & set(old))
    relabelled = [u for u in both if new[u][0] != old[u][0]]
    moved = [u for u in both if new[u][1] != old[u][1]]

    def show(uris: list[str], rows: dict[str, tuple[str, str]]) -> list[dict[str, str]]:
        return [{"image_uri": u, "label": rows[u][0], "split": rows[u][1]} for u in uris[:DIFF_ITEMS]]

    return {
        "name": record.name,
        "version": record.version,
        "previous": previous.version,
        "same_manifest": record.manifest_sha256 == previous.manifest_sha256,
        "counts": _count_changes(previous.counts, record.counts),
        "items": {"added": len(added), "removed": len(removed), "relabelled": len(relabelled), "moved": len(moved)},
        "added": show(added, new),
        "removed": show(removed, old),
        "relabelled": [{**r, "was": old[r["image_uri"]][0]} for r in show(relabelled, new)],
        "moved": [{**r, "was": old[r["image_uri"]][1]} for r in show(moved, new)],
        "listed_at_most": DIFF_ITEMS,
    }


@router.get("/datasets/{name}/{version}/diff")
def diff(
    name: Name,
    version: Name,
    request: Request,
    account: Viewer,
    against: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
) -> dict[str, Any]:
    """What changed since the previous version of the name (or ``against``): counts and items."""
    svc = services_of(request)
    record = _record(svc, name, version)
    try:
        return diff_versions(svc, record, _previous(svc, record, against))
    except ObjectMissing as exc:
        raise HTTPException(status_code=404, detail=f"a manifest is missing: {exc}") from None
    except ObjectStoreUnavailable as exc:
        raise HTTPException(status_code=503, detail=f"object store unreachable: {exc}") from None


async def _publish(svc: Services, record: DatasetRecord) -> bool:
    if svc.publisher is None:
        return False
    test_set = frozen_test_set(await run_in_threadpool(svc.repo.datasets))
    await publish_event(svc.publisher, event_for(record, svc.options.producer, test_set=test_set))
    return True


@router.post("/datasets/{name}/{version}/publish")
async def republish(name: Name, version: Name, request: Request, admin: Admin) -> dict[str, Any]:
    """Publish DatasetExported again for a recorded version (after a broker outage)."""
    svc = services_of(request)
    record = await run_in_threadpool(_record, svc, name, version)
    try:
        published = await _publish(svc, record)
    except Exception as exc:
        raise HTTPException(status_code=503, detail=f"broker unreachable: {type(exc).__name__}: {exc}") from None
    return {"name": name, "version": version, "published": published}
