"""The QC stages before the split; each takes items and returns the kept ones and the removals (no I/O)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from axis_contracts.scheme import BinaryLabel

from axis_core.dataset.config import (
    ConsensusConfig,
    DatasetConfig,
    SimilarityConfig,
    TestGuardConfig,
    UniquenessConfig,
)
from axis_core.dataset.imageqc import qc_verdict
from axis_core.dataset.model import Candidate, CuratorLabel, ImageFailure, Item, Removal, StageResult
from axis_core.dataset.phash import HammingIndex

CONSENSUS = "label_consensus"
IMAGE_QC = "image_qc"
UNIQUENESS = "uniqueness"
SIMILARITY = "similarity"
TEST_GUARD = "test_set_guard"
SPLIT = "split"
STAGE_ORDER: tuple[str, ...] = (CONSENSUS, IMAGE_QC, UNIQUENESS, SIMILARITY, TEST_GUARD, SPLIT)


def latest_curator_labels(labels: Sequence[CuratorLabel]) -> dict[str, CuratorLabel]:
    """The latest label of each curator (a later entry wins a tie on time)."""
    latest: dict[str, CuratorLabel] = {}
    for lab in labels:
        prev = latest.get(lab.curator)
        if prev is None or lab.at >= prev.at:
            latest[lab.curator] = lab
    return latest


def curated_label(candidate: Candidate, cfg: ConsensusConfig) -> tuple[BinaryLabel | None, str, str]:
    """Decide a curated item's label: (label, reason code, detail); label None means drop it.

    Rules, on the latest label of each curator: crystal and other both present -> curator_conflict;
    any ``unusable`` (when drop_if_any_unusable) -> unusable; >= k curators on one binary label -> keep;
    otherwise uncertain (someone said uncertain) or insufficient_curators.
    """
    votes = latest_curator_labels(candidate.curator_labels)
    counts: dict[str, int] = defaultdict(int)
    for lab in votes.values():
        counts[lab.label] += 1
    detail = ", ".join(f"{k}={counts[k]}" for k in sorted(counts)) or "no curator labels"
    if counts["crystal"] and counts["other"]:
        return None, "curator_conflict", detail
    if cfg.drop_if_any_unusable and counts["unusable"]:
        return None, "unusable", detail
    for label in ("crystal", "other"):
        if counts[label] >= cfg.min_curators:
            return label, "", detail  # type: ignore[return-value]
    if counts["uncertain"]:
        return None, "uncertain", detail
    return None, "insufficient_curators", f"{detail}; need {cfg.min_curators} agreeing curators"


def _latest_binary(candidate: Candidate) -> BinaryLabel | None:
    binary = [lab for lab in candidate.curator_labels if lab.label in ("crystal", "other")]
    if not binary:
        return None
    last = max(enumerate(binary), key=lambda t: (t[1].at, t[0]))[1]
    return "crystal" if last.label == "crystal" else "other"


def label_consensus(items: Sequence[Item], cfg: ConsensusConfig) -> StageResult:
    """Keep agreements (ML = human) and curated items whose curators agree; label each kept item.

    Switched off, an agreement still needs a human label and a curated item takes the latest
    crystal/other label of any curator (items with no usable label cannot be kept either way).
    """
    kept: list[Item] = []
    removed: list[Removal] = []
    for it in items:
        c = it.candidate
        if c.label_source == "agreement":
            if c.human_label is None:
                removed.append(Removal(it, CONSENSUS, "no_label", "agreement without a human label"))
            elif cfg.enabled and c.ml_label is not None and c.ml_label != c.human_label:
                detail = f"ml={c.ml_label} human={c.human_label}"
                removed.append(Removal(it, CONSENSUS, "not_an_agreement", detail))
            else:
                kept.append(replace(it, label=c.human_label))
            continue
        if not cfg.enabled:
            label = _latest_binary(c)
            if label is None:
                removed.append(Removal(it, CONSENSUS, "no_label", "no crystal/other curator label"))
            else:
                kept.append(replace(it, label=label))
            continue
        decided, reason, detail = curated_label(c, cfg)
        if decided is None:
            removed.append(Removal(it, CONSENSUS, reason, detail))
        else:
            kept.append(replace(it, label=decided))
    return StageResult(kept, removed)


def image_qc(items: Sequence[Item], config: DatasetConfig) -> StageResult:
    """Keep decodable images of sane size that are not blank, saturated or out of focus."""
    kept: list[Item] = []
    removed: list[Removal] = []
    for it in items:
        cfg = config.image_qc_for(it.candidate.imaging_mode.value)
        if not cfg.enabled:
            kept.append(it)
            continue
        m = it.measurement
        if m is None:
            removed.append(Removal(it, IMAGE_QC, "not_measured", "no bytes or statistics were provided"))
        elif isinstance(m, ImageFailure):
            code = "unreadable" if m.reason.startswith("load failed") else "undecodable"
            removed.append(Removal(it, IMAGE_QC, code, m.reason))
        else:
            verdict = qc_verdict(m, cfg)
            if verdict is None:
                kept.append(it)
            else:
                removed.append(Removal(it, IMAGE_QC, verdict[0], verdict[1]))
    return StageResult(kept, removed)


def _content_unique(items: Sequence[Item]) -> StageResult:
    first: dict[str, Item] = {}
    kept: list[Item] = []
    removed: list[Removal] = []
    for it in items:
        h = it.sha256
        if h is None:
            kept.append(it)
        elif h in first:
            detail = f"same bytes as {first[h].candidate.image_uri}"
            removed.append(Removal(it, UNIQUENESS, "duplicate_content", detail))
        else:
            first[h] = it
            kept.append(it)
    return StageResult(kept, removed)


def _window_unique(items: Sequence[Item], cfg: UniquenessConfig) -> StageResult:
    """One inspection per drop and time window; an inspection's images (all modes) stay or go together."""
    window = timedelta(hours=cfg.window_hours)
    inspections: dict[tuple[str, str, int], dict[str, datetime]] = defaultdict(dict)
    for it in items:
        c = it.candidate
        seen = inspections[c.drop_key]
        seen[c.inspection_id] = min(seen.get(c.inspection_id, c.imaged_at), c.imaged_at)
    dropped: dict[tuple[tuple[str, str, int], str], str] = {}
    for drop_key, per_drop in inspections.items():
        order = sorted(per_drop.items(), key=lambda kv: (kv[1], kv[0]), reverse=cfg.keep == "latest")
        anchor: tuple[str, datetime] | None = None
        for insp, at in order:
            if anchor is not None and abs(at - anchor[1]) < window:
                dropped[(drop_key, insp)] = anchor[0]
            else:
                anchor = (insp, at)
    kept: list[Item] = []
    removed: list[Removal] = []
    for it in items:
        winner = dropped.get((it.candidate.drop_key, it.candidate.inspection_id))
        if winner is None:
            kept.append(it)
        else:
            detail = f"same drop re-imaged within {cfg.window_hours:g} h; kept inspection {winner} ({cfg.keep})"
            removed.append(Removal(it, UNIQUENESS, "reinspection_window", detail))
    return StageResult(kept, removed)


