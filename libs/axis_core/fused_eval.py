"""Evaluation as the LIMS sees it: per-image predictions fused per inspection (pure logic, no I/O).

A prediction is one image's P(crystal) with the threshold of the model that produced it. Per inspection the
modes present are fused as the inference service does (:func:`axis_core.fusion.fuse`: max probability,
labelled at the threshold of the mode giving the max). The inspection is crystal when any of its images is
labelled crystal (visible and UV images of one drop carry the same truth in practice); its sub-type is the
first one given.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from axis_core.fusion import ModeProbability, fuse
from axis_core.metrics import BinaryMetrics, binary_metrics

FUSED = "fused"


# the MLflow run artifact of a trained version: one Prediction per test image (model new|champion), as JSON lines;
# written by the trainer, read by the promotion gate
PREDICTIONS_ARTIFACT = "test_predictions.jsonl"


@dataclass(frozen=True)
class Prediction:
    """One test image as a model version scored it."""

    inspection_id: str
    mode: str
    probability: float
    threshold: float
    label: str  # truth: crystal | other
    sub_type: str | None = None
    image_uri: str = ""

    @property
    def predicted_crystal(self) -> bool:
        """The model's own decision at its threshold."""
        return self.probability >= self.threshold

    @property
    def is_crystal(self) -> bool:
        """Whether the truth is crystal."""
        return self.label == "crystal"


@dataclass(frozen=True)
class InspectionOutcome:
    """Fused result of one inspection."""

    inspection_id: str
    probability: float
    predicted_crystal: bool
    is_crystal: bool
    mode: str
    sub_type: str | None = None


def fuse_inspections(predictions: Iterable[Prediction]) -> list[InspectionOutcome]:
    """One fused outcome per inspection (sorted by inspection id); a re-scored mode keeps its max."""
    by_insp: dict[str, dict[str, ModeProbability]] = {}
    truth: dict[str, bool] = {}
    subs: dict[str, str | None] = {}
    for p in predictions:
        modes = by_insp.setdefault(p.inspection_id, {})
        old = modes.get(p.mode)
        if old is None or p.probability > old.probability:
            modes[p.mode] = ModeProbability(probability=float(p.probability), threshold=float(p.threshold))
        truth[p.inspection_id] = truth.get(p.inspection_id, False) or p.is_crystal
        if subs.get(p.inspection_id) is None:
            subs[p.inspection_id] = p.sub_type
    out = []
    for insp in sorted(by_insp):
        f = fuse(by_insp[insp])
        out.append(InspectionOutcome(insp, f.probability, f.label == "crystal", truth[insp], f.mode, subs[insp]))
    return out


def _metrics_of(truth: Sequence[bool], predicted: Sequence[bool], subs: Sequence[str | None]) -> BinaryMetrics:
    # each item was already decided at its own threshold: score the decisions as 1/0 at 0.5
    scores = np.asarray(predicted, dtype=np.float64)
    sub_types = list(subs) if any(s for s in subs) else None
    return binary_metrics(np.asarray(truth, dtype=bool), scores, 0.5, sub_types=sub_types)


def image_metrics(predictions: Sequence[Prediction]) -> BinaryMetrics:
    """Per-image metrics, each image decided at its own model's threshold."""
    preds = list(predictions)
    return _metrics_of([p.is_crystal for p in preds], [p.predicted_crystal for p in preds], [p.sub_type for p in preds])


def inspection_metrics(predictions: Sequence[Prediction]) -> BinaryMetrics:
    """Per-inspection metrics of the fused decisions (the number the LIMS sees)."""
    fused = fuse_inspections(predictions)
    return _metrics_of([o.is_crystal for o in fused], [o.predicted_crystal for o in fused], [o.sub_type for o in fused])


def metrics_by_scope(predictions: Sequence[Prediction]) -> dict[str, BinaryMetrics]:
    """{mode: per-image metrics, ..., "fused": per-inspection metrics over the modes present}."""
    preds = list(predictions)
    out = {mode: image_metrics([p for p in preds if p.mode == mode]) for mode in sorted({p.mode for p in preds})}
    if preds:
        out[FUSED] = inspection_metrics(preds)
    return out


def to_jsonl(predictions: Iterable[Prediction], **extra: str) -> str:
    """JSON Lines text, one prediction a line (``extra`` fields, e.g. ``model="new"``, added to each)."""
    return "".join(json.dumps({**extra, **asdict(p)}, sort_keys=True) + "\n" for p in predictions)


def from_jsonl(text: str, **match: str) -> list[Prediction]:
    """Predictions from :func:`to_jsonl` text, keeping the lines whose fields equal ``match``."""
    fields = set(Prediction.__dataclass_fields__)
    out = []
    for line in text.splitlines():
        if not line.strip():
            continue
        raw = json.loads(line)
        if all(raw.get(k) == v for k, v in match.items()):
            out.append(Prediction(**{k: v for k, v in raw.items() if k in fields}))
    return out


def combine(per_mode: Mapping[str, Sequence[Prediction]]) -> list[Prediction]:
    """One prediction list from one model version per mode (each list's other modes are ignored)."""
    return [p for mode, preds in sorted(per_mode.items()) for p in preds if p.mode == mode]
