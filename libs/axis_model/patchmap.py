"""Where the model sees crystals: the crystal logit margin split exactly into one contribution per patch.

The head of Dinov2ForImageClassification is ``Linear(2 * hidden -> 2)`` on ``CLS ‖ mean(patch tokens)``. With
``w = W[crystal] - W[other]`` and ``c = b[crystal] - b[other]`` the margin (the logit of P(crystal) under the
2-class softmax) is::

    margin = w[:hidden] · cls + w[hidden:] · mean_i(token_i) + c
           = cls_part + sum_i (w[hidden:] · token_i / N) + bias_part

so patch ``i`` contributes ``w[hidden:] · token_i / N`` and the contributions sum to the patch part exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from axis_model.classifier import CrystalClassifier
from axis_model.spec import CRYSTAL_INDEX


@dataclass(frozen=True)
class PatchMap:
    """One image's crystal margin, its CLS / bias / patch parts, and the patch part per patch (rows x cols)."""

    mode: str
    probability: float
    margin: float
    cls_part: float
    bias_part: float
    patch_part: float
    contributions: np.ndarray  # (rows, cols), sums to patch_part

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (contributions as nested lists, row-major, top-left first)."""
        return {
            "mode": self.mode,
            "probability": self.probability,
            "margin": self.margin,
            "cls_part": self.cls_part,
            "bias_part": self.bias_part,
            "patch_part": self.patch_part,
            "rows": int(self.contributions.shape[0]),
            "cols": int(self.contributions.shape[1]),
            "contributions": self.contributions.tolist(),
        }


def _inner(clf: CrystalClassifier) -> Any:
    """The Dinov2ForImageClassification inside the peft wrapper (LoRA layers injected in place)."""
    return clf.model.base_model.model


def _head(clf: CrystalClassifier, mode: str) -> torch.nn.Linear:
    """The active mode's own classification head (peft keeps one copy per adapter)."""
    head = _inner(clf).classifier
    saved = getattr(head, "modules_to_save", None)
    if saved is not None and mode in saved:
        head = saved[mode]
    if not isinstance(head, torch.nn.Linear):
        raise TypeError(f"expected a Linear head for mode {mode!r}, found {type(head).__name__}")
    return head


@torch.inference_mode()
def patch_maps(clf: CrystalClassifier, pixels: np.ndarray | torch.Tensor, mode: str) -> list[PatchMap]:
    """Per-patch contributions to the crystal margin for an N x 3 x H x W batch of one mode."""
    clf.use(mode)
    was_training = clf.model.training
    clf.model.eval()
    try:
        x = torch.as_tensor(pixels, dtype=torch.float32)
        backbone = _inner(clf).dinov2  # LoRA layers are injected in place: the active adapter is used
        tokens = backbone(pixel_values=x).last_hidden_state.float()  # N x (1 + P) x hidden
        head = _head(clf, mode)
        other = 1 - CRYSTAL_INDEX
        w = (head.weight[CRYSTAL_INDEX] - head.weight[other]).float()
        c = float(head.bias[CRYSTAL_INDEX] - head.bias[other]) if head.bias is not None else 0.0
        hidden = tokens.shape[-1]
        cls, patches = tokens[:, 0], tokens[:, 1:]
        n_patches = patches.shape[1]
        per_patch = (patches @ w[hidden:]) / n_patches  # N x P
        cls_part = cls @ w[:hidden]
        patch_size = int(_inner(clf).config.patch_size)
        rows, cols = x.shape[-2] // patch_size, x.shape[-1] // patch_size
        if rows * cols != n_patches:
            raise ValueError(f"{n_patches} patch tokens do not form a {rows} x {cols} grid")
        out = []
        for i in range(x.shape[0]):
            contrib = per_patch[i].double().numpy().reshape(rows, cols)
            patch_part = float(contrib.sum())
            margin = float(cls_part[i]) + patch_part + c
            out.append(
                PatchMap(
                    mode=mode,
                    probability=float(1.0 / (1.0 + np.exp(-margin))),
                    margin=margin,
                    cls_part=float(cls_part[i]),
                    bias_part=c,
                    patch_part=patch_part,
                    contributions=contrib,
                )
            )
        return out
    finally:
        clf.model.train(was_training)
