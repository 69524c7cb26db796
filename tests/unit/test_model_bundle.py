"""Model bundles: small, self-describing, verified against the base, identical outputs after a round trip."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from axis_model import BaseMismatch, BaseSpec, LoraSpec, build_classifier, load_bundle, save_bundle
from axis_model.adapters import randomise_adapter
from axis_model.classifier import load_base_model

pytestmark = pytest.mark.unit


def _pixels(n: int) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n, 3, 112, 112)).astype(np.float32)


def test_round_trip_gives_identical_outputs_and_settings(tmp_path: Path) -> None:
    clf = build_classifier(BaseSpec.tiny(), LoraSpec(r=6, alpha=12))
    randomise_adapter(clf, "visible", seed=1)
    randomise_adapter(clf, "uv", seed=2)
    clf.thresholds.update(visible=0.42, uv=0.3)
    x = _pixels(3)
    before = clf.score({"visible": x, "uv": x})
    save_bundle(clf, tmp_path / "b", metadata={"dataset": "toy-v1"})

    loaded = load_bundle(tmp_path / "b")
    after = loaded.score({"visible": x, "uv": x})
    for mode in ("visible", "uv"):
        assert np.abs(before[mode] - after[mode]).max() < 1e-6
    assert loaded.thresholds == {"visible": 0.42, "uv": 0.3}
    assert loaded.lora == LoraSpec(r=6, alpha=12)
    assert loaded.preprocess == clf.preprocess
    manifest = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert manifest["labels"] == ["crystal", "other"] and manifest["crystal_index"] == 0
    assert manifest["base"]["kind"] == "config" and manifest["base"]["sha256"] == clf.base_sha256
    assert manifest["metadata"] == {"dataset": "toy-v1"}


def test_bundle_does_not_copy_the_base(tmp_path: Path) -> None:
    clf = build_classifier(BaseSpec.tiny(), LoraSpec(r=4))
    save_bundle(clf, tmp_path / "b")
    bundle_bytes = sum(f.stat().st_size for f in (tmp_path / "b").rglob("*") if f.is_file())
    base_bytes = 4 * sum(p.numel() for p in load_base_model(BaseSpec.tiny()).parameters())
    assert bundle_bytes < base_bytes / 2


def test_wrong_base_is_refused(tmp_path: Path) -> None:
    clf = build_classifier(BaseSpec.tiny(seed=0), LoraSpec(r=4))
    save_bundle(clf, tmp_path / "b")
    with pytest.raises(BaseMismatch, match="sha256"):
        load_bundle(tmp_path / "b", base_override=BaseSpec.tiny(seed=1))


def test_base_from_a_local_directory_is_referenced_by_path_and_file_hash(tmp_path: Path) -> None:
    base_dir = tmp_path / "dinov2"
    load_base_model(BaseSpec.tiny()).save_pretrained(base_dir)
    weights = base_dir / "model.safetensors"
    clf = build_classifier(BaseSpec.from_path(str(base_dir)), LoraSpec(r=4))
    randomise_adapter(clf, "visible", seed=3)
    save_bundle(clf, tmp_path / "b")
    ref = json.loads((tmp_path / "b" / "bundle.json").read_text())["base"]
    assert ref["kind"] == "path" and Path(ref["path"]) == base_dir.resolve()
    assert ref["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()

    x = _pixels(2)
    moved = tmp_path / "elsewhere"
    base_dir.rename(moved)
    loaded = load_bundle(tmp_path / "b", base_override=BaseSpec.from_path(str(moved)))
    np.testing.assert_array_equal(loaded.score({"visible": x})["visible"], clf.score({"visible": x})["visible"])

    load_base_model(BaseSpec.tiny(seed=5)).save_pretrained(moved)  # different weights at the same place
    with pytest.raises(BaseMismatch):
        load_bundle(tmp_path / "b", base_override=BaseSpec.from_path(str(moved)))


def test_refuses_to_overwrite_a_bundle(tmp_path: Path) -> None:
    clf = build_classifier(BaseSpec.tiny(), LoraSpec(r=4), modes=["visible"])
    save_bundle(clf, tmp_path / "b")
    with pytest.raises(FileExistsError):
        save_bundle(clf, tmp_path / "b")
