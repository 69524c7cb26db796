"""Dataset export: gather candidates from PostgreSQL, build with axis_core.dataset, write to S3, record it."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from axis_adapters.curation_repo import CurationRepo, DatasetExists, DatasetRecord
from axis_adapters.objectstore import ObjectStore, make_uri
from axis_contracts import DatasetExported
from axis_core.dataset import (
    Candidate,
    CuratorLabel,
    DatasetConfig,
    DatasetResult,
    build_dataset,
    build_test_set,
    dataset_card,
)
from pydantic import BaseModel, Field

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"


class ExportRequest(BaseModel):
    """What an admin asks for: a named dataset, its purpose, optional version, config overrides, plates."""

    name: str = Field(pattern=NAME_PATTERN, description="dataset name; also the folder in the datasets bucket")
    purpose: Literal["train", "test"] = "train"
    version: str | None = Field(default=None, pattern=NAME_PATTERN, description="default: next integer for this name")
    config: dict[str, Any] = Field(default_factory=dict, description="DatasetConfig overrides (nested, partial)")
    plates: list[str] | None = Field(default=None, description="only candidates from these plates (test sets)")


@dataclass(frozen=True)
class ExportResult:
    """A recorded dataset version and the build behind it."""

    record: DatasetRecord
    result: DatasetResult
    removed_uri: str

    def event(self, producer: str) -> DatasetExported:
        """The DatasetExported event announcing this version."""
        return event_for(self.record, producer)


def event_for(record: DatasetRecord, producer: str) -> DatasetExported:
    """DatasetExported for a recorded dataset (also used to re-publish)."""
    return DatasetExported(
        producer=producer,
        dataset_name=record.name,
        dataset_version=record.version,
        purpose=record.purpose,  # type: ignore[arg-type]
        manifest_uri=record.manifest_uri,
        manifest_sha256=record.manifest_sha256,
        qc_report_uri=record.qc_report_uri,
        card_uri=record.card_uri,
        counts=record.counts,
    )


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Nested dict merge: values of ``override`` win; nested mappings merge key by key."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def resolve_config(
    defaults: Mapping[str, Any], overrides: Mapping[str, Any], *, consensus_min: int, test_plates: Sequence[str]
) -> DatasetConfig:
    """DatasetConfig from: builder defaults < service consensus rule < configured defaults < request overrides,
    plus the frozen test set's plates in the guard. Raises pydantic ValidationError naming bad fields."""
    merged = deep_merge({"consensus": {"min_curators": consensus_min}}, defaults)
    merged = deep_merge(merged, overrides)
    return DatasetConfig.model_validate(merged).with_test_plates(test_plates)


def next_version(existing: Sequence[str]) -> str:
    """The next integer version after the integer versions already used (1 for a new name)."""
    numbers = [int(v) for v in existing if v.isdigit()]
    return str(max(numbers, default=0) + 1)


def _candidate(r: Mapping[str, Any], label_source: str, **extra: Any) -> Candidate:
    """One builder candidate from a repo row (fields shared by agreements and curated items)."""
    return Candidate(
        image_uri=r["image_uri"],
        imaging_mode=r["imaging_mode"],
        plate_barcode=r["plate_barcode"],
        well=r["well"],
        drop=r["drop_no"],
        inspection_id=r["inspection_id"],
        imaged_at=r["imaged_at"],
        label_source=label_source,
        ml_label=r["ml_label"],
        ml_probability=r["ml_probability"],
        model_version=r["model_version"],
        human_label=r["human_label"],
        human_class=r["human_class"],
        **extra,
    )


def candidates_from_rows(
    agreements: Sequence[Mapping[str, Any]], curated: Sequence[Mapping[str, Any]]
) -> list[Candidate]:
    """Builder candidates (one per image) from the repo's agreement and curated rows."""
    out = [_candidate(r, "agreement", sub_type=r["human_class"]) for r in agreements]
    for r in curated:
        labels = tuple(CuratorLabel(curator=c, label=lab, at=at) for c, lab, at in r["votes"])
        out.append(_candidate(r, "curated", curator_labels=labels))
    return out


