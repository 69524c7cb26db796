"""The DINOv2 + LoRA classifier: LoRA placement, parameter counts, two modes on one backbone, labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from axis_model import BaseSpec, LoraSpec, build_classifier, count_parameters
from axis_model.adapters import randomise_adapter
from axis_model.classifier import load_base_model
from axis_model.finetune import TrainConfig, train_mode
from axis_model.spec import TINY_CONFIG

pytestmark = pytest.mark.unit


def _pixels(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, 112, 112)).astype(np.float32)


def test_lora_on_every_backbone_linear_and_head_trained_per_mode() -> None:
    clf = build_classifier(BaseSpec.tiny(), LoraSpec())
    lora_layers = {n.rsplit(".", 1)[0] for n, _ in clf.model.named_modules() if n.endswith(".lora_A")}
    suffixes = {n.rsplit(".", 1)[1] for n in lora_layers}
    assert suffixes == {"q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc2"}  # transformers 5 names
    assert len(lora_layers) == 6 * TINY_CONFIG["num_hidden_layers"]
    assert not any("classifier" in n for n in lora_layers)
    heads = {n for n, _ in clf.model.named_modules() if ".classifier.modules_to_save." in n}
    assert {h.rsplit(".", 1)[1] for h in heads} == {"visible", "uv"}


def test_parameter_counts_match_the_lora_formula() -> None:
    lora = LoraSpec(r=8)
    clf = build_classifier(BaseSpec.tiny(), lora)
    h, i, layers = TINY_CONFIG["hidden_size"], TINY_CONFIG["intermediate_size"], TINY_CONFIG["num_hidden_layers"]
    per_layer = 4 * lora.r * (h + h) + lora.r * (h + i) + lora.r * (i + h)
    head = 2 * h * 2 + 2
    trainable, total = count_parameters(clf, "visible")
    assert trainable == layers * per_layer + head
    assert total == sum(p.numel() for p in load_base_model(BaseSpec.tiny()).parameters())  # adapters excluded


def test_two_modes_share_one_backbone_and_score_differently() -> None:
    clf = build_classifier(BaseSpec.tiny(), LoraSpec())
    randomise_adapter(clf, "visible", seed=1)
    randomise_adapter(clf, "uv", seed=2)
    base_weight = clf.model.base_model.model.dinov2.encoder.layer[0].attention.q_proj.base_layer.weight
    ptr = base_weight.data_ptr()
    x = _pixels(4)
    scores = clf.score({"visible": x, "uv": x})
    assert not np.allclose(scores["visible"], scores["uv"])
    mixed = clf.score_items([("uv", x[0]), ("visible", x[1]), ("uv", x[2]), ("visible", x[3])])
    np.testing.assert_allclose(mixed, [scores["uv"][0], scores["visible"][1], scores["uv"][2], scores["visible"][3]])
    assert base_weight.data_ptr() == ptr  # no reload, no copy of the base
    assert all(0.0 <= p <= 1.0 for p in mixed)


def test_fresh_mode_equals_the_plain_base() -> None:
    clf = build_classifier(BaseSpec.tiny(), LoraSpec(), modes=["visible"])
    clf.add_mode("uv")
    x = torch.from_numpy(_pixels(2))
    with torch.no_grad(), clf.model.disable_adapter():
        plain = clf.model(pixel_values=x).logits
    torch.testing.assert_close(clf.logits(x, "uv").detach(), plain)
    with pytest.raises(ValueError, match="already"):
        clf.add_mode("uv")
    with pytest.raises(KeyError, match="no adapter"):
        clf.score({"ir": _pixels(1)})


def test_index_zero_is_crystal() -> None:
    clf = build_classifier(BaseSpec.tiny(), LoraSpec(), modes=["visible"])
    head = clf.model.base_model.model.classifier.modules_to_save["visible"]
    with torch.no_grad():
        head.weight.zero_()
        head.bias.copy_(torch.tensor([3.0, -3.0]))
    p = clf.score({"visible": _pixels(2)})["visible"]
    assert (p > 0.99).all()
    assert clf.label(float(p[0]), "visible") == "crystal"
    clf.thresholds["visible"] = 0.999
    assert clf.label(float(p[0]), "visible") == "other"


def _config(**fields: object) -> TrainConfig:
    return TrainConfig.for_steps(3, 4, batch_size=2, lr=1e-2, **fields)  # type: ignore[arg-type]


def test_training_one_mode_leaves_the_other_untouched() -> None:
    clf = build_classifier(BaseSpec.tiny(), LoraSpec())
    before = {n: p.detach().clone() for n, p in clf.model.named_parameters()}
    labels = np.array([0, 1, 0, 1])
    result = train_mode(clf, "visible", _pixels(4), labels, _pixels(2, seed=1), labels[:2], _config(keep="last"))
    assert result.steps == 3 and result.best_epoch == len(result.history) == 2  # 2 steps an epoch; the last kept
    assert all(np.isfinite(e.train_loss) for e in result.history)
    changed = {n for n, p in clf.model.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(".visible" in n for n in changed)
    assert any("lora_B.visible" in n for n in changed) and any("modules_to_save.visible" in n for n in changed)


def test_bf16_training_updates_the_mode_with_finite_losses() -> None:
    clf = build_classifier(BaseSpec.tiny(), LoraSpec(), modes=["visible"])
    head = next(p for n, p in clf.model.named_parameters() if "modules_to_save.visible" in n).detach().clone()
    labels = np.array([0, 1, 0, 1])
    result = train_mode(clf, "visible", _pixels(4), labels, _pixels(2, seed=1), labels[:2], _config(bf16=True))
    assert all(np.isfinite(e.train_loss) for e in result.history)
    after = next(p for n, p in clf.model.named_parameters() if "modules_to_save.visible" in n)
    assert not torch.equal(after, head) and after.dtype == torch.float32  # autocast leaves the weights fp32


def test_same_spec_builds_the_same_fresh_adapters_and_trains_the_same() -> None:
    torch.manual_seed(123)  # whatever the caller's RNG state was
    a = build_classifier(BaseSpec.tiny(), LoraSpec())
    torch.rand(7)
    b = build_classifier(BaseSpec.tiny(), LoraSpec())
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and any("lora_A" in k for k in sa)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    labels = np.array([0, 1, 0, 1])
    la = train_mode(a, "visible", _pixels(4), labels, _pixels(2, seed=1), labels[:2], _config())
    lb = train_mode(b, "visible", _pixels(4), labels, _pixels(2, seed=1), labels[:2], _config())
    assert [e.train_loss for e in la.history] == [e.train_loss for e in lb.history]  # LoRA dropout is seeded too
    assert la.threshold.threshold == lb.threshold.threshold
