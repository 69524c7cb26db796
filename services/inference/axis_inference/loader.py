"""Builds the service's scorer from one single-mode bundle per mode on one base (axis_model's GPU or CPU fast path)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from axis_model.adapters import load_adapter_dir
from axis_model.bundle import BaseMismatch, BundleManifest, ModeEntry, read_manifest
from axis_model.classifier import CrystalClassifier, base_fingerprint, load_base_model
from axis_model.fast import FastScorer, Variant
from axis_model.gpu import DEFAULT_GPU_VARIANT, GpuScorer, resolve_device
from axis_model.preprocess import PreprocessConfig, preprocess_bytes
from axis_model.spec import BaseSpec

from axis_inference.models import ModelRef


class BundleError(ValueError):
    """A registered bundle that cannot serve the mode it is registered for."""


def _entry_for(manifest: BundleManifest, mode: str, where: Path) -> ModeEntry:
    if mode in manifest.modes:
        return manifest.modes[mode]
    if len(manifest.modes) == 1:  # a single-mode bundle registered under another mode name
        return next(iter(manifest.modes.values()))
    raise BundleError(f"bundle {where} has modes {sorted(manifest.modes)}, none of them {mode!r}")


def load_classifier(
    wanted: Mapping[str, tuple[ModelRef, Path]], *, base_path: str | None = None
) -> tuple[CrystalClassifier, dict[str, ModelRef]]:
    """Every mode's adapter + head on ONE base; refs get the bundle's threshold when the registry has none."""
    if not wanted:
        raise BundleError("no bundles to load")
    manifests = {mode: read_manifest(path) for mode, (_, path) in wanted.items()}
    first = next(iter(manifests.values()))
    spec = BaseSpec.from_path(base_path) if base_path else first.base.spec()
    model: Any = load_base_model(spec)
    sha = base_fingerprint(spec, model)
    refs: dict[str, ModelRef] = {}
    thresholds: dict[str, float] = {}
    for mode, (ref, path) in wanted.items():
        manifest = manifests[mode]
        if manifest.base.sha256 != sha:
            raise BaseMismatch(
                f"bundle {ref.name}:{ref.version} was trained on base {manifest.base.sha256[:16]}…, but the base "
                f"loaded ({spec.path or 'config seed ' + str(spec.seed)}) is {sha[:16]}…; set AXIS_MODEL__BASE_PATH"
            )
        if manifest.preprocess.size != first.preprocess.size:
            raise BundleError(
                f"bundles disagree on the input size ({manifest.preprocess.size} vs {first.preprocess.size})"
            )
        entry = _entry_for(manifest, mode, path)
        model = load_adapter_dir(model, path / entry.adapter, mode)
        threshold = ref.threshold if ref.threshold is not None else entry.threshold
        thresholds[mode] = threshold
        refs[mode] = ModelRef(ref.name, ref.version, threshold)
    model.eval()
    classifier = CrystalClassifier(
        model, base=spec, lora=first.lora, preprocess=first.preprocess, base_sha256=sha, thresholds=thresholds
    )
    return classifier, refs


@dataclass
class ServiceScorer:
    """The Scorer the service uses: fast decode + the library's GpuScorer on CUDA, else its FastScorer."""

    refs: dict[str, ModelRef]
    fast: FastScorer | GpuScorer
    preprocess: PreprocessConfig

    def prepare(self, mode: str, data: bytes) -> np.ndarray:
        """Image bytes -> model input (raises ImageRejected): uint8 gray for the GPU, normalised for the CPU."""
        if isinstance(self.fast, GpuScorer):  # only the gray bytes cross to the device; it normalises there
            return self.fast.prepare_gray(data, self.preprocess)
        return preprocess_bytes(data, self.preprocess)

    def describe(self) -> str:
        """Which scorer and variant score, e.g. 'FastScorer bf16mix on cpu'."""
        if isinstance(self.fast, GpuScorer):
            return self.fast.describe()
        return f"FastScorer {self.fast.variant} on cpu, chunks of {self.fast.batch_size}"

    def score(self, items: Sequence[tuple[str, np.ndarray]]) -> list[float]:
        """P(crystal) per item, in input order."""
        return [float(p) for p in self.fast.score_items(items)]


def uses_cuda(device: str) -> bool:
    """Whether the service's ``device`` setting resolves to a CUDA device here."""
    return resolve_device(device).type == "cuda"


def build_service_scorer(
    wanted: Mapping[str, tuple[ModelRef, Path]],
    *,
    base_path: str | None = None,
    max_pixels: int | None = None,
    variant: Variant = "bf16mix",
    batch_size: int | None = None,
    device: str = "auto",
    gpu_variant: str = DEFAULT_GPU_VARIANT,
    gpu_batch_size: int | None = None,
) -> ServiceScorer:
    """Load the bundles and build the GPU path where ``device`` resolves to CUDA, else the CPU fast path (slow:
    call it off the event loop). ``variant``/``batch_size`` are the CPU path's, ``gpu_*`` the GPU path's."""
    classifier, refs = load_classifier(wanted, base_path=base_path)
    fast: FastScorer | GpuScorer
    if uses_cuda(device):
        fast = GpuScorer.from_classifier(classifier, variant=gpu_variant, device=device, batch_size=gpu_batch_size)
    else:
        fast = FastScorer.from_classifier(classifier, variant=variant, batch_size=batch_size)
    preprocess = classifier.preprocess
    if max_pixels is not None:
        preprocess = preprocess.model_copy(update={"max_pixels": max_pixels})
    return ServiceScorer(refs=refs, fast=fast, preprocess=preprocess)
