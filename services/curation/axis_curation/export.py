"""Dataset export: build a version from streamed candidate rows with axis_core.dataset and write it to S3.

The job around it (claim, progress, registration of the version, DatasetExported) is ``export_jobs``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

from axis_adapters.objectstore import ObjectStore, make_uri
from axis_contracts import DatasetExported
from axis_contracts.events import DatasetPointer
from axis_core.dataset import (
    Candidate,
    CuratorLabel,
    DatasetConfig,
    DatasetResult,
    build_dataset,
    build_test_set,
    dataset_card,
    measure_candidates,
    stages,
)
from axis_core.dataset.model import ImageMeasurement, Item
from pydantic import BaseModel, Field, field_validator

from axis_curation.curation_repo import CurationRepo, DatasetRecord
from axis_curation.export_jobs_repo import next_version

__all__ = [
    "NAME_PATTERN", "DatasetExporter", "ExportRequest", "event_for", "frozen_test_set", "next_version", "resolve_config"
]  # fmt: skip

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"
PlateBarcode = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
"""A plate barcode as a request names it (no control characters: they cannot be stored or matched)."""


class ExportRequest(BaseModel):
    """What an admin asks for: a named dataset, its purpose, optional version, config overrides, plates."""

    name: str = Field(pattern=NAME_PATTERN, description="dataset name; also the folder in the datasets bucket")
    purpose: Literal["train", "test"] = "train"
    version: str | None = Field(default=None, pattern=NAME_PATTERN, description="default: next integer for this name")
    config: dict[str, Any] = Field(default_factory=dict, description="DatasetConfig overrides (nested, partial)")
    plates: list[PlateBarcode] | None = Field(default=None, description="only candidates from these plates (test sets)")

    @field_validator("name")
    @classmethod
    def _not_a_route(cls, v: str) -> str:
        if v == "jobs":
            raise ValueError("'jobs' names the export jobs (/v1/datasets/jobs); choose another dataset name")
        return v


def frozen_test_set(records: Sequence[DatasetRecord]) -> DatasetRecord | None:
    """The newest dataset exported with purpose=test (what a train dataset is evaluated on), or None."""
    tests = [r for r in records if r.purpose == "test"]
    return max(tests, key=lambda r: (r.created_at or datetime.min.replace(tzinfo=UTC), r.name, r.version), default=None)


def event_for(record: DatasetRecord, producer: str, *, test_set: DatasetRecord | None = None) -> DatasetExported:
    """DatasetExported for a recorded dataset (also used to re-publish); a train set names its frozen test set,
    so that the trainer needs no query of curation's tables."""
    pointer = None
    if test_set is not None and record.purpose == "train":
        pointer = DatasetPointer(
            dataset_name=test_set.name,
            dataset_version=test_set.version,
            manifest_uri=test_set.manifest_uri,
            manifest_sha256=test_set.manifest_sha256,
        )
    return DatasetExported(
        test_set=pointer,
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


def candidate_from_row(r: Mapping[str, Any]) -> Candidate:
    """One builder candidate from a streamed repo row (``source`` agreement or curated)."""
    if r["source"] == "agreement":
        return _candidate(r, "agreement", sub_type=r["human_class"])
    labels = tuple(CuratorLabel(curator=c, label=lab, at=at) for c, lab, at in r["votes"])
    return _candidate(r, "curated", curator_labels=labels)


class Progress(Protocol):
    """Where an export reports its stage and items (a job row; a no-op for callers that do not care)."""

    def stage(self, name: str, total: int) -> None:
        """A new stage of ``total`` items begins (the previous one is finished)."""

    def advance(self, n: int = 1) -> None:
        """``n`` more items of the current stage are done."""


class NoProgress:
    """Progress that goes nowhere."""

    def stage(self, name: str, total: int) -> None:
        return None

    def advance(self, n: int = 1) -> None:
        return None


STAGES = ("reading", "measuring", "building", "writing", "registering")
"""The stages of an export job, in order (``items`` are rows read, images measured, candidates, objects)."""
OBJECTS = ("manifest.jsonl", "qc_report.json", "qc_report.md", "removed.jsonl", "card.md")


class DatasetExporter:
    """Builds dataset versions and writes their objects (one exporter per service; stateless between calls)."""

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
        measure_batch: int = 128,
    ) -> None:
        self.repo = repo
        self.store = store
        self.bucket = bucket
        self.consensus_min = consensus_min
        self.defaults = dict(defaults or {})
        self.max_image_bytes = max_image_bytes
        self.load_workers = load_workers
        self.measure_batch = measure_batch

    def config_for(self, request: ExportRequest) -> DatasetConfig:
        """The effective config of a request (ValidationError on bad overrides)."""
        plates = self.repo.test_plates() if request.purpose == "train" else []
        return resolve_config(self.defaults, request.config, consensus_min=self.consensus_min, test_plates=plates)

    def _load(self, uri: str) -> bytes:
        return self.store.get_bytes(uri, max_bytes=self.max_image_bytes)

    @staticmethod
    def read(total: int, rows: Iterable[Mapping[str, Any]], progress: Progress) -> list[Candidate]:
        """Builder candidates from the streamed candidate rows (``total`` of them)."""
        progress.stage("reading", total)
        candidates: list[Candidate] = []
        for r in rows:
            candidates.append(candidate_from_row(r))
            progress.advance()
        return candidates

    def build(self, request: ExportRequest, candidates: Sequence[Candidate], progress: Progress) -> DatasetResult:
        """Measure the images that pass label consensus in bounded batches, then run the QC stages and the split."""
        config = self.config_for(request)
        kept = stages.label_consensus([Item(c) for c in candidates], config.consensus).kept
        uris = sorted({it.candidate.image_uri for it in kept})
        del kept
        progress.stage("measuring", len(uris))
        measured: dict[str, ImageMeasurement] = {}
        for i in range(0, len(uris), self.measure_batch):
            chunk = uris[i : i + self.measure_batch]
            measured.update(
                measure_candidates(
                    chunk, self._load, analysis_max_side=config.analysis_max_side, max_workers=self.load_workers
                )
            )
            progress.advance(len(chunk))
        progress.stage("building", len(candidates))
        build = build_test_set if request.purpose == "test" else build_dataset
        result = build(candidates, config, None, measurements=measured)
        progress.advance(len(candidates))
        return result

    def write(
        self,
        request: ExportRequest,
        version: str,
        result: DatasetResult,
        *,
        created_by: str,
        now: datetime | None = None,
        progress: Progress | None = None,
    ) -> tuple[DatasetRecord, str]:
        """Write manifest, QC report, removals and card under ``<name>/<version>/``; the record to register
        (not registered here) and the removals' URI."""
        progress = progress or NoProgress()
        progress.stage("writing", len(OBJECTS))
        now = now or datetime.now(UTC)
        prefix = f"{request.name}/{version}"
        uri = {k: make_uri(self.bucket, f"{prefix}/{k}") for k in OBJECTS}
        self.store.ensure_bucket(self.bucket)
        removed = sorted((r.to_dict() for r in result.removed), key=lambda d: (d["stage"], d["image_uri"]))
        card = dataset_card(
            result,
            name=request.name,
            version=version,
            created_at=now,
            created_by=created_by,
            manifest_uri=uri["manifest.jsonl"],
        )
        objects: list[tuple[str, Callable[[], bytes], str]] = [
            ("manifest.jsonl", result.manifest_bytes, "application/x-ndjson"),
            ("qc_report.json", result.report.to_json_bytes, "application/json"),
            ("qc_report.md", lambda: result.report.to_markdown().encode(), "text/markdown"),
            (
                "removed.jsonl",
                lambda: "".join(json.dumps(d, sort_keys=True) + "\n" for d in removed).encode(),
                "application/x-ndjson",
            ),
            ("card.md", card.encode, "text/markdown"),  # last: a card means the rest is written
        ]
        for key, data, content_type in objects:
            self.store.put_bytes(uri[key], data(), content_type)
            progress.advance()
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
        return record, uri["removed.jsonl"]
