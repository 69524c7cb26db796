"""Small training helpers for one mode's adapter + head (used by the benchmark, the demo and tests)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np
import torch

from axis_model.classifier import CrystalClassifier
from axis_model.preprocess import random_flip


def class_weights(labels: np.ndarray, num_classes: int = 2) -> torch.Tensor:
    """Inverse-frequency class weights indexed by label id (absent classes get weight 0)."""
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / (num_classes * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def train_mode(
    classifier: CrystalClassifier,
    mode: str,
    pixels: np.ndarray,
    labels: np.ndarray,
    *,
    steps: int,
    lr: float = 1e-3,
    batch_size: int = 16,
    seed: int = 0,
    bf16: bool = False,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Train one mode's LoRA + head with AdamW, flips and weighted cross-entropy; returns the losses."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)  # LoRA dropout
    model = classifier.model
    classifier.use(mode)
    params = [p for p in model.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights(labels))
    losses: list[float] = []
    model.train()
    try:
        for step in range(steps):
            idx = rng.choice(len(pixels), size=min(batch_size, len(pixels)), replace=False)
            x = torch.from_numpy(np.stack([random_flip(pixels[i], rng) for i in idx]))
            y = torch.from_numpy(labels[idx].astype(np.int64))
            ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
            with ctx:
                logits = model(pixel_values=x).logits
            loss = loss_fn(logits.float(), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
            if on_step:
                on_step(step, losses[-1])
    finally:
        model.eval()
    return losses


@torch.no_grad()
def randomise_adapter(classifier: CrystalClassifier, mode: str, *, seed: int = 0, scale: float = 0.3) -> None:
    """Give one mode non-zero LoRA B matrices and a perturbed head (tests and demos: a 'trained-looking' adapter)."""
    gen = torch.Generator().manual_seed(seed)
    for name, param in classifier.model.named_parameters():
        parts = name.split(".")
        if mode in parts and ("lora_B" in parts or "modules_to_save" in parts):
            param.add_(torch.randn(param.shape, generator=gen) * scale)
