"""Published AXIS adapters saved with transformers-4 DINOv2 names load with their attention LoRA intact."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from axis_model import AdapterMismatch, BaseSpec, LoraSpec, build_classifier, load_published_adapter, save_adapter_dir
from axis_model.adapters import ADAPTER_CONFIG, ADAPTER_WEIGHTS, randomise_adapter
from axis_model.classifier import load_base_model
from axis_model.spec import CRYSTAL_INDEX
from peft import PeftModel
from safetensors.torch import load_file, save_file

pytestmark = pytest.mark.unit

NEW_TO_OLD = {
    ".attention.q_proj.": ".attention.attention.query.",
    ".attention.k_proj.": ".attention.attention.key.",
    ".attention.v_proj.": ".attention.attention.value.",
    ".attention.o_proj.": ".attention.output.dense.",
}


def _to_old_names(adapter_dir: Path) -> None:
    """Rewrite a saved adapter as transformers 4 + peft would have saved it (as the published AXIS models)."""
    state = load_file(str(adapter_dir / ADAPTER_WEIGHTS))
    old = {}
    for key, value in state.items():
        for new, prev in NEW_TO_OLD.items():
            key = key.replace(new, prev)
        old[key] = value
    assert any(".attention.attention.query." in k for k in old)
    save_file(old, str(adapter_dir / ADAPTER_WEIGHTS))
    cfg = json.loads((adapter_dir / ADAPTER_CONFIG).read_text())
    cfg["target_modules"] = ["query", "key", "value", "dense", "fc1", "fc2"]
    cfg.pop("exclude_modules", None)
    (adapter_dir / ADAPTER_CONFIG).write_text(json.dumps(cfg))


def _probs(model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        logits = model(pixel_values=torch.from_numpy(x)).logits
    return torch.softmax(logits, dim=-1)[:, CRYSTAL_INDEX].numpy()


@pytest.fixture()
def old_adapter(tmp_path: Path) -> tuple[Path, np.ndarray, np.ndarray]:
    clf = build_classifier(BaseSpec.tiny(), LoraSpec(), modes=["visible"])
    randomise_adapter(clf, "visible", seed=7)
    x = np.random.default_rng(0).normal(size=(4, 3, 112, 112)).astype(np.float32)
    expected = clf.score({"visible": x})["visible"]
    save_adapter_dir(clf.model, "visible", tmp_path / "old")
    _to_old_names(tmp_path / "old")
    return tmp_path / "old", x, expected


def test_transformers5_names_are_q_k_v_o_proj() -> None:
    names = {n for n, _ in load_base_model(BaseSpec.tiny()).named_modules()}
    assert "dinov2.encoder.layer.0.attention.q_proj" in names
    assert "dinov2.encoder.layer.0.attention.o_proj" in names
    assert not any(n.endswith(".attention.attention.query") for n in names)


def test_old_name_adapter_loads_with_exact_outputs(old_adapter: tuple[Path, np.ndarray, np.ndarray]) -> None:
    adapter_dir, x, expected = old_adapter
    model = load_published_adapter(load_base_model(BaseSpec.tiny()), adapter_dir, "visible")
    np.testing.assert_array_equal(_probs(model, x), expected)
    lora_targets = {n.rsplit(".", 2)[-2] for n, _ in model.named_modules() if n.endswith(".lora_A")}
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"} <= lora_targets


def test_naive_peft_loading_silently_drops_attention_lora(old_adapter: tuple[Path, np.ndarray, np.ndarray]) -> None:
    adapter_dir, x, expected = old_adapter
    naive = PeftModel.from_pretrained(load_base_model(BaseSpec.tiny()), str(adapter_dir))  # no error raised...
    assert np.abs(_probs(naive, x) - expected).max() > 1e-3  # ...but different outputs: the bug we fix


def test_old_adapter_into_a_classifier_alongside_other_modes(old_adapter: tuple[Path, np.ndarray, np.ndarray]) -> None:
    adapter_dir, x, expected = old_adapter
    clf = build_classifier(BaseSpec.tiny(), LoraSpec(), modes=["uv"])
    load_published_adapter(clf, adapter_dir, "visible")
    assert clf.modes == ["uv", "visible"] and clf.thresholds["visible"] == 0.5
    np.testing.assert_array_equal(clf.score({"visible": x})["visible"], expected)


def test_adapter_for_another_architecture_is_refused(old_adapter: tuple[Path, np.ndarray, np.ndarray]) -> None:
    adapter_dir, _, _ = old_adapter
    state = load_file(str(adapter_dir / ADAPTER_WEIGHTS))
    state["base_model.model.dinov2.encoder.layer.9.mlp.fc1.lora_A.weight"] = torch.zeros(25, 64)
    save_file(state, str(adapter_dir / ADAPTER_WEIGHTS))
    with pytest.raises(AdapterMismatch, match="unexpected"):
        load_published_adapter(load_base_model(BaseSpec.tiny()), adapter_dir, "visible")
