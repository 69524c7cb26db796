"""The planted-problem scenario: 500 candidates, each planted problem removed at its own stage."""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from axis_core.dataset import (
    Candidate,
    CuratorLabel,
    DatasetConfig,
    DatasetResult,
    SplitConfig,
    build_dataset,
    build_test_set,
    dataset_card,
    encode_manifest,
    measure_image,
    parse_manifest,
)
from axis_core.dataset.model import ImageStats
from axis_core.dataset.phash import hamming
from PIL import Image

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
WELLS = [f"{r}{c}" for r in "ABCDEFGH" for c in range(1, 13)]
TEST_PLATE = "TEST-1"


def texture(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """A random image with coarse blobs and fine grain: distinct seeds give unrelated perceptual hashes."""
    coarse = Image.fromarray(rng.uniform(40, 215, (8, 8)).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BICUBIC
    )
    arr = np.asarray(coarse, dtype=np.float64) + rng.normal(0, 8, (size, size))
    return np.clip(arr, 1, 254).astype(np.uint8)


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class Scenario:
    candidates: list[Candidate] = field(default_factory=list)
    store: dict[str, bytes] = field(default_factory=dict)
    near_pairs: list[tuple[str, str]] = field(default_factory=list)


def make_scenario(seed: int = 7) -> Scenario:
    """388 clean items plus planted: 20 duplicates, 30 re-inspections, 10 corrupt, 15 near-duplicates,
    25 on a test plate, 12 curator conflicts."""
    rng = np.random.default_rng(seed)
    sc = Scenario()
    slot = 0
    curators_at = T0 + timedelta(days=30)

    def add(
        arr_or_bytes: np.ndarray | bytes,
        *,
        plate: str | None = None,
        drop_key: tuple[str, str, int] | None = None,
        at: datetime,
        mode: str,
        label: str = "other",
        curated: list[tuple[str, str]] | None = None,
    ) -> Candidate:
        nonlocal slot
        if drop_key is None:
            if plate is None:
                drop_key = (f"P{slot % 20:02d}", WELLS[(slot // 20) % 96], 1 + slot // (20 * 96))
            else:
                drop_key = (plate, WELLS[slot % 96], 1 + slot // 96)
            slot += 1
        uri = f"s3://images/{drop_key[0]}/{drop_key[1]}-{drop_key[2]}/{len(sc.candidates):04d}-{mode}.png"
        data = arr_or_bytes if isinstance(arr_or_bytes, bytes) else png(arr_or_bytes)
        sc.store[uri] = data
        labels = tuple(CuratorLabel(curator=c, label=v, at=curators_at) for c, v in (curated or []))  # type: ignore[arg-type]
        cand = Candidate(
            image_uri=uri,
            imaging_mode=mode,
            plate_barcode=drop_key[0],
            well=drop_key[1],
            drop=drop_key[2],  # type: ignore[arg-type]
            inspection_id=f"insp-{len(sc.candidates):04d}",
            imaged_at=at,
            label_source="curated" if curated else "agreement",
            ml_label=None if curated else label,
            human_label=label,  # type: ignore[arg-type]
            curator_labels=labels,
            model_version="axis-visible/3",
            sub_type="single_crystals" if label == "crystal" else "clear",
        )
        sc.candidates.append(cand)
        return cand

    base: list[tuple[Candidate, np.ndarray]] = []
    for i in range(388):
        arr = texture(rng)
        label = "crystal" if i % 3 == 0 else "other"
        curated = [("alice", label), ("bob", label)] if i % 10 == 7 else None
        cand = add(
            arr, at=T0 + timedelta(minutes=i), mode="visible" if i % 2 == 0 else "uv", label=label, curated=curated
        )
        base.append((cand, arr))
    later = T0 + timedelta(days=10)
    for j in range(20):  # exact duplicates: the same bytes under another URI, on another drop
        orig, arr = base[j]
        add(arr, at=later + timedelta(minutes=j), mode=orig.imaging_mode.value, label=orig.human_label or "other")
    for j in range(30):  # re-inspections of the same drop 12 h later (window 72 h)
        orig, _ = base[20 + j]
        add(
            texture(rng),
            drop_key=orig.drop_key,
            at=orig.imaged_at + timedelta(hours=12),
            mode=orig.imaging_mode.value,
            label=orig.human_label or "other",
        )
    for j in range(10):  # corrupt images: a truncated PNG or plain garbage
        data = png(texture(rng))[:60] if j % 2 else bytes(rng.integers(0, 256, 500, dtype=np.uint8))
        add(data, at=later + timedelta(hours=1, minutes=j), mode="visible")
    for j in range(15):  # near-duplicates: a few pixels nudged, another drop, imaged later
        orig, arr = base[60 + j]
        nudged = arr.copy()
        ys, xs = rng.integers(0, arr.shape[0], 6), rng.integers(0, arr.shape[1], 6)
        nudged[ys, xs] = np.clip(nudged[ys, xs].astype(int) + 3, 0, 255).astype(np.uint8)
        near = add(
            nudged,
            at=later + timedelta(hours=2, minutes=j),
            mode=orig.imaging_mode.value,
            label=orig.human_label or "other",
        )
        sc.near_pairs.append((orig.image_uri, near.image_uri))
    for j in range(25):  # a plate of the frozen test set
        add(
            texture(rng),
            plate=TEST_PLATE,
            at=later + timedelta(hours=3, minutes=j),
            mode="visible",
            label="crystal" if j % 2 else "other",
        )
    for j in range(12):  # curator conflicts
        add(
            texture(rng),
            at=later + timedelta(hours=4, minutes=j),
            mode="uv",
            label="crystal",
            curated=[("alice", "crystal"), ("bob", "other")],
        )
    assert len(sc.candidates) == 500
    return sc


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return make_scenario()


CONFIG = DatasetConfig().with_test_plates({TEST_PLATE})


@pytest.fixture(scope="module")
def built(scenario: Scenario) -> DatasetResult:
    return build_dataset(scenario.candidates, CONFIG, scenario.store.__getitem__)


def test_planted_near_duplicates_are_within_threshold_but_not_identical(scenario: Scenario) -> None:
    for a, b in scenario.near_pairs:
        sa, sb = measure_image(scenario.store[a]), measure_image(scenario.store[b])
        assert isinstance(sa, ImageStats) and isinstance(sb, ImageStats)
        assert sa.sha256 != sb.sha256
        assert hamming(sa.phash, sb.phash) <= CONFIG.similarity.max_distance


def test_each_planted_problem_is_removed_at_its_stage(scenario: Scenario, built: DatasetResult) -> None:
    result = built
    removed = {s.stage: s.removed for s in result.report.stages}
    assert removed == {
        "label_consensus": 12,
        "image_qc": 10,
        "uniqueness": 50,
        "similarity": 15,
        "test_set_guard": 25,
        "split": 0,
    }
    assert result.removed_by_stage() == {
        "label_consensus": {"curator_conflict": 12},
        "image_qc": {"undecodable": 10},
        "uniqueness": {"duplicate_content": 20, "reinspection_window": 30},
        "similarity": {"near_duplicate": 15},
        "test_set_guard": {"test_set_plate": 25},
    }
    assert len(result.rows) == 388
    # the near-duplicates (imaged later) go, their originals stay
    kept = {r.image_uri for r in result.rows}
    assert all(a in kept and b not in kept for a, b in scenario.near_pairs)
    assert TEST_PLATE not in {r.plate_barcode for r in result.rows}
    # the report's counts chain: each stage starts with what the previous one kept
    stages = result.report.stages
    assert stages[0].before.total == 500
    for prev, nxt in zip(stages, stages[1:], strict=False):
        assert nxt.before == prev.after
    final = stages[-1].after
    assert final.by_class == {
        "crystal": sum(r.label == "crystal" for r in result.rows),
        "other": sum(r.label == "other" for r in result.rows),
    }
    assert sum(final.by_mode.values()) == 388
    assert stages[0].before.by_class["unresolved"] == 39 + 12  # curated items before consensus


def test_manifest_matches_report_and_is_reproducible(scenario: Scenario, built: DatasetResult) -> None:
    first = built
    shuffled = list(scenario.candidates)
    random.Random(3).shuffle(shuffled)
    second = build_dataset(shuffled, CONFIG, scenario.store.__getitem__)
    assert first.manifest_bytes() == second.manifest_bytes()
    assert first.manifest_sha256 == second.manifest_sha256
    assert encode_manifest(second.rows) == (first.manifest_bytes(), first.manifest_sha256)
    assert first.removals_bytes() == second.removals_bytes()
    assert first.report.to_json_bytes() == second.report.to_json_bytes()
    rows = parse_manifest(first.manifest_bytes())
    assert len(rows) == 388
    splits = {s: sum(r.split == s for r in rows) for s in ("train", "val")}
    assert splits == {s: first.report.splits[s].total for s in ("train", "val")}
    curated = [r for r in rows if r.label_source == "curated"]
    assert curated and all(r.sha256 is not None for r in rows)
    line = json.loads(first.manifest_bytes().splitlines()[0])
    assert list(line) == [
        "image_uri",
        "sha256",
        "label",
        "label_source",
        "imaging_mode",
        "plate_barcode",
        "well",
        "drop",
        "inspection_id",
        "imaged_at",
        "split",
        "sub_type",
    ]


def test_split_is_grouped_stratified_and_seeded(scenario: Scenario, built: DatasetResult) -> None:
    result = built
    plates: dict[str, set[str]] = {}
    for r in result.rows:
        plates.setdefault(r.plate_barcode, set()).add(r.split)
    assert all(len(s) == 1 for s in plates.values()), "a plate must not be in both train and val"
    for cls in ("crystal", "other"):
        total = sum(r.label == cls for r in result.rows)
        val = sum(r.label == cls and r.split == "val" for r in result.rows)
        assert abs(val / total - 0.2) < 0.05, (cls, val, total)
    other_seed = CONFIG.model_copy(update={"split": SplitConfig(seed=12345)})
    reseeded = build_dataset(scenario.candidates, other_seed, scenario.store.__getitem__)
    assert {r.image_uri: r.split for r in reseeded.rows} != {r.image_uri: r.split for r in result.rows}
    assert reseeded.manifest_sha256 != result.manifest_sha256


def test_frozen_test_set_feeds_the_guard(scenario: Scenario) -> None:
    test_cands = [c for c in scenario.candidates if c.plate_barcode == TEST_PLATE]
    frozen = build_test_set(test_cands, DatasetConfig(), scenario.store.__getitem__)
    assert {r.split for r in frozen.rows} == {"test"} and len(frozen.rows) == 25
    assert frozen.plates == {TEST_PLATE}
    train = build_dataset(
        scenario.candidates, DatasetConfig().with_test_plates(frozen.plates), scenario.store.__getitem__
    )
    assert train.report.stage("test_set_guard").removed == 25
    assert not frozen.plates & {r.plate_barcode for r in train.rows}


def test_report_and_card_are_readable(scenario: Scenario, built: DatasetResult) -> None:
    result = built
    table = result.report.to_markdown()
    lines = table.splitlines()
    assert lines[0].startswith("| stage") and "removed by reason" in lines[0]
    assert any(line.startswith("| uniqueness") and "duplicate_content 20" in line for line in lines)
    data = json.loads(result.report.to_json_bytes())
    assert [s["removed"] for s in data["stages"]] == [12, 10, 50, 15, 25, 0]
    card = dataset_card(result, name="crystals", version="v3", created_at=datetime(2026, 4, 1, tzinfo=UTC))
    assert "# Dataset crystals v3" in card and result.manifest_sha256 in card
    assert "2026-04-01 00:00:00 UTC" in card and "axis-visible/3: 388 images" in card
    assert '"min_curators": 2' in card and TEST_PLATE in card
    counts = result.counts()
    assert counts["all"]["images"] == 388 and counts["train"]["images"] + counts["val"]["images"] == 388
