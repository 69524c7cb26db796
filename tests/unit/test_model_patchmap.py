"""The per-patch map: contributions sum exactly to the patch part of the crystal logit, and the parts to the logit."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from axis_model import BaseSpec, LoraSpec, build_classifier
from axis_model.adapters import randomise_adapter
from axis_model.patchmap import patch_maps
from axis_model.spec import CRYSTAL_INDEX

pytestmark = pytest.mark.unit


def _pixels(n: int, size: int = 112, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3, size, size)).astype(np.float32)


def test_patch_contributions_sum_to_the_patch_part_of_the_logit_per_mode() -> None:
    clf = build_classifier(BaseSpec.tiny(), LoraSpec())
    randomise_adapter(clf, "visible", seed=1)
    randomise_adapter(clf, "uv", seed=2)
    x = _pixels(3)
    for mode in ("visible", "uv"):
        maps = patch_maps(clf, x, mode)
        with torch.inference_mode():
            logits = clf.logits(torch.from_numpy(x), mode).double()
            seq = clf.model.base_model.model.dinov2(pixel_values=torch.from_numpy(x)).last_hidden_state.double()
        head = clf.model.base_model.model.classifier.modules_to_save[mode]
        w = (head.weight[CRYSTAL_INDEX] - head.weight[1 - CRYSTAL_INDEX]).detach().double()
        hidden = seq.shape[-1]
        patch_part_from_mean = seq[:, 1:].mean(dim=1) @ w[hidden:]  # the head's own input: mean of patch tokens
        margin = logits[:, CRYSTAL_INDEX] - logits[:, 1 - CRYSTAL_INDEX]
        probs = clf.predict_proba(x, mode)
        for i, m in enumerate(maps):
            patch = clf.model.base_model.model.config.patch_size
            assert m.contributions.shape == (112 // patch, 112 // patch)
            assert m.contributions.sum() == pytest.approx(float(patch_part_from_mean[i]), rel=1e-5, abs=1e-6)
            assert m.patch_part == pytest.approx(float(m.contributions.sum()), abs=1e-12)
            assert m.cls_part + m.patch_part + m.bias_part == pytest.approx(float(margin[i]), rel=1e-5, abs=1e-5)
            assert m.probability == pytest.approx(float(probs[i]), abs=1e-5)
            assert np.ptp(m.contributions) > 0  # a map, not a constant
    assert not np.allclose(patch_maps(clf, x, "visible")[0].contributions, patch_maps(clf, x, "uv")[0].contributions)


def test_the_map_follows_the_patch_grid_of_the_input_size() -> None:
    clf = build_classifier(BaseSpec.tiny(), LoraSpec(), modes=["visible"])
    m = patch_maps(clf, _pixels(1, size=56), "visible")[0]
    patch = clf.model.base_model.model.config.patch_size
    assert m.contributions.shape == (56 // patch, 56 // patch)
    d = m.as_dict()
    assert (d["rows"], d["cols"]) == m.contributions.shape and len(d["contributions"]) == d["rows"]
