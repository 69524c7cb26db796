"""Fine-tuning one imaging mode's LoRA adapter + head: weighted cross-entropy, flips, linear LR decay.

Checkpoints are selected on the validation split only (best balanced accuracy at P(crystal) >= 0.5);
the decision threshold is then chosen on validation for a target crystal recall. The test set never
enters this module. Label ids follow the model: 0 = crystal, 1 = other.

This is the one training loop: the trainer service, the demo's experiment and the inference benchmark's
trained weights all come from ``train_mode``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from axis_core.metrics import BinaryMetrics, binary_metrics
from axis_core.thresholds import ThresholdChoice, choose_threshold
from pydantic import BaseModel, ConfigDict, Field

from axis_model.classifier import CrystalClassifier
from axis_model.preprocess import random_flip
from axis_model.spec import CRYSTAL_INDEX, LABELS

SELECTION_THRESHOLD = 0.5


class TrainConfig(BaseModel):
    """Hyper-parameters of one fine-tuning run (one mode)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=16, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    grad_accum: int = Field(default=1, ge=1)
    target_recall: float = Field(default=0.95, gt=0, le=1)
    seed: int = 0
    max_steps: int | None = Field(default=None, ge=1)
    log_every: int = Field(default=10, ge=1)
    device: str = "auto"
    bf16: bool = False  # autocast the training forward pass to bfloat16 (CPU or GPU); evaluation stays fp32
    # "best": the best validation epoch's weights (the trainer); "last": the final weights (the benchmark wants
    # confident weights, and an early epoch can already tie on validation); the threshold is chosen either way
    keep: Literal["best", "last"] = "best"

    @classmethod
    def for_steps(cls, steps: int, n_train: int, **fields: Any) -> TrainConfig:
        """A config of exactly ``steps`` optimizer steps on ``n_train`` images (enough epochs, max_steps)."""
        probe = cls(**fields)
        per_epoch = math.ceil(math.ceil(n_train / probe.batch_size) / probe.grad_accum)
        return cls(**{**fields, "epochs": max(1, math.ceil(steps / per_epoch)), "max_steps": steps})


@dataclass(frozen=True)
class Progress:
    """One progress report: optimizer step, total steps, smoothed loss, learning rate, seconds left."""

    step: int
    total_steps: int
    epoch: int
    loss: float
    lr: float
    eta_s: float

    def line(self) -> str:
        """Human-readable progress line."""
        return (
            f"step {self.step}/{self.total_steps} epoch {self.epoch} loss {self.loss:.4f} "
            f"lr {self.lr:.2e} ETA {self.eta_s:.0f}s"
        )


@dataclass(frozen=True)
class EpochStats:
    """Train loss and validation metrics after one epoch."""

    epoch: int
    step: int
    train_loss: float
    val: BinaryMetrics


@dataclass
class TrainResult:
    """What training produced: the selected epoch, its threshold on validation and the history."""

    best_epoch: int
    threshold: ThresholdChoice
    history: list[EpochStats] = field(default_factory=list)
    steps: int = 0
    seconds: float = 0.0
    class_weights: tuple[float, float] = (1.0, 1.0)

    @property
    def val_metrics(self) -> BinaryMetrics:
        """Validation metrics of the selected checkpoint at the chosen threshold."""
        return self.threshold.metrics


def class_weights(label_ids: Sequence[int] | np.ndarray, num_classes: int = len(LABELS)) -> np.ndarray:
    """Inverse-frequency weights by label id, n / (k * count); raises ValueError when a class is empty."""
    ids = np.asarray(label_ids, dtype=np.int64)
    counts = np.bincount(ids, minlength=num_classes)[:num_classes]
    empty = [LABELS[i] if i < len(LABELS) else str(i) for i in range(num_classes) if counts[i] == 0]
    if empty:
        raise ValueError(f"class {', '.join(empty)} has no training images: cannot train a 2-class model")
    return (ids.size / (num_classes * counts)).astype(np.float64)


def linear_decay(total_steps: int) -> Callable[[int], float]:
    """LR multiplier for LambdaLR: 1 at step 0 falling linearly to 0 at ``total_steps``."""
    total = max(1, total_steps)
    return lambda step: max(0.0, 1.0 - step / total)


def total_optimizer_steps(n_train: int, config: TrainConfig) -> int:
    """Optimizer steps of a run (after gradient accumulation), capped by ``max_steps``."""
    micro = math.ceil(n_train / config.batch_size)
    steps = config.epochs * math.ceil(micro / config.grad_accum)
    return min(steps, config.max_steps) if config.max_steps else steps


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: the GPU when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def better(candidate: BinaryMetrics, best: BinaryMetrics | None) -> bool:
    """Checkpoint rule: strictly higher validation balanced accuracy, ties broken by higher recall."""
    if best is None:
        return True
    if candidate.balanced_accuracy != best.balanced_accuracy:
        return candidate.balanced_accuracy > best.balanced_accuracy
    return candidate.recall > best.recall


def labels_to_ids(labels: Sequence[str]) -> np.ndarray:
    """'crystal'/'other' strings to model label ids (0 = crystal, 1 = other)."""
    try:
        return np.array([LABELS.index(label) for label in labels], dtype=np.int64)
    except ValueError:
        bad = sorted({label for label in labels if label not in LABELS})
        raise ValueError(f"labels must be one of {LABELS}; got {bad[:5]}") from None


