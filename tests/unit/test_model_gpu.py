"""GPU scoring path, run on the CPU: scores like the fp32 classifier, FLOPs by hand, the bench's summary line."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from axis_inference.bench_gpu import main as bench_main
from axis_inference.loader import ServiceScorer, build_service_scorer
from axis_inference.models import ModelRef
from axis_inference.seeding import drop_jpeg, save_mode_bundles
from axis_inference.settings import GPU_VARIANT_PATTERN
from axis_model import BaseSpec, FastScorer, LoraSpec, build_classifier, preprocess_bytes
from axis_model.adapters import randomise_adapter
from axis_model.flops import peak_bf16_tflops, vit_flops
from axis_model.gpu import VARIANT_PATTERN, GpuScorer, GpuVariant, resolve_device
from axis_model.spec import TINY_CONFIG

pytestmark = pytest.mark.unit

SUMMARY = re.compile(
    r"^gpu: [\d.]+ pairs/s at (\d+) px \([\d.]+x the paper's 6\.7 pairs/s\), (n/a|[\d.]+)% of the device's bf16 "
    r"peak, service end-to-end (not run|[\d.]+ pairs/s), max \|dp\| vs fp32 ([\d.]+) \((.+)\)$"
)


@pytest.fixture(scope="module")
def classifier():  # type: ignore[no-untyped-def]
    clf = build_classifier(BaseSpec.tiny(), LoraSpec())
    randomise_adapter(clf, "visible", seed=1)
    randomise_adapter(clf, "uv", seed=2)
    return clf


def _files() -> list[tuple[str, bytes]]:
    return [("uv" if i % 3 == 0 else "visible", drop_jpeg(50 + 25 * i, seed=i)) for i in range(7)]


@pytest.mark.parametrize(
    ("variant", "tolerance"),
    [("fp32", 1e-5), ("fp32-lora", 1e-5), ("bf16-merged", 0.02), ("bf16-lora", 0.02), ("fp16-lora+graph", 0.02)],
)
def test_gpu_scorer_on_the_cpu_scores_like_the_fp32_classifier(classifier, variant: str, tolerance: float) -> None:  # type: ignore[no-untyped-def]
    files = _files()
    want = classifier.score_items([(m, preprocess_bytes(d, classifier.preprocess)) for m, d in files])
    scorer = GpuScorer.from_classifier(classifier, variant=variant, device="cpu", batch_size=3)
    streamed = scorer.score_files(files, workers=2)  # decode threads + ring buffers, chunks of 3
    assert np.abs(streamed - want).max() < tolerance
    assert [scorer.label(p, m) for p, (m, _) in zip(streamed, files, strict=True)] == [
        classifier.label(p, m) for p, (m, _) in zip(want, files, strict=True)
    ]
    gray = scorer.score_items([(m, scorer.prepare_gray(d)) for m, d in files])
    normalised = scorer.score_items([(m, preprocess_bytes(d, classifier.preprocess)) for m, d in files])
    np.testing.assert_allclose(gray, streamed, atol=1e-6)  # same images, same order, whichever way in
    assert np.abs(normalised - gray).max() < max(tolerance, 1e-5)  # 3 normalised channels == folded gray weights


def test_one_batch_holds_both_modes_each_with_its_own_adapter(classifier) -> None:  # type: ignore[no-untyped-def]
    gray = np.random.default_rng(0).integers(0, 256, (6, 112, 112), dtype=np.uint8)
    modes = ["visible", "uv", "uv", "visible", "uv", "visible"]
    batched = GpuScorer.from_classifier(classifier, variant="fp32-lora", device="cpu")
    merged = GpuScorer.from_classifier(classifier, variant="fp32-merged", device="cpu")
    np.testing.assert_allclose(batched.predict_logits(gray, modes), merged.predict_logits(gray, modes), atol=1e-4)
    assert not np.allclose(batched.predict_logits(gray, "visible"), batched.predict_logits(gray, "uv"))
    with pytest.raises(KeyError, match="no model for mode 'ir'"):
        batched.predict_logits(gray[:1], "ir")


def test_variant_names_and_devices_say_what_to_use(monkeypatch: pytest.MonkeyPatch) -> None:
    assert GpuVariant.parse("bf16-lora+graph") == GpuVariant("bf16", "lora", graph=True)
    assert str(GpuVariant.parse("fp32")) == "fp32-merged"
    assert str(GpuVariant.parse("fp16-merged+compile+graph")) == "fp16-merged+graph+compile"
    with pytest.raises(ValueError, match="<fp32|bf16|fp16>-<merged|lora>"):
        GpuVariant.parse("int8")
    assert GPU_VARIANT_PATTERN == VARIANT_PATTERN  # the settings validate the same names without importing torch
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto").type == "cpu"
    with pytest.raises(RuntimeError, match="sees no CUDA device; use device 'auto' or 'cpu'"):
        resolve_device("cuda")


def test_the_service_keeps_the_cpu_fast_path_without_cuda_and_scores_gray_on_the_gpu_path(
    classifier,  # type: ignore[no-untyped-def]
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    bundles = save_mode_bundles(classifier, tmp_path)
    wanted = {m: (ModelRef(f"axis-{m}", "1"), bundles[m]) for m in ("visible", "uv")}
    cpu = build_service_scorer(wanted, device="auto")
    assert isinstance(cpu.fast, FastScorer) and cpu.describe().startswith("FastScorer bf16mix on cpu")
    gpu_path = ServiceScorer(
        refs=cpu.refs, fast=GpuScorer.from_classifier(classifier, device="cpu"), preprocess=cpu.preprocess
    )
    files = _files()
    items = [(m, gpu_path.prepare(m, d)) for m, d in files]
    assert items[0][1].dtype == np.uint8 and items[0][1].shape == (112, 112)  # only gray bytes go to the device
    want = classifier.score_items([(m, preprocess_bytes(d, classifier.preprocess)) for m, d in files])
    assert np.abs(np.asarray(gpu_path.score(items)) - want).max() < 0.02


def test_flops_match_a_hand_count_for_the_tiny_config() -> None:
    # 112 px, patch 14: 64 patches + CLS = 65 tokens; hidden 64, 4 layers, MLP 64 * 4 = 256
    f = vit_flops(TINY_CONFIG, 112, lora_rank=25)
    assert f.tokens == 65
    assert f.patch_embed == 2 * 64 * (3 * 14 * 14) * 64 == 4_816_896
    assert f.qkv == 4 * 2 * 65 * 64 * 192 == 6_389_760
    assert f.attention_scores == f.attention_values == 4 * 2 * 65 * 65 * 64 == 2_163_200
    assert f.out_proj == 4 * 2 * 65 * 64 * 64 == 2_129_920
    assert f.mlp == 4 * 2 * (2 * 65 * 64 * 256) == 17_039_360
    assert f.head == 2 * 128 * 2 == 512
    assert f.total == 34_702_848
    # LoRA r=25 on q, k, v, o (64 -> 64) and fc1 / fc2 (64 <-> 256): 2 T r (in + out) each, per layer
    assert f.lora == 4 * (4 * 2 * 65 * 25 * 128 + 2 * 2 * 65 * 25 * 320) == 14_976_000
    base = vit_flops({"hidden_size": 768, "num_hidden_layers": 12, "patch_size": 14, "mlp_ratio": 4}, 518)
    assert 302e9 < base.total < 304e9  # the issue's ~303 GFLOP (152 GMAC) for ViT-B/14 at 518 px
    assert peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert peak_bf16_tflops("NVIDIA L40S") == 362.0 and peak_bf16_tflops("NVIDIA L4") == 121.0
    assert peak_bf16_tflops("cpu") is None


def test_the_bench_runs_on_the_cpu_and_ends_with_the_summary_line(capsys: pytest.CaptureFixture[str]) -> None:
    bench_main(
        [
            "--device=cpu",
            "--base=tiny",
            "--size=56",
            "--batch-sizes=1,2",
            "--variants=fp32,bf16-lora,cpu-bf16mix",
            "--iters=2",
            "--max-seconds=0.2",
            "--fidelity-images=4",
            "--stream-images=4",
            "--image-size=230x192",
            "--no-service",
        ]
    )
    lines = capsys.readouterr().out.strip().splitlines()
    match = SUMMARY.match(lines[-1])
    assert match, lines[-1]
    assert match.group(1) == "56" and match.group(2) == "n/a" and match.group(3) == "not run"
    assert float(match.group(4)) <= 0.02 and "device cpu" in match.group(5)
    rows = [line.split()[:2] for line in lines if re.match(r"^(fp32|bf16-lora|cpu-bf16mix)\s+\d+\s", line)]
    assert rows == [[v, b] for v in ("fp32", "bf16-lora", "cpu-bf16mix") for b in ("1", "2")]
    assert any(line.startswith("streamed bytes -> scores") for line in lines)
