"""Seed a registry and an object store for demos, tests and the benchmark: bundles, champions, image events."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from axis_adapters.registry import CHAMPION, ModelRegistry, RegisteredVersion
from axis_contracts import ImageCaptured
from axis_model.bundle import save_bundle
from axis_model.classifier import CrystalClassifier, build_classifier
from axis_model.preprocess import PreprocessConfig
from axis_model.spec import MODES, BaseSpec, LoraSpec
from PIL import Image


def make_classifier(base: BaseSpec, size: int | None = None, *, seed: int = 0) -> CrystalClassifier:
    """A classifier with visible + uv adapters whose LoRA and heads are randomised (so versions differ)."""
    clf = build_classifier(
        base, LoraSpec(), modes=list(MODES), preprocess=PreprocessConfig(size=size) if size else None
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in clf.model.named_parameters():
            if "lora_B" in name or "modules_to_save" in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    return clf


def save_mode_bundles(clf: CrystalClassifier, out_dir: Path) -> dict[str, Path]:
    """One single-mode bundle directory per mode (what the registry stores per version)."""
    out: dict[str, Path] = {}
    for mode in clf.modes:
        path = out_dir / mode
        save_bundle(clf, path, modes=[mode])
        out[mode] = path
    return out


def register_champions(
    registry: ModelRegistry,
    bundles: dict[str, Path],
    model_names: dict[str, str],
    *,
    experiment: str = "axis-inference",
) -> dict[str, RegisteredVersion]:
    """Register each mode's bundle as a new version (in a fresh MLflow run) and point ``champion`` at it."""
    client: Any = registry.client
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp is not None else client.create_experiment(experiment)
    out: dict[str, RegisteredVersion] = {}
    for mode, path in bundles.items():
        run = client.create_run(exp_id, run_name=f"seed-{mode}")
        version = registry.register_bundle(model_names[mode], path, run.info.run_id, {"imaging_mode": mode})
        client.set_terminated(run.info.run_id)
        registry.set_alias(model_names[mode], CHAMPION, version.version)
        out[mode] = version
    return out


def drop_jpeg(level: int, *, size: tuple[int, int] = (320, 240), seed: int = 0) -> bytes:
    """A small noisy grey JPEG (distinct bytes per seed)."""
    rng = np.random.default_rng(seed)
    arr = np.clip(rng.normal(level, 12, (size[1], size[0])), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").convert("RGB").save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def image_event(
    *, plate: str, well: str, inspection: str, mode: str, uri: str, imaged_at: datetime | None = None
) -> ImageCaptured:
    """An ImageCaptured for an image already in the object store."""
    return ImageCaptured(
        producer="axis-seeding",
        plate_barcode=plate,
        well=well,
        drop=1,
        inspection_id=inspection,
        imaged_at=imaged_at or datetime(2026, 1, 1, tzinfo=UTC),
        imaging_mode=mode,  # type: ignore[arg-type]
        image_uri=uri,
    )
