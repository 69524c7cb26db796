"""Train/validation split grouped by plate, stratified by class, seeded and deterministic."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from axis_core.dataset.config import SplitConfig
from axis_core.dataset.model import Item, Split

_MAX_ROUNDS = 20


def _cost(val: Counter[str], totals: Counter[str], ratio: float) -> float:
    """Squared deviation of each class's validation share from the target ratio."""
    return sum((val[c] / totals[c] - ratio) ** 2 for c in totals if totals[c])


def assign_plates(items: Sequence[Item], cfg: SplitConfig) -> dict[str, Split]:
    """Map each plate to ``train`` or ``val`` so that every class is split close to the configured ratio.

    Plates are visited in a seeded random order and each goes to the split whose class needs it most
    (remaining deficit weighted by the plate's class counts); a few deterministic passes then move
    single plates while that brings the per-class validation shares closer to the ratio.
    """
    per_plate: dict[str, Counter[str]] = defaultdict(Counter)
    for it in items:
        per_plate[it.candidate.plate_barcode][it.class_key] += 1
    plates = sorted(per_plate)
    if not cfg.enabled or cfg.val_ratio <= 0.0 or len(plates) < 2:
        return dict.fromkeys(plates, "train")
    rng = np.random.default_rng(cfg.seed)
    order = [plates[i] for i in rng.permutation(len(plates))]
    totals: Counter[str] = Counter()
    for counts in per_plate.values():
        totals.update(counts)
    classes = sorted(totals)
    target = {
        "train": {c: cfg.train_ratio * totals[c] for c in classes},
        "val": {c: cfg.val_ratio * totals[c] for c in classes},
    }
    have: dict[str, Counter[str]] = {"train": Counter(), "val": Counter()}
    assigned: dict[str, Split] = {}
    for plate in order:
        counts = per_plate[plate]
        need = {s: sum(counts[c] * (target[s][c] - have[s][c]) / totals[c] for c in classes) for s in ("train", "val")}
        split: Split = "val" if need["val"] > need["train"] else "train"
        assigned[plate] = split
        have[split].update(counts)
    val = have["val"]
    for _ in range(_MAX_ROUNDS):
        moved = False
        for plate in order:
            counts = per_plate[plate]
            candidate = val - counts if assigned[plate] == "val" else val + counts
            if assigned[plate] == "val" and not candidate:
                continue  # keep at least one validation plate
            if _cost(candidate, totals, cfg.val_ratio) < _cost(val, totals, cfg.val_ratio) - 1e-12:
                assigned[plate] = "train" if assigned[plate] == "val" else "val"
                val = candidate
                moved = True
        if not moved:
            break
    return assigned


def split_warnings(items: Sequence[Item], assigned: dict[str, Split]) -> list[str]:
    """Plain-language warnings about a split that will train or validate poorly."""
    per: dict[str, Counter[str]] = {"train": Counter(), "val": Counter()}
    for it in items:
        per[assigned[it.candidate.plate_barcode]][it.class_key] += 1
    out: list[str] = []
    for cls in sorted(set(per["train"]) | set(per["val"])):
        for s in ("train", "val"):
            if assigned and any(v == "val" for v in assigned.values()) and per[s][cls] == 0:
                out.append(f"split {s!r} has no {cls!r} images")
    if items and not any(v == "val" for v in assigned.values()):
        out.append("no validation split (fewer than two plates, split disabled or val_ratio 0)")
    return out
