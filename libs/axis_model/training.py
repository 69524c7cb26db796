"""Small training helpers for one mode's adapter + head (used by the benchmark, the demo and tests)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

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
def head_features(classifier: CrystalClassifier, mode: str, pixels: np.ndarray, batch_size: int = 8) -> torch.Tensor:
    """The head's input (CLS token ‖ mean patch token) under one mode's adapter."""
    classifier.use(mode)
    classifier.model.eval()
    inner: Any = classifier.model.base_model.model
    backbone = inner.dinov2
    feats = []
    for start in range(0, len(pixels), batch_size):
        hidden = backbone(pixel_values=torch.as_tensor(pixels[start : start + batch_size])).last_hidden_state
        feats.append(torch.cat([hidden[:, 0], hidden[:, 1:].mean(dim=1)], dim=-1))
    return torch.cat(feats)


def fit_head(
    classifier: CrystalClassifier,
    mode: str,
    features: torch.Tensor,
    labels: np.ndarray,
    *,
    components: int | None = 8,
    steps: int = 300,
    lr: float = 0.05,
    weight_decay: float = 1e-2,
    margin: float | None = 6.0,
) -> float:
    """Fit one mode's head on precomputed features, folded back into the head; returns the final loss.

    The head sees only the top ``components`` principal directions of the features (whitened): a decision
    on dominant directions, as a trained model makes, not on near-constant noise directions that any
    precision change would flip. ``margin``: then scale the head so the median |logit difference| on the
    training features is this large (confident predictions); None leaves the fitted scale.
    """
    inner: Any = classifier.model.base_model.model
    head: torch.nn.Linear = inner.classifier.modules_to_save[mode]
    mean = features.mean(dim=0)
    centred = features - mean
    if components:
        _, sing, vh = torch.linalg.svd(centred, full_matrices=False)
        k = min(components, len(sing))
        proj = vh[:k].T / sing[:k].clamp_min(1e-6) * math.sqrt(len(features))
    else:
        proj = torch.eye(features.shape[1]) / centred.std().clamp_min(1e-6)
    z = centred @ proj
    y = torch.from_numpy(labels.astype(np.int64))
    linear = torch.nn.Linear(z.shape[1], 2)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weights(labels))
    optimiser = torch.optim.AdamW(linear.parameters(), lr=lr, weight_decay=weight_decay)
    loss = torch.tensor(0.0)
    for _ in range(steps):
        loss = loss_fn(linear(z), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        weight = linear.weight @ proj.T  # fold: W (P^T (x - m)) + b = (W P^T) x + (b - W P^T m)
        bias = linear.bias - weight @ mean
        if margin is not None:
            logits = features @ weight.T + bias
            median = (logits[:, 0] - logits[:, 1]).abs().median().clamp_min(1e-6)
            weight, bias = weight * (margin / median), bias * (margin / median)
        head.weight.copy_(weight)
        head.bias.copy_(bias)
    return float(loss.detach())


@torch.no_grad()
def randomise_adapter(classifier: CrystalClassifier, mode: str, *, seed: int = 0, scale: float = 0.3) -> None:
    """Give one mode non-zero LoRA B matrices and a perturbed head (tests and demos: a 'trained-looking' adapter)."""
    gen = torch.Generator().manual_seed(seed)
    for name, param in classifier.model.named_parameters():
        parts = name.split(".")
        if mode in parts and ("lora_B" in parts or "modules_to_save" in parts):
            param.add_(torch.randn(param.shape, generator=gen) * scale)
