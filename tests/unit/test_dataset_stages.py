"""Dataset stages one at a time: consensus rules, image QC verdicts, uniqueness windows, similarity, config."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from axis_core.dataset import (
    Candidate,
    ConsensusConfig,
    CuratorLabel,
    DatasetConfig,
    ImageQCConfig,
    SimilarityConfig,
    SplitConfig,
    UniquenessConfig,
    build_dataset,
    measure_image,
    parse_manifest,
)
from axis_core.dataset.model import ImageStats, Item
from axis_core.dataset.phash import HammingIndex, hamming
from axis_core.dataset.stages import label_consensus, similarity, uniqueness
from PIL import Image, ImageFilter
from pydantic import ValidationError
from sample_images import samples_dir

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def cand(n: int, **kw: object) -> Candidate:
    base: dict[str, object] = {
        "image_uri": f"s3://img/{n}.png",
        "imaging_mode": "visible",
        "plate_barcode": "P1",
        "well": f"A{n % 12 + 1}",
        "drop": 1 + n // 12,
        "inspection_id": f"i{n}",
        "imaged_at": T0 + timedelta(minutes=n),
        "label_source": "agreement",
        "ml_label": "crystal",
        "human_label": "crystal",
    }
    base.update(kw)
    return Candidate.model_validate(base)


def curated(n: int, *votes: tuple[str, str, int]) -> Candidate:
    labels = tuple(CuratorLabel(curator=c, label=v, at=T0 + timedelta(hours=h)) for c, v, h in votes)  # type: ignore[arg-type]
    return cand(n, label_source="curated", ml_label="other", human_label="crystal", curator_labels=labels)


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def texture(seed: int, size: int = 96) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.uniform(40, 215, (8, 8)).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BICUBIC
    )
    return np.clip(np.asarray(coarse, dtype=np.float64) + rng.normal(0, 8, (size, size)), 1, 254).astype(np.uint8)


def stats(data: bytes) -> ImageStats:
    m = measure_image(data)
    assert isinstance(m, ImageStats)
    return m


# --- label consensus -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("votes", "k", "label", "reason"),
    [
        ([("a", "crystal", 0), ("b", "crystal", 1)], 2, "crystal", ""),
        ([("a", "other", 0)], 2, None, "insufficient_curators"),
        ([("a", "other", 0)], 1, "other", ""),
        ([("a", "crystal", 0), ("b", "other", 1)], 1, None, "curator_conflict"),
        # a curator's later label replaces the earlier one: b changed their mind to agree with a
        ([("a", "crystal", 0), ("b", "other", 1), ("b", "crystal", 2)], 2, "crystal", ""),
        # ...and a changing their mind to conflict makes it a conflict
        ([("a", "crystal", 0), ("b", "crystal", 1), ("a", "other", 3)], 2, None, "curator_conflict"),
        ([("a", "uncertain", 0), ("b", "uncertain", 1)], 1, None, "uncertain"),
        ([("a", "crystal", 0), ("b", "crystal", 1), ("c", "unusable", 2)], 2, None, "unusable"),
        ([("a", "crystal", 0), ("b", "crystal", 1), ("c", "uncertain", 2)], 2, "crystal", ""),
        ([], 1, None, "insufficient_curators"),
    ],
)
def test_curated_consensus(votes: list[tuple[str, str, int]], k: int, label: str | None, reason: str) -> None:
    res = label_consensus([Item(curated(0, *votes))], ConsensusConfig(min_curators=k))
    if label is None:
        assert not res.kept and [r.reason for r in res.removed] == [reason]
    else:
        assert [it.label for it in res.kept] == [label] and not res.removed


def test_curated_item_takes_the_curators_label_not_the_users() -> None:
    res = label_consensus([Item(curated(0, ("a", "other", 0), ("b", "other", 0)))], ConsensusConfig())
    assert res.kept[0].label == "other"  # the user said crystal, the curators overrule


def test_consensus_switched_off_takes_latest_curator_label_and_keeps_agreements() -> None:
    items = [Item(curated(0, ("a", "crystal", 0), ("b", "other", 5))), Item(cand(1, ml_label="other"))]
    on = label_consensus(items, ConsensusConfig())
    assert [r.reason for r in on.removed] == ["curator_conflict", "not_an_agreement"]
    off = label_consensus(items, ConsensusConfig(enabled=False))
    assert [it.label for it in off.kept] == ["other", "crystal"]


# --- image QC --------------------------------------------------------------------------------------


def build_one(data: bytes, config: DatasetConfig | None = None) -> list[str]:
    c = cand(0)
    res = build_dataset([c], config or DatasetConfig(), {c.image_uri: data}.__getitem__)
    return [r.reason for r in res.removed]


def test_image_qc_keeps_a_normal_image_and_the_real_samples() -> None:
    assert build_one(png(texture(1))) == []
    for name in ("visible", "uv"):
        path = samples_dir() / f"axis-sample-{name}.jpg"
        try:
            data = open(path, "rb").read()
        except OSError:
            pytest.skip("sample images not available")
        assert build_one(data) == []


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda: np.full((96, 96), 128, np.uint8), "blank"),
        (lambda: np.where(texture(2) > 100, 255, texture(2)).astype(np.uint8), "saturated"),
        (lambda: texture(3, size=32), "bad_size"),
    ],
)
def test_image_qc_removes_bad_images(make: object, reason: str) -> None:
    assert build_one(png(make())) == [reason]  # type: ignore[operator]


def test_out_of_focus_is_measured_by_laplacian_variance() -> None:
    sharp = texture(4, size=256)
    blurred = np.asarray(Image.fromarray(sharp).filter(ImageFilter.GaussianBlur(6)))
    cfg = DatasetConfig(image_qc=ImageQCConfig(min_laplacian_var=5.0))
    assert build_one(png(sharp), cfg) == []
    assert build_one(png(blurred), cfg) == ["out_of_focus"]


def test_image_qc_thresholds_are_per_mode_and_can_be_switched_off() -> None:
    dark = np.zeros((96, 96), np.uint8)
    dark[20:40, 20:40] = texture(5, size=20)
    strict = DatasetConfig(image_qc=ImageQCConfig(max_black_fraction=0.5))
    assert build_one(png(dark), strict) == ["saturated_black"]
    uv_lenient = strict.model_copy(update={"image_qc_by_mode": {"visible": ImageQCConfig()}})
    assert build_one(png(dark), uv_lenient) == []
    off = DatasetConfig(image_qc=ImageQCConfig(enabled=False))
    assert build_one(b"garbage", off) == []


def test_unloadable_and_undecodable_images_are_removed_with_reasons() -> None:
    a, b = cand(0), cand(1)

    def loader(uri: str) -> bytes:
        if uri == a.image_uri:
            raise FileNotFoundError("no such object")
        return b"\x89PNG\r\n\x1a\n broken"

    res = build_dataset([a, b], DatasetConfig(), loader)
    assert [(r.reason, "FileNotFoundError" in r.detail) for r in res.removed] == [
        ("unreadable", True),
        ("undecodable", False),
    ]
    assert res.warnings and "could not be loaded" in res.warnings[0]


def test_without_loader_images_given_as_measurements_are_used() -> None:
    c = cand(0)
    res = build_dataset([c], DatasetConfig(), measurements={c.image_uri: measure_image(png(texture(6)))})
    assert len(res.rows) == 1 and res.rows[0].sha256 is not None
    assert [r.reason for r in build_dataset([c], DatasetConfig()).removed] == ["not_measured"]


# --- uniqueness ------------------------------------------------------------------------------------


def test_reinspection_window_keeps_latest_or_earliest_and_moves_all_modes_together() -> None:
    same_drop = {"well": "B2", "drop": 1}
    early_vis = cand(0, inspection_id="day1", imaged_at=T0, **same_drop)
    early_uv = cand(1, inspection_id="day1", imaged_at=T0, imaging_mode="uv", **same_drop)
    later = cand(2, inspection_id="day2", imaged_at=T0 + timedelta(hours=30), **same_drop)
    much_later = cand(3, inspection_id="day9", imaged_at=T0 + timedelta(days=9), **same_drop)
    items = [Item(c) for c in (early_vis, early_uv, later, much_later)]
    latest = uniqueness(items, UniquenessConfig(window_hours=48, content_hash=False))
    assert {it.candidate.inspection_id for it in latest.kept} == {"day2", "day9"}
    assert len(latest.removed) == 2  # both images of day1
    earliest = uniqueness(items, UniquenessConfig(window_hours=48, keep="earliest", content_hash=False))
    assert sorted(it.candidate.image_uri for it in earliest.kept) == sorted(
        [early_vis.image_uri, early_uv.image_uri, much_later.image_uri]
    )
    assert uniqueness(items, UniquenessConfig(enabled=False)).removed == []


# --- similarity ------------------------------------------------------------------------------------


def _item(n: int, data: bytes, mode: str = "visible") -> Item:
    return Item(cand(n, imaging_mode=mode), label="crystal", measurement=stats(data))


def test_similarity_compares_within_a_mode_and_respects_the_threshold() -> None:
    arr = texture(7)
    nudged = arr.copy()
    nudged[10:12, 10:12] += 2
    a, b = png(arr), png(nudged)
    assert hamming(stats(a).phash, stats(b).phash) <= 5
    same_mode = similarity([_item(0, a), _item(1, b)], SimilarityConfig())
    assert [r.reason for r in same_mode.removed] == ["near_duplicate"]
    other_mode = similarity([_item(0, a), _item(1, b, "uv")], SimilarityConfig())
    assert other_mode.removed == []
    dhash = similarity([_item(0, a), _item(1, b)], SimilarityConfig(hash="dhash"))
    assert len(dhash.removed) == 1
    distinct = similarity([_item(n, png(texture(100 + n))) for n in range(30)], SimilarityConfig())
    assert distinct.removed == []


@pytest.mark.parametrize("max_distance", [0, 3, 5, 10, 20])
def test_hamming_index_finds_exactly_what_brute_force_finds(max_distance: int) -> None:
    rng = np.random.default_rng(max_distance)
    stored = [int(x) for x in rng.integers(0, 2**63, 200, dtype=np.int64)]
    index = HammingIndex(max_distance)
    for n, h in enumerate(stored):
        index.add(h, str(n))
    for n in range(300):
        base = stored[n % 200]
        flips = rng.choice(64, size=int(rng.integers(0, 25)), replace=False)
        query = base
        for bit in flips:
            query ^= 1 << int(bit)
        best = min(hamming(h, query) for h in stored)
        hit = index.nearest(query)
        assert (hit is not None) == (best <= max_distance)
        if hit is not None:
            assert hit[1] == best


# --- configuration and inputs ----------------------------------------------------------------------


def test_config_errors_say_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match="train_ratio \\+ val_ratio must be 1"):
        SplitConfig(train_ratio=0.7, val_ratio=0.2)
    with pytest.raises(ValidationError, match="min_curators"):
        ConsensusConfig(min_curators=0)
    with pytest.raises(ValidationError, match="extra"):
        DatasetConfig.model_validate({"simlarity": {}})


def test_repeated_uri_is_refused_and_bad_manifest_line_is_named() -> None:
    with pytest.raises(ValueError, match="repeated"):
        build_dataset([cand(0), cand(0)], DatasetConfig())
    c = cand(0)
    good = build_dataset([c], DatasetConfig(), {c.image_uri: png(texture(8))}.__getitem__).manifest_bytes()
    assert len(parse_manifest(good)) == 1
    with pytest.raises(ValueError, match="manifest line 2"):
        parse_manifest(good + b'{"image_uri": "s3://x/y.png"}\n')


def test_all_stages_off_keeps_every_labelled_item_in_train() -> None:
    cands = [cand(n) for n in range(5)]
    off = DatasetConfig(
        consensus=ConsensusConfig(enabled=False),
        image_qc=ImageQCConfig(enabled=False),
        uniqueness=UniquenessConfig(enabled=False),
        similarity=SimilarityConfig(enabled=False),
        split=SplitConfig(enabled=False),
    )
    res = build_dataset(cands, off)
    assert len(res.rows) == 5 and {r.split for r in res.rows} == {"train"}
    assert not any(s.enabled for s in res.report.stages if s.stage != "test_set_guard")
