"""Model bundle: per-mode adapters + heads, preprocessing, thresholds, labels, and a hashed base reference.

Layout of a bundle directory (a few MB; never a copy of the base weights)::

    bundle.json                      # BundleManifest
    adapters/<mode>/adapter_model.safetensors
    adapters/<mode>/adapter_config.json
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from axis_model.adapters import load_adapter_dir, save_adapter_dir
from axis_model.classifier import CrystalClassifier, base_fingerprint, load_base_model
from axis_model.preprocess import PreprocessConfig
from axis_model.spec import CRYSTAL_INDEX, LABELS, BaseSpec, LoraSpec

MANIFEST = "bundle.json"
FORMAT = "axis-model-bundle"


class BaseMismatch(ValueError):
    """The base weights found at load time are not the ones the bundle was trained on."""


class BaseReference(BaseModel):
    """Which base the adapters belong to, and the sha256 that proves it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["config", "path", "hub"]
    config: dict[str, Any] | None = None
    path: str | None = None
    seed: int = 0
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")

    def spec(self) -> BaseSpec:
        """The BaseSpec that rebuilds this base."""
        return BaseSpec(kind=self.kind, config=self.config, path=self.path, seed=self.seed)


class ModeEntry(BaseModel):
    """One imaging mode of a bundle."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    adapter: str
    threshold: float = Field(ge=0.0, le=1.0)


class BundleManifest(BaseModel):
    """Contents of bundle.json."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["axis-model-bundle"] = "axis-model-bundle"
    format_version: int = 1
    labels: list[str] = Field(default_factory=lambda: list(LABELS))
    crystal_index: int = CRYSTAL_INDEX
    preprocess: PreprocessConfig
    lora: LoraSpec
    base: BaseReference
    modes: dict[str, ModeEntry] = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)


def save_bundle(
    classifier: CrystalClassifier,
    out_dir: str | Path,
    *,
    modes: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write a bundle of the given modes (default all) into an empty or new directory; returns bundle.json."""
    root = Path(out_dir)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"bundle directory {root} is not empty; write bundles to a fresh directory")
    root.mkdir(parents=True, exist_ok=True)
    entries: dict[str, ModeEntry] = {}
    for mode in modes or classifier.modes:
        rel = f"adapters/{mode}"
        save_adapter_dir(classifier.model, mode, root / rel)
        entries[mode] = ModeEntry(adapter=rel, threshold=classifier.thresholds.get(mode, 0.5))
    base = classifier.base
    manifest = BundleManifest(
        preprocess=classifier.preprocess,
        lora=classifier.lora,
        base=BaseReference(
            kind=base.kind,
            config=base.config,
            path=str(Path(base.path).resolve()) if base.kind == "path" and base.path else base.path,
            seed=base.seed,
            sha256=classifier.base_sha256,
        ),
        modes=entries,
        metadata=metadata or {},
    )
    path = root / MANIFEST
    path.write_text(manifest.model_dump_json(indent=2))
    return path


def read_manifest(bundle_dir: str | Path) -> BundleManifest:
    """Parse and validate a bundle's bundle.json."""
    path = Path(bundle_dir) / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: not an AXIS model bundle")
    return BundleManifest.model_validate_json(path.read_text())


def load_bundle(bundle_dir: str | Path, base_override: BaseSpec | None = None) -> CrystalClassifier:
    """Rebuild the classifier of a bundle on its base (or ``base_override``), verifying the base sha256."""
    root = Path(bundle_dir)
    manifest = read_manifest(root)
    spec = base_override or manifest.base.spec()
    model = load_base_model(spec)
    sha = base_fingerprint(spec, model)
    if sha != manifest.base.sha256:
        where = spec.path if spec.kind != "config" else f"config seed {spec.seed}"
        raise BaseMismatch(
            f"base weights at {where} have sha256 {sha[:16]}…, but bundle {root} was trained on "
            f"{manifest.base.sha256[:16]}…; point base_override at the original base weights"
        )
    peft_model: Any = model
    for mode, entry in manifest.modes.items():
        peft_model = load_adapter_dir(peft_model, root / entry.adapter, mode)
    peft_model.set_adapter(next(iter(manifest.modes)))
    peft_model.eval()
    return CrystalClassifier(
        peft_model,
        base=spec,
        lora=manifest.lora,
        preprocess=manifest.preprocess,
        base_sha256=sha,
        thresholds={m: e.threshold for m, e in manifest.modes.items()},
    )