def _trainable(classifier: CrystalClassifier, mode: str) -> list[torch.nn.Parameter]:
    """Freeze everything except this mode's LoRA tensors and head."""
    params = []
    for name, p in classifier.model.named_parameters():
        parts = name.split(".")
        mine = mode in parts and ("lora_A" in parts or "lora_B" in parts or "modules_to_save" in parts)
        p.requires_grad_(mine)
        if mine:
            params.append(p)
    if not params:
        raise ValueError(f"no trainable parameters for mode {mode!r}; loaded adapters: {classifier.modes}")
    return params


@torch.no_grad()
def predict(
    classifier: CrystalClassifier, mode: str, pixels: np.ndarray, *, batch_size: int = 64, device: str = "auto"
) -> np.ndarray:
    """P(crystal) of N x 3 x H x W pixels through one mode's adapter (eval mode, batched)."""
    dev = pick_device(device)
    model = classifier.model
    was_training = model.training
    model.to(dev).eval()
    classifier.use(mode)
    out = np.empty(len(pixels), dtype=np.float64)
    for i in range(0, len(pixels), batch_size):
        x = torch.from_numpy(np.ascontiguousarray(pixels[i : i + batch_size])).to(dev)
        logits = model(pixel_values=x).logits.float()
        out[i : i + batch_size] = torch.softmax(logits, dim=-1)[:, CRYSTAL_INDEX].cpu().numpy()
    model.train(was_training)
    return out


def evaluate(
    classifier: CrystalClassifier,
    mode: str,
    pixels: np.ndarray,
    label_ids: np.ndarray,
    threshold: float,
    *,
    sub_types: Sequence[str | None] | None = None,
    device: str = "auto",
) -> tuple[BinaryMetrics, np.ndarray]:
    """Metrics (crystal = positive) at ``threshold`` and the P(crystal) of every image."""
    probs = predict(classifier, mode, pixels, device=device)
    metrics = binary_metrics(np.asarray(label_ids) == CRYSTAL_INDEX, probs, threshold, sub_types=sub_types)
    return metrics, probs


def train_mode(
    classifier: CrystalClassifier,
    mode: str,
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    config: TrainConfig,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    on_epoch: Callable[[EpochStats], None] | None = None,
) -> TrainResult:
    """Fine-tune ``mode``'s adapter in place; keeps the best validation epoch and sets its threshold."""
    if len(val_x) == 0:
        raise ValueError("the validation split is empty: checkpoint selection needs validation images")
    weights = class_weights(train_y)
    dev = pick_device(config.device)
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = classifier.model.to(dev)
    classifier.use(mode)
    params = _trainable(classifier, mode)
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    total = total_optimizer_steps(len(train_x), config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_decay(total))
    loss_fn = torch.nn.CrossEntropyLoss(weight=torch.tensor(weights, dtype=torch.float32, device=dev))
    history: list[EpochStats] = []
    best: BinaryMetrics | None = None
    best_epoch = 0
    best_state: dict[int, torch.Tensor] = {}
    step, started, smoothed = 0, time.monotonic(), float("nan")
    for epoch in range(1, config.epochs + 1):
        if step >= total:
            break
        model.train()
        order = rng.permutation(len(train_x))
        losses: list[float] = []
        optimizer.zero_grad(set_to_none=True)
        micro = 0
        for start in range(0, len(order), config.batch_size):
            idx = order[start : start + config.batch_size]
            batch = np.stack([random_flip(train_x[i], rng) for i in idx])
            x = torch.from_numpy(batch).to(dev)
            y = torch.from_numpy(np.asarray(train_y)[idx]).to(dev)
            autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if config.bf16 else contextlib.nullcontext()
            with autocast:
                logits = model(pixel_values=x).logits
            loss = loss_fn(logits.float(), y)
            (loss / config.grad_accum).backward()
            losses.append(float(loss.detach()))
            micro += 1
            if micro % config.grad_accum and start + config.batch_size < len(order):
                continue  # accumulate; the last partial group of an epoch still steps
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            recent = float(np.mean(losses[-config.grad_accum :]))
            smoothed = recent if math.isnan(smoothed) else 0.9 * smoothed + 0.1 * recent
            if on_progress and (step % config.log_every == 0 or step == total):
                elapsed = time.monotonic() - started
                on_progress(
                    Progress(
                        step, total, epoch, smoothed, float(scheduler.get_last_lr()[0]), elapsed / step * (total - step)
                    )
                )
            if step >= total:
                break
        val, _ = evaluate(classifier, mode, val_x, val_y, SELECTION_THRESHOLD, device=config.device)
        stats = EpochStats(epoch=epoch, step=step, train_loss=float(np.mean(losses)) if losses else 0.0, val=val)
        history.append(stats)
        if on_epoch:
            on_epoch(stats)
        if better(val, best) or config.keep == "last":
            best, best_epoch = val, epoch
            best_state = {id(p): p.detach().clone() for p in params}
    with torch.no_grad():
        for p in params:
            p.copy_(best_state[id(p)])
            p.requires_grad_(False)
    model.eval()
    _, val_probs = evaluate(classifier, mode, val_x, val_y, SELECTION_THRESHOLD, device=config.device)
    choice = choose_threshold(np.asarray(val_y) == CRYSTAL_INDEX, val_probs, target_recall=config.target_recall)
    classifier.thresholds[mode] = choice.threshold
    return TrainResult(
        best_epoch=best_epoch,
        threshold=choice,
        history=history,
        steps=step,
        seconds=time.monotonic() - started,
        class_weights=(float(weights[0]), float(weights[1])),
    )
