"""Trainer logic without servers: class weights, LR schedule, checkpoint rule, dataset checks, promotion gate."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from axis_adapters.registry import CHAMPION, metric_tags
from axis_cli.promote import PromotionRefused, compare, promote
from axis_core.metrics import binary_metrics
from axis_model.finetune import TrainConfig, better, class_weights, linear_decay, total_optimizer_steps
from axis_model.preprocess import PreprocessConfig
from axis_trainer.data import DatasetError, check_trainable, load_images, parse_rows, read_manifest
from fakes import InMemoryObjectStore, InMemoryRegistry

pytestmark = pytest.mark.unit


def test_class_weights_are_inverse_frequency_by_label_id() -> None:
    # 0 = crystal (2 images), 1 = other (6 images): the rare class weighs 3x the common one
    w = class_weights([1, 1, 0, 1, 1, 0, 1, 1])
    assert w.tolist() == pytest.approx([2.0, 2 / 3])
    assert w[0] * 2 == pytest.approx(w[1] * 6)  # each class contributes the same total weight


def test_class_weights_refuse_an_empty_class() -> None:
    with pytest.raises(ValueError, match="crystal has no training images"):
        class_weights([1, 1, 1])


def test_linear_decay_schedule_reaches_zero_at_the_last_step() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, linear_decay(4))
    lrs = []
    for _ in range(4):
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    lrs.append(sched.get_last_lr()[0])
    assert lrs == pytest.approx([0.1, 0.075, 0.05, 0.025, 0.0])


def test_total_steps_count_accumulation_and_cap() -> None:
    cfg = TrainConfig(epochs=3, batch_size=16, grad_accum=2)
    assert total_optimizer_steps(100, cfg) == 3 * 4  # 7 micro-batches -> 4 optimizer steps per epoch
    assert total_optimizer_steps(100, cfg.model_copy(update={"max_steps": 5})) == 5


def test_config_for_steps_runs_exactly_that_many_optimizer_steps() -> None:
    cfg = TrainConfig.for_steps(32, 24, batch_size=8, lr=1e-3)  # 3 steps an epoch: 11 epochs, the last cut short
    assert (cfg.epochs, cfg.max_steps, cfg.lr) == (11, 32, 1e-3)
    assert total_optimizer_steps(24, cfg) == 32
    accum = TrainConfig.for_steps(10, 100, batch_size=16, grad_accum=2)  # 7 micro-batches -> 4 steps an epoch
    assert accum.epochs == 3 and total_optimizer_steps(100, accum) == 10


def test_checkpoint_rule_prefers_validation_balanced_accuracy_then_recall() -> None:
    truth = np.array([True, True, False, False])
    weak = binary_metrics(truth, [0.9, 0.1, 0.9, 0.1])  # BA 0.5
    strong = binary_metrics(truth, [0.9, 0.9, 0.1, 0.1])  # BA 1.0
    assert better(weak, None)
    assert better(strong, weak)
    assert not better(weak, strong)
    assert not better(strong, strong)  # ties keep the earlier checkpoint


def _rows(*items: tuple[str, str, str]) -> bytes:
    lines = [
        json.dumps({"image_uri": uri, "label": label, "imaging_mode": "visible", "plate_barcode": "P1", "split": split})
        for uri, label, split in items
    ]
    return ("\n".join(lines) + "\n").encode()


def test_manifest_with_a_bad_line_names_the_line() -> None:
    data = _rows(("s3://axis-images/a.png", "crystal", "train")) + b'{"image_uri": "s3://axis-images/b.png"}\n'
    with pytest.raises(DatasetError, match="line 2"):
        parse_rows(data)


def test_missing_manifest_is_a_clear_error() -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        read_manifest(InMemoryObjectStore(), "s3://axis-datasets/nope/manifest.jsonl")


def test_manifest_changed_after_export_is_refused() -> None:
    store = InMemoryObjectStore()
    store.put_bytes("s3://axis-datasets/d/manifest.jsonl", _rows(("s3://axis-images/a.png", "crystal", "train")))
    with pytest.raises(DatasetError, match="changed after export"):
        read_manifest(store, "s3://axis-datasets/d/manifest.jsonl", expected_sha256="0" * 64)


def test_empty_class_in_train_split_is_refused() -> None:
    rows = parse_rows(
        _rows(("s3://b1/a", "other", "train"), ("s3://b1/b", "other", "train"), ("s3://b1/c", "crystal", "val"))
    )
    with pytest.raises(DatasetError, match="train split has no 'crystal' images"):
        check_trainable([r for r in rows if r.split == "train"], [r for r in rows if r.split == "val"], "visible")


def test_broken_image_uri_names_the_manifest_line() -> None:
    store = InMemoryObjectStore()
    png = _png()
    store.put_bytes("s3://axis-images/ok.png", png)
    rows = parse_rows(
        _rows(("s3://axis-images/ok.png", "crystal", "train"), ("s3://axis-images/gone.png", "other", "train"))
    )
    with pytest.raises(DatasetError, match="line 2: image s3://axis-images/gone.png does not exist"):
        load_images(store, rows, PreprocessConfig(size=28), max_bytes=1 << 20)


def test_images_are_checked_against_their_sha256() -> None:
    store = InMemoryObjectStore()
    store.put_bytes("s3://axis-images/ok.png", _png())
    row = {"image_uri": "s3://axis-images/ok.png", "sha256": hashlib.sha256(b"else").hexdigest()}
    rows = parse_rows((json.dumps({**row, "label": "crystal", "mode": "visible", "split": "train"}) + "\n").encode())
    with pytest.raises(DatasetError, match="does not match its sha256"):
        load_images(store, rows, PreprocessConfig(size=28), max_bytes=1 << 20)


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((32, 32), 128, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _registry_with(
    tmp_path: Path, versions: list[dict[str, float]], champion_tags: dict[str, str] | None = None
) -> InMemoryRegistry:
    reg = InMemoryRegistry(root=tmp_path / "reg")
    bundle = tmp_path / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / "bundle.json").write_text("{}")
    for metrics in versions:
        reg.register_bundle("axis-visible", bundle, "run", {"threshold": "0.5", **metric_tags(metrics)})
    return reg


GOOD = {"test_recall": 0.95, "test_balanced_accuracy": 0.93, "test_precision": 0.8, "test_f1": 0.87}
WORSE = {"test_recall": 0.70, "test_balanced_accuracy": 0.92, "test_precision": 0.9, "test_f1": 0.79}
CLOSE = {"test_recall": 0.94, "test_balanced_accuracy": 0.92, "test_precision": 0.8, "test_f1": 0.86}


def test_gate_refuses_a_clearly_worse_version_and_keeps_the_champion(tmp_path: Path) -> None:
    reg = _registry_with(tmp_path, [GOOD, WORSE])
    reg.set_alias("axis-visible", CHAMPION, "1")
    with pytest.raises(PromotionRefused) as info:
        promote(reg, "axis-visible", "2", by="ana", reason="try")
    assert "test_recall 0.7000 is 0.2500 below" in str(info.value)
    assert "test_recall" in info.value.comparison.table()
    assert reg.champion("axis-visible").version == "1"  # type: ignore[union-attr]


def test_gate_allows_a_drop_within_the_margin_and_records_who(tmp_path: Path) -> None:
    reg = _registry_with(tmp_path, [GOOD, CLOSE])
    reg.set_alias("axis-visible", CHAMPION, "1")
    result = promote(reg, "axis-visible", "2", by="ana", reason="facility B data", margin=0.02)
    champion = reg.champion("axis-visible")
    assert champion is not None and champion.version == "2"
    assert champion.tags["promoted_by"] == "ana" and champion.tags["promoted_reason"] == "facility B data"
    assert result.previous_version == "1"


def test_force_promotes_past_the_gate(tmp_path: Path) -> None:
    reg = _registry_with(tmp_path, [GOOD, WORSE])
    reg.set_alias("axis-visible", CHAMPION, "1")
    result = promote(reg, "axis-visible", "2", by="ana", reason="known regression, needed", force=True)
    assert result.comparison.refused and reg.champion("axis-visible").version == "2"  # type: ignore[union-attr]
    assert reg.version("axis-visible", "2").tags["promoted_forced"] == "true"


def test_gate_uses_the_champion_numbers_measured_in_the_candidates_own_run(tmp_path: Path) -> None:
    reg = _registry_with(tmp_path, [GOOD, CLOSE])
    # the candidate's run measured the champion on the same test set: recall 0.99 there (tags say 0.95)
    reg.set_tags("axis-visible", "2", {"champion_version_at_training": "1", "champion_metric.test_recall": "0.99"})
    comp = compare(reg.version("axis-visible", "2"), reg.version("axis-visible", "1"), margin=0.02)
    assert comp.refused and "below the champion's 0.9900" in comp.problems[0]


def test_first_promotion_has_nothing_to_compare(tmp_path: Path) -> None:
    reg = _registry_with(tmp_path, [WORSE])
    assert not promote(reg, "axis-visible", "1", by="ana", reason="first").comparison.refused
