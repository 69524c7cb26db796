"""Run the dataset stages in order and assemble manifest rows, QC report and removals."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Literal

from axis_core.dataset import stages
from axis_core.dataset.config import DatasetConfig
from axis_core.dataset.imageqc import measure_image
from axis_core.dataset.manifest import encode_manifest
from axis_core.dataset.model import Candidate, ImageFailure, ImageMeasurement, Item, ManifestRow, Removal, Split
from axis_core.dataset.report import Counts, QCReport, StageReport, stage_report
from axis_core.dataset.split import assign_plates, split_warnings

ImageLoader = Callable[[str], bytes]
"""Given an image URI, return its bytes (the caller's I/O: object store, file system, cache)."""

Purpose = Literal["train", "test"]


@dataclass(frozen=True)
class DatasetResult:
    """A built dataset: manifest rows, QC report and every removed item with its stage and reason."""

    rows: tuple[ManifestRow, ...]
    report: QCReport
    removed: tuple[Removal, ...]
    config: DatasetConfig
    purpose: Purpose
    source_model_versions: dict[str, int]

    @cached_property
    def _manifest(self) -> tuple[bytes, str]:
        return encode_manifest(self.rows)

    def manifest_bytes(self) -> bytes:
        """The manifest as deterministic JSON Lines."""
        return self._manifest[0]

    @property
    def manifest_sha256(self) -> str:
        """SHA-256 of the manifest bytes."""
        return self._manifest[1]

    @property
    def plates(self) -> frozenset[str]:
        """Plates present in the dataset (for a frozen test set: the plates the guard must exclude)."""
        return frozenset(r.plate_barcode for r in self.rows)

    @property
    def warnings(self) -> tuple[str, ...]:
        """Plain-language warnings (empty splits, unreadable images)."""
        return self.report.warnings

    def counts(self) -> dict[str, dict[str, int]]:
        """Counts per split (and ``all``) by class and mode, e.g. for DatasetExported.counts."""
        out: dict[str, dict[str, int]] = {}
        for name, c in {"all": self.report.stages[-1].after, **self.report.splits}.items():
            out[name] = {"images": c.total, **c.by_class, **c.by_mode}
        return out

    def removals_bytes(self) -> bytes:
        """Every removal (stage, reason, detail, URI) as deterministic JSON Lines, in stage order then URI."""
        order = {name: i for i, name in enumerate(stages.STAGE_ORDER)}
        rows = sorted(self.removed, key=lambda r: (order.get(r.stage, 99), r.item.candidate.image_uri))
        lines = [json.dumps(r.to_dict(), sort_keys=True, ensure_ascii=True, separators=(",", ":")) for r in rows]
        return "".join(line + "\n" for line in lines).encode("ascii")

    def removed_by_stage(self) -> dict[str, dict[str, int]]:
        """{stage: {reason: count}} over all removals."""
        out: dict[str, Counter[str]] = {}
        for r in self.removed:
            out.setdefault(r.stage, Counter())[r.reason] += 1
        return {k: dict(sorted(v.items())) for k, v in out.items()}


def _load_one(uri: str, loader: ImageLoader, analysis_max_side: int) -> ImageMeasurement:
    try:
        data = loader(uri)
    except Exception as exc:  # the caller's I/O: any failure means this image cannot be used
        return ImageFailure(reason=f"load failed: {type(exc).__name__}: {exc}")
    return measure_image(data, analysis_max_side=analysis_max_side)


def measure_candidates(
    uris: Iterable[str], image_loader: ImageLoader, *, analysis_max_side: int = 1024, max_workers: int = 1
) -> dict[str, ImageMeasurement]:
    """Load and measure images by URI; a loader error becomes an ImageFailure, never an exception."""
    todo = sorted(set(uris))
    if max_workers <= 1:
        return {u: _load_one(u, image_loader, analysis_max_side) for u in todo}
    with ThreadPoolExecutor(max_workers=max_workers) as pool:
        results = pool.map(lambda u: _load_one(u, image_loader, analysis_max_side), todo)
        return dict(zip(todo, results, strict=True))


def _canonical(candidates: Sequence[Candidate]) -> list[Candidate]:
    seen: Counter[str] = Counter(c.image_uri for c in candidates)
    dupes = sorted(u for u, n in seen.items() if n > 1)
    if dupes:
        raise ValueError(f"each image URI may be offered once; repeated: {', '.join(dupes[:5])}")
    return sorted(candidates, key=Candidate.sort_key)


def _run(
    candidates: Sequence[Candidate],
    config: DatasetConfig,
    image_loader: ImageLoader | None,
    measurements: Mapping[str, ImageMeasurement] | None,
    max_workers: int,
    purpose: Purpose,
) -> DatasetResult:
    items = [Item(c) for c in _canonical(candidates)]
    reports: list[StageReport] = []
    removed: list[Removal] = []

    def record(name: str, enabled: bool, before: list[Item], res: stages.StageResult) -> list[Item]:
        reports.append(stage_report(name, enabled, before, res.kept, res.removed))
        removed.extend(res.removed)
        return res.kept

    items = record(stages.CONSENSUS, config.consensus.enabled, items, stages.label_consensus(items, config.consensus))
    known = dict(measurements or {})
    if image_loader is not None:
        missing = [it.candidate.image_uri for it in items if it.candidate.image_uri not in known]
        known.update(
            measure_candidates(
                missing, image_loader, analysis_max_side=config.analysis_max_side, max_workers=max_workers
            )
        )
    items = [replace(it, measurement=known.get(it.candidate.image_uri)) for it in items]
    qc_on = config.image_qc.enabled or any(c.enabled for c in config.image_qc_by_mode.values())
    items = record(stages.IMAGE_QC, qc_on, items, stages.image_qc(items, config))
    items = record(stages.UNIQUENESS, config.uniqueness.enabled, items, stages.uniqueness(items, config.uniqueness))
    items = record(stages.SIMILARITY, config.similarity.enabled, items, stages.similarity(items, config.similarity))
    guard = config.test_guard
    items = record(stages.TEST_GUARD, guard.enabled, items, stages.test_set_guard(items, guard))

    warnings: list[str] = []
    unreadable = sum(1 for r in removed if r.reason in ("unreadable", "not_measured"))
    if unreadable:
        warnings.append(f"{unreadable} images could not be loaded or were not measured")
    if purpose == "test":
        assigned: dict[str, Split] = {it.candidate.plate_barcode: "test" for it in items}
        split_on = False
    else:
        assigned = assign_plates(items, config.split)
        split_on = config.split.enabled
        warnings.extend(split_warnings(items, assigned))
    reports.append(stage_report(stages.SPLIT, split_on, items, items, []))

    rows = tuple(_row(it, assigned[it.candidate.plate_barcode]) for it in items)
    split_names: tuple[Split, ...] = ("test",) if purpose == "test" else ("train", "val")
    splits: dict[str, Counts] = {
        s: Counts.of(it for it in items if assigned[it.candidate.plate_barcode] == s) for s in split_names
    }
    plates: dict[str, int] = {s: sum(1 for v in assigned.values() if v == s) for s in split_names}
    report = QCReport(tuple(reports), splits, plates, tuple(warnings))
    versions = Counter(it.candidate.model_version for it in items if it.candidate.model_version)
    return DatasetResult(
        rows=tuple(sorted(rows, key=ManifestRow.sort_key)),
        report=report,
        removed=tuple(removed),
        config=config,
        purpose=purpose,
        source_model_versions=dict(sorted(versions.items())),
    )


def _row(it: Item, split: Split) -> ManifestRow:
    c = it.candidate
    assert it.label is not None, "label consensus labels every kept item"
    return ManifestRow(
        image_uri=c.image_uri,
        sha256=it.sha256,
        label=it.label,
        label_source=c.label_source,
        imaging_mode=c.imaging_mode,
        plate_barcode=c.plate_barcode,
        well=c.well,
        drop=c.drop,
        inspection_id=c.inspection_id,
        imaged_at=c.imaged_at,
        split=split,
        sub_type=c.sub_type,
    )


def build_dataset(
    candidates: Sequence[Candidate],
    config: DatasetConfig,
    image_loader: ImageLoader | None = None,
    *,
    measurements: Mapping[str, ImageMeasurement] | None = None,
    max_workers: int = 1,
) -> DatasetResult:
    """Build a training dataset: consensus, image QC, uniqueness, similarity, test-set guard, split.

    Images are loaded (by ``image_loader``) only for candidates that pass label consensus and are
    not already in ``measurements``; the stages themselves only see the measured statistics.
    """
    return _run(candidates, config, image_loader, measurements, max_workers, "train")


def build_test_set(
    candidates: Sequence[Candidate],
    config: DatasetConfig,
    image_loader: ImageLoader | None = None,
    *,
    measurements: Mapping[str, ImageMeasurement] | None = None,
    max_workers: int = 1,
) -> DatasetResult:
    """Build a frozen test set: the same QC stages, no split (every row ``test``); ``.plates`` feeds the guard."""
    return _run(candidates, config, image_loader, measurements, max_workers, "test")
