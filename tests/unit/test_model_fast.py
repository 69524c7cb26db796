"""Fast CPU path: merged per-mode models score like the peft classifier; the benchmark reports its figures."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from axis_model import BaseSpec, FastScorer, ImageRejected, LoraSpec, build_classifier, preprocess_bytes
from axis_model.adapters import randomise_adapter
from axis_model.bench import run_model_benchmark
from PIL import Image

pytestmark = pytest.mark.unit


def _jpeg(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, (300, 360), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


@pytest.fixture(scope="module")
def classifier():  # type: ignore[no-untyped-def]
    clf = build_classifier(BaseSpec.tiny(), LoraSpec())
    randomise_adapter(clf, "visible", seed=1)
    randomise_adapter(clf, "uv", seed=2)
    return clf


def test_merged_fp32_scores_equal_the_peft_classifier(classifier) -> None:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(0).normal(size=(5, 3, 112, 112)).astype(np.float32)
    expected = classifier.score({"visible": x, "uv": x})
    fast = FastScorer.from_classifier(classifier, variant="fp32", batch_size=2)
    got = fast.score({"visible": x, "uv": x})
    for mode in ("visible", "uv"):
        assert np.abs(got[mode] - expected[mode]).max() < 1e-5
    # building the fast path left the classifier (both adapters, unmerged) as it was
    assert classifier.modes == ["visible", "uv"]
    again = classifier.score({"visible": x})["visible"]
    np.testing.assert_array_equal(again, expected["visible"])


@pytest.mark.parametrize("variant", ["bf16", "bf16mix", "int8mix", "int8"])
def test_reduced_precision_variants_score_files_in_input_order(classifier, variant: str) -> None:  # type: ignore[no-untyped-def]
    fast = FastScorer.from_classifier(classifier, variant=variant)  # type: ignore[arg-type]
    files = [("uv", _jpeg(1)), ("visible", _jpeg(2)), ("uv", _jpeg(3))]
    probs = fast.score_files(files)
    assert probs.shape == (3,) and ((probs >= 0) & (probs <= 1)).all()
    ref = classifier.score_items([(m, preprocess_bytes(d, classifier.preprocess)) for m, d in files])
    assert np.abs(probs - ref).max() < 0.5  # same images, same order (loose: tiny random nets quantise badly)
    with pytest.raises(ImageRejected):
        fast.score_files([("visible", b"not an image")])


def test_benchmark_reports_naive_and_fast_on_the_same_images() -> None:
    lines: list[str] = []
    result = run_model_benchmark(
        56,
        4,
        "tiny",
        n_train=6,
        lora_steps=1,
        variants=("fp32", "bf16"),
        image_size=(230, 192),
        progress=lines.append,
        borderline_share=0.25,
    )
    assert any(line.startswith("[bench] 1 borderline drops searched") for line in lines)
    assert [v.variant for v in result.variants] == ["fp32", "bf16"]
    assert result.variant in ("fp32", "bf16")
    assert len(result.naive_probs) == len(result.fast_probs) == 4
    assert result.speedup == pytest.approx(result.naive_ms_per_image / result.fast_ms_per_image)
    assert 0.0 <= result.label_agreement <= 1.0
    assert any(line.startswith("model speedup:") for line in lines)
    assert "naive fp32" in result.table()
    # same pixels as the transformers processor (luma decode: <= 1 level on rare pixels): merged fp32 ~ reference
    fp32 = result.variants[0].fidelity
    assert fp32.label_agreement == 1.0 and fp32.max_abs_dp < 1e-4 and fp32.max_abs_dlogit < 1e-3
    assert [row.variant.split(":")[0] for row in result.extra][0] == "noise floor"
    assert result.extra[1].variant.startswith(f"{result.variant} + draft_factor ")
    assert result.extra[1].ms_per_image > 0


def test_mixed_precision_keeps_the_residual_stream_norms_and_head_in_fp32(classifier) -> None:  # type: ignore[no-untyped-def]
    x = np.random.default_rng(4).normal(size=(3, 3, 112, 112)).astype(np.float32)
    expected = classifier.score({"visible": x})["visible"]
    fast = FastScorer.from_classifier(classifier, variant="bf16mix", modes=["visible"])
    model = fast.models["visible"]
    assert model.classifier.weight.dtype == torch.float32
    assert model.dinov2.layernorm.weight.dtype == torch.float32
    assert model.dinov2.encoder.layer[0].norm1.weight.dtype == torch.float32
    assert model.dinov2.encoder.layer[0].mlp.fc1.weight_dtype == torch.bfloat16
    assert np.abs(fast.score({"visible": x})["visible"] - expected).max() < 0.05
    with pytest.raises(ValueError, match="unknown variant"):
        FastScorer.from_classifier(classifier, variant="fp8")  # type: ignore[arg-type]


@pytest.mark.parametrize("tokens", [65, 257, 600, 1370])
def test_chunked_attention_matches_sdpa(tokens: int) -> None:
    from axis_model.fast import chunked_attention

    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, tokens, 16, generator=gen) for _ in range(3))
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.25).transpose(1, 2)
    got, weights = chunked_attention(torch.nn.Identity(), q, k, v, None, scaling=0.25)
    assert weights is None and got.shape == (2, tokens, 3, 16)
    torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="without masks"):
        chunked_attention(torch.nn.Identity(), q, k, v, torch.zeros(tokens, tokens))


def test_reduced_precision_variants_use_chunked_attention_and_fp32_keeps_sdpa(classifier) -> None:  # type: ignore[no-untyped-def]
    from axis_model.fast import CHUNKED_ATTENTION

    fp32 = FastScorer.from_classifier(classifier, variant="fp32")
    bf16 = FastScorer.from_classifier(classifier, variant="bf16mix")
    assert fp32.models["visible"].config._attn_implementation != CHUNKED_ATTENTION
    assert bf16.models["visible"].config._attn_implementation == CHUNKED_ATTENTION


def test_borderline_search_lands_images_in_the_band() -> None:
    from axis_model.bench_drops import borderline_drops

    def darkness_probability(data: bytes) -> float:  # a stand-in model: darker drop -> less 'crystal'
        mean = float(np.asarray(Image.open(io.BytesIO(data)).convert("L")).mean())
        return float(1 / (1 + np.exp(-(mean - 100.0) / 3.0)))  # p ~ 1 at contrast 0.3, ~ 0 at 1.0

    images, probs = borderline_drops(darkness_probability, 3, seed=5, size=(230, 192))
    assert len(images) == 3 and all(0.2 <= p <= 0.8 for p in probs), probs
    assert [darkness_probability(d) for d in images] == probs


@pytest.mark.skipif(not __import__("axis_model.fast").fast.packed_bf16_available(), reason="no oneDNN bf16 here")
@pytest.mark.parametrize("gelu", [False, True])
def test_packed_bf16_linear_equals_the_plain_bf16_linear(gelu: bool) -> None:
    from axis_model.fast import CastLinear

    torch.manual_seed(0)
    linear = torch.nn.Linear(64, 96)
    x = torch.randn(2, 33, 64)
    packed = CastLinear(linear, torch.float32, gelu=gelu, packed=True)
    plain = CastLinear(linear, torch.float32, gelu=gelu, packed=False)
    assert packed.packed and not plain.packed and packed.weight_dtype == plain.weight_dtype == torch.bfloat16
    got, want = packed(x), plain(x)
    assert got.shape == want.shape == (2, 33, 96) and got.dtype == torch.float32
    # the matmul is bit-identical; the fused GELU is evaluated before the bf16 rounding (within one bf16 ulp)
    torch.testing.assert_close(got, want, atol=0 if not gelu else 2e-2, rtol=0 if not gelu else 1e-2)
    exact = torch.nn.functional.gelu(torch.nn.functional.linear(x, linear.weight, linear.bias)) if gelu else None
    if exact is not None:
        assert (got - exact).abs().max() <= (want - exact).abs().max() + 1e-6


def test_bf16_variants_fuse_the_mlp_gelu_into_fc1(classifier) -> None:  # type: ignore[no-untyped-def]
    for variant in ("bf16", "bf16mix"):
        model = FastScorer.from_classifier(classifier, variant=variant, modes=["visible"]).models["visible"]  # type: ignore[arg-type]
        mlp = model.dinov2.encoder.layer[0].mlp
        assert mlp.fc1.gelu and isinstance(mlp.activation_fn, torch.nn.Identity)
