"""Measure registered model versions on the frozen facility-B test set: per image (each mode with its adapter,
at its own threshold) and fused per inspection as the LIMS sees it (max over the modes present)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from axis_core.dataset import ManifestRow, parse_manifest
from axis_core.fused_eval import Prediction, inspection_metrics
from axis_core.metrics import BinaryMetrics, binary_metrics


@dataclass(frozen=True)
class ModeModel:
    """One mode's registered version as the demo evaluates it."""

    mode: str
    model_name: str
    version: str
    bundle_dir: Path
    threshold: float | None = None


@dataclass
class VersionEval:
    """Metrics of one model generation (a version per mode) on the test images."""

    name: str
    versions: dict[str, str]
    metrics: BinaryMetrics
    per_mode: dict[str, BinaryMetrics] = field(default_factory=dict)
    fused: BinaryMetrics | None = None  # per inspection, modes fused (None when not measured)

    def version_text(self) -> str:
        """``visible v2, uv v2``."""
        return ", ".join(f"{m} v{v}" for m, v in sorted(self.versions.items()))


def load_rows(data: bytes, *, split: str | None = None) -> list[ManifestRow]:
    """Manifest rows, optionally only one split."""
    rows = parse_manifest(data)
    return [r for r in rows if split is None or r.split == split]


def fetch_images(rows: Sequence[ManifestRow], get: Callable[[str], bytes], *, workers: int = 4) -> dict[str, bytes]:
    """image_uri -> bytes for every row (parallel reads)."""
    uris = sorted({r.image_uri for r in rows})
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(uris, pool.map(get, uris), strict=True))


def _predict(
    models: Mapping[str, ModeModel], rows: Sequence[ManifestRow], images: Mapping[str, bytes], base_path: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crystal-prediction booleans, P(crystal), threshold) per row, each mode with its own bundle and threshold."""
    import torch
    from axis_model.bundle import load_bundle
    from axis_model.preprocess import preprocess_bytes
    from axis_model.spec import BaseSpec

    pred = np.zeros(len(rows), dtype=bool)
    prob = np.zeros(len(rows), dtype=np.float64)
    thresholds = np.full(len(rows), 0.5, dtype=np.float64)
    override = BaseSpec.from_path(base_path) if base_path else None
    for mode, model in models.items():
        idx = [i for i, r in enumerate(rows) if r.imaging_mode.value == mode]
        if not idx:
            continue
        clf = load_bundle(model.bundle_dir, base_override=override)
        clf_mode = mode if mode in clf.modes else clf.modes[0]
        threshold = model.threshold if model.threshold is not None else clf.thresholds[clf_mode]
        pixels = np.stack([preprocess_bytes(images[rows[i].image_uri], clf.preprocess) for i in idx])
        with torch.inference_mode():
            p = np.concatenate([clf.predict_proba(pixels[s : s + 64], clf_mode) for s in range(0, len(pixels), 64)])
        prob[idx] = p
        pred[idx] = p >= threshold
        thresholds[idx] = threshold
    return pred, prob, thresholds


def evaluate(
    name: str,
    models: Mapping[str, ModeModel],
    rows: Sequence[ManifestRow],
    images: Mapping[str, bytes],
    *,
    base_path: str | None = None,
) -> VersionEval:
    """Recall / precision / balanced accuracy of one generation on the rows (labels from the manifest)."""
    rows = [r for r in rows if r.imaging_mode.value in models]
    if not rows:
        raise ValueError(f"no test images of the modes {sorted(models)}")
    pred, prob, thresholds = _predict(models, rows, images, base_path)
    labels = np.array([r.label for r in rows])
    scores = pred.astype(np.float64)
    overall = binary_metrics(labels, scores, 0.5)
    per_mode: dict[str, BinaryMetrics] = {}
    for mode in models:
        sel = np.array([r.imaging_mode.value == mode for r in rows])
        if sel.any():
            per_mode[mode] = binary_metrics(labels[sel], scores[sel], 0.5)
    preds = [
        Prediction(r.inspection_id, r.imaging_mode.value, float(p), float(t), r.label, None, r.image_uri)
        for r, p, t in zip(rows, prob, thresholds, strict=True)
    ]
    return VersionEval(
        name=name,
        versions={m: v.version for m, v in models.items()},
        metrics=overall,
        per_mode=per_mode,
        fused=inspection_metrics(preds),
    )