def uniqueness(items: Sequence[Item], cfg: UniquenessConfig) -> StageResult:
    """Remove exact copies (content hash, first in canonical order kept), then re-inspections in a window."""
    if not cfg.enabled:
        return StageResult(list(items))
    removed: list[Removal] = []
    current = list(items)
    if cfg.content_hash:
        res = _content_unique(current)
        current, removed = res.kept, removed + res.removed
    if cfg.drop_window:
        res = _window_unique(current, cfg)
        current, removed = res.kept, removed + res.removed
    return StageResult(current, removed)


def similarity(items: Sequence[Item], cfg: SimilarityConfig) -> StageResult:
    """Remove images whose perceptual hash is within the threshold of one already kept (same mode only)."""
    if not cfg.enabled:
        return StageResult(list(items))
    indexes: dict[str, HammingIndex] = {}
    kept: list[Item] = []
    removed: list[Removal] = []
    for it in items:
        stats = it.stats
        if stats is None:
            kept.append(it)  # nothing to compare (image QC off and image not decoded)
            continue
        mode = it.candidate.imaging_mode.value
        index = indexes.setdefault(mode, HammingIndex(cfg.distance_for(mode)))
        h = stats.phash if cfg.hash == "phash" else stats.dhash
        hit = index.nearest(h)
        if hit is None:
            index.add(h, it.candidate.image_uri)
            kept.append(it)
        else:
            detail = f"{cfg.hash} distance {hit[1]} <= {index.max_distance} from {hit[0]}"
            removed.append(Removal(it, SIMILARITY, "near_duplicate", detail))
    return StageResult(kept, removed)


def test_set_guard(items: Sequence[Item], cfg: TestGuardConfig) -> StageResult:
    """Remove everything imaged on a plate of the frozen test set."""
    if not cfg.enabled or not cfg.test_plates:
        return StageResult(list(items))
    plates = set(cfg.test_plates)
    kept: list[Item] = []
    removed: list[Removal] = []
    for it in items:
        plate = it.candidate.plate_barcode
        if plate in plates:
            removed.append(Removal(it, TEST_GUARD, "test_set_plate", f"plate {plate} is in the frozen test set"))
        else:
            kept.append(it)
    return StageResult(kept, removed)