class DatasetExporter:
    """Builds and publishes dataset versions (one exporter per service; stateless between calls)."""

    def __init__(
        self,
        *,
        repo: CurationRepo,
        store: ObjectStore,
        bucket: str,
        consensus_min: int,
        defaults: Mapping[str, Any] | None = None,
        max_image_bytes: int = 64 * 1024 * 1024,
        load_workers: int = 4,
    ) -> None:
        self.repo = repo
        self.store = store
        self.bucket = bucket
        self.consensus_min = consensus_min
        self.defaults = dict(defaults or {})
        self.max_image_bytes = max_image_bytes
        self.load_workers = load_workers

    def config_for(self, request: ExportRequest) -> DatasetConfig:
        """The effective config of a request (ValidationError on bad overrides)."""
        plates = self.repo.test_plates() if request.purpose == "train" else []
        return resolve_config(self.defaults, request.config, consensus_min=self.consensus_min, test_plates=plates)

    def _load(self, uri: str) -> bytes:
        return self.store.get_bytes(uri, max_bytes=self.max_image_bytes)

    def export(self, request: ExportRequest, *, created_by: str, now: datetime | None = None) -> ExportResult:
        """Build the dataset, write manifest / QC report / card to S3 and record it (DatasetExists on repeats)."""
        config = self.config_for(request)
        with self.repo.name_lock(request.name):
            existing = self.repo.datasets(request.name)
            if request.purpose == "test" and any(d.purpose == "test" for d in existing):
                raise DatasetExists(f"the frozen test set {request.name!r} was already exported; it is exported once")
            version = request.version or next_version([d.version for d in existing])
            if any(d.version == version for d in existing):
                raise DatasetExists(f"dataset {request.name!r} version {version!r} already exists")
            candidates = candidates_from_rows(
                self.repo.agreement_rows(request.plates), self.repo.curated_rows(request.plates)
            )
            build = build_test_set if request.purpose == "test" else build_dataset
            result = build(candidates, config, self._load, max_workers=self.load_workers)
            return self._write(request, version, result, created_by, now or datetime.now(UTC))

    def _write(
        self, request: ExportRequest, version: str, result: DatasetResult, created_by: str, now: datetime
    ) -> ExportResult:
        prefix = f"{request.name}/{version}"
        uri = {
            k: make_uri(self.bucket, f"{prefix}/{k}")
            for k in ("manifest.jsonl", "qc_report.json", "qc_report.md", "card.md", "removed.jsonl")
        }
        self.store.ensure_bucket(self.bucket)
        self.store.put_bytes(uri["manifest.jsonl"], result.manifest_bytes(), "application/x-ndjson")
        self.store.put_bytes(uri["qc_report.json"], result.report.to_json_bytes(), "application/json")
        self.store.put_bytes(uri["qc_report.md"], result.report.to_markdown().encode(), "text/markdown")
        removed = sorted((r.to_dict() for r in result.removed), key=lambda d: (d["stage"], d["image_uri"]))
        removed_bytes = "".join(json.dumps(d, sort_keys=True) + "\n" for d in removed).encode()
        self.store.put_bytes(uri["removed.jsonl"], removed_bytes, "application/x-ndjson")
        card = dataset_card(
            result,
            name=request.name,
            version=version,
            created_at=now,
            created_by=created_by,
            manifest_uri=uri["manifest.jsonl"],
        )
        self.store.put_bytes(uri["card.md"], card.encode(), "text/markdown")
        record = DatasetRecord(
            name=request.name,
            version=version,
            purpose=request.purpose,
            manifest_uri=uri["manifest.jsonl"],
            manifest_sha256=result.manifest_sha256,
            qc_report_uri=uri["qc_report.json"],
            card_uri=uri["card.md"],
            config=result.config.model_dump(mode="json"),
            counts=result.counts(),
            created_by=created_by,
            created_at=now,
        )
        self.repo.record_dataset(record, sorted(result.plates) if request.purpose == "test" else ())
        return ExportResult(record=record, result=result, removed_uri=uri["removed.jsonl"])
