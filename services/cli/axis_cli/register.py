"""``python -m axis_cli register BUNDLE_DIR [--promote --by NAME --reason TEXT]``: a model the facility has.

Registers each mode of a local model bundle (``axis_model.save_bundle`` format: what the trainer and the demo
write) as a new version of the mode's registered model in MLflow (alias ``challenger``); with ``--promote`` it
then promotes each version through ``axis_cli promote`` (gate, audit row, ModelPromoted), and the inference
service starts scoring with it without a restart.

Published AXIS adapters (Hugging Face ``Marquez-Group-EMBL/AXIS-CRIMS_v3-vis`` / ``-uv``, downloaded to a local
folder, transformers-4 module names) become a bundle first:

    python -m axis_cli register --published-visible DIR --published-uv DIR --base-path DINOV2_DIR --promote ...

``--base-path`` is a local ``facebook/dinov2-base`` directory (``save_pretrained`` format); the bundle records
its path and SHA-256, so the inference service needs the same folder (``AXIS_MODEL__BASE_PATH``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path


def split_bundle(bundle_dir: Path, mode: str, out_dir: Path) -> Path:
    """A copy of one mode of a bundle (manifest with that mode only + its adapter folder)."""
    from axis_model.bundle import read_manifest

    manifest = read_manifest(bundle_dir)
    if mode not in manifest.modes:
        raise ValueError(f"bundle {bundle_dir} has no {mode} adapter (it has {', '.join(manifest.modes)})")
    entry = manifest.modes[mode]
    out_dir.mkdir(parents=True, exist_ok=False)
    shutil.copytree(bundle_dir / entry.adapter, out_dir / entry.adapter)
    one = manifest.model_copy(update={"modes": {mode: entry}})
    (out_dir / "bundle.json").write_text(one.model_dump_json(indent=2))
    return out_dir


def bundle_from_published(visible: Path | None, uv: Path | None, base_path: Path, out_dir: Path) -> Path:
    """A bundle from published AXIS adapter folders on a local DINOv2 base (attention keys renamed)."""
    from typing import Any

    from axis_model import BaseSpec, save_bundle
    from axis_model.adapters import load_published_adapter
    from axis_model.classifier import CrystalClassifier, base_fingerprint, load_base_model
    from axis_model.preprocess import PreprocessConfig
    from axis_model.spec import LoraSpec

    if visible is None and uv is None:
        raise ValueError("give --published-visible and/or --published-uv")
    spec = BaseSpec.from_path(str(base_path))
    model: Any = load_base_model(spec)
    sha = base_fingerprint(spec, model)
    modes = [(m, f) for m, f in (("visible", visible), ("uv", uv)) if f is not None]
    for mode, folder in modes:
        model = load_published_adapter(model, folder, mode)
    classifier = CrystalClassifier(
        model,
        base=spec,
        lora=LoraSpec(),
        preprocess=PreprocessConfig(),
        base_sha256=sha,
        thresholds={m: 0.5 for m, _ in modes},
    )
    save_bundle(classifier, out_dir, metadata={"source": "published AXIS adapters"})
    return out_dir


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m axis_cli register", description=__doc__.splitlines()[0])
    p.add_argument("bundle", nargs="?", type=Path, help="a model bundle directory (bundle.json + adapters/)")
    p.add_argument("--published-visible", type=Path, default=None, help="published AXIS visible adapter folder")
    p.add_argument("--published-uv", type=Path, default=None, help="published AXIS UV adapter folder")
    p.add_argument("--base-path", type=Path, default=None, help="local DINOv2 folder for published adapters")
    p.add_argument("--modes", default=None, help="which modes of the bundle (default: all it has)")
    p.add_argument("--promote", action="store_true", help="promote each registered version to champion")
    p.add_argument("--by", default=None, help="who promotes (with --promote)")
    p.add_argument("--reason", default="initial model of this facility", help="why (with --promote)")
    p.add_argument("--force", action="store_true", help="promote even if the gate refuses (audited)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Register (and optionally promote) every mode of a bundle; prints one line per version."""
    a = parse_args(argv)
    from axis_adapters.registry import ModelRegistry
    from axis_adapters.settings import MlflowSettings, load_settings
    from axis_model.bundle import read_manifest

    from axis_cli.promotion_log import PromoteSettings

    if a.promote and not a.by:
        print("--promote needs --by NAME (recorded in the audit)", file=sys.stderr)
        return 2
    settings = load_settings(PromoteSettings)
    mlflow: MlflowSettings = settings.mlflow
    work = Path(tempfile.mkdtemp(prefix="axis-register-"))
    try:
        if a.bundle is None:
            if a.base_path is None:
                print("give a BUNDLE_DIR, or --published-visible/--published-uv with --base-path", file=sys.stderr)
                return 2
            bundle = bundle_from_published(a.published_visible, a.published_uv, a.base_path, work / "bundle")
        else:
            bundle = a.bundle
        manifest = read_manifest(bundle)
        modes = [m.strip() for m in a.modes.split(",")] if a.modes else list(manifest.modes)
        names = {"visible": mlflow.visible_model, "uv": mlflow.uv_model}
        registry = ModelRegistry(mlflow.tracking_uri)
        import mlflow as mlflow_lib

        mlflow_lib.set_tracking_uri(mlflow.tracking_uri)
        mlflow_lib.set_experiment(mlflow.experiment)
        versions: list[tuple[str, str]] = []
        for mode in modes:
            one = split_bundle(bundle, mode, work / f"mode-{mode}")
            with mlflow_lib.start_run(run_name=f"register-{mode}") as run:
                mlflow_lib.log_param("source_bundle", str(Path(bundle).resolve()))
                tags = {
                    "imaging_mode": mode,
                    "threshold": f"{manifest.modes[mode].threshold:.6g}",
                    "start_from": "register",
                    "source_bundle": str(Path(bundle).resolve()),
                }
                v = registry.register_bundle(names[mode], one, run.info.run_id, tags)
            registry.set_alias(names[mode], "challenger", v.version)
            versions.append((names[mode], v.version))
            print(json.dumps({"registered": names[mode], "version": v.version, "mode": mode, "alias": "challenger"}))
        if a.promote:
            from axis_cli import promote

            for name, version in versions:
                argv2 = [name, version, "--by", a.by, "--reason", a.reason] + (["--force"] if a.force else [])
                code = promote.main(argv2)
                if code:
                    return code
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
