"""Fast CPU inference: one merged (LoRA folded in) model per mode, in one of several precision variants.

- fp32: merged only. bf16: every weight and activation bf16 (residual stream included).
- bf16mix: bf16 matmuls (q/k/v emit bf16 so SDPA runs in bf16) but an fp32 residual stream, fp32 layer
  norms, patch embedding and head; more faithful than bf16 at about the same speed.
- int8mix: as bf16mix, with the MLP (fc1/fc2, ~2/3 of the linear FLOPs) dynamic int8.
- int8: every encoder linear dynamic int8 (per-channel weights); the rest fp32.

Attention: fp32 keeps transformers' SDPA. The reduced-precision variants use ``chunked_attention``: at
518 px (1,370 tokens) SDPA's CPU flash kernel runs at ~150 GFLOP/s in fp32 and bf16 alike (39 ms a layer
per image, ~40 % of a bf16 forward); plain bf16 matmuls over blocks of 256 queries, one image at a time so
the score block stays in cache, take 24 ms (measured on the 2-core Zen4 CPU). Short sequences (224 px, 257
tokens) stay on SDPA, which is faster there. The bf16 matmuls themselves run near the CPU's bf16 peak, so
faithful variants top out near 2.5x over the naive path; only int8 linears go further, at a fidelity cost
the benchmark shows. Batching barely changes throughput on 2 cores, so batches run in chunks of
``batch_size`` (at 518 px, 1-2 images a chunk is fastest).
"""

from __future__ import annotations

import copy
import functools
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import torch
from peft import PeftModel
from transformers import AttentionInterface
from transformers.activations import GELUActivation

from axis_model.classifier import CrystalClassifier, score_grouped
from axis_model.preprocess import PreprocessConfig, preprocess_batch
from axis_model.spec import CRYSTAL_INDEX, LABELS

Variant = Literal["fp32", "bf16", "bf16mix", "int8mix", "int8"]
VARIANTS: tuple[Variant, ...] = ("fp32", "bf16", "bf16mix", "int8mix", "int8")
ATTENTION_IN = ("q_proj", "k_proj", "v_proj")
CHUNKED_ATTENTION = "axis_chunked"
QUERY_BLOCK = 256


def chunked_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: object,
) -> tuple[torch.Tensor, None]:
    """Inference attention (B x H x N x D in, B x N x H x D out): on CPU, softmax(QK^T)V per image over about
    QUERY_BLOCK queries at a time, in the inputs' dtype (softmax accumulates in fp32); elsewhere SDPA.

    Measured on 2 Zen 4 cores in bf16 (12 heads, dim 64): 257 tokens x 8 images 8.2 ms a layer vs SDPA's
    14.2; 1370 tokens 24 ms a layer per image vs 39. Each image's scores stay in cache; one bmm over the
    whole batch is slower than SDPA.
    """
    if attention_mask is not None or dropout:
        raise ValueError("chunked_attention is for inference without masks or dropout")
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    batch, heads, tokens, dim = query.shape
    if query.device.type != "cpu":  # the blocks are a CPU measure; GPUs have flash attention
        out = torch.nn.functional.scaled_dot_product_attention(query, key, value, scale=scale)
        return out.transpose(1, 2).contiguous(), None
    blocks = max(1, round(tokens / QUERY_BLOCK))
    step = -(-tokens // blocks)  # equal blocks: 257 tokens -> 1 block, 1370 -> 5 of 274 (not 5 x 256 + 90)
    out = torch.empty((batch, tokens, heads, dim), dtype=query.dtype, device=query.device)
    for b in range(batch):
        # contiguous once per image, so the block matmuls below read strided views without copies
        q = (query[b] * scale).contiguous()
        kt = key[b].transpose(-1, -2).contiguous()
        v = value[b].contiguous()
        for start in range(0, tokens, step):
            scores = torch.bmm(q[:, start : start + step], kt)
            out[b, start : start + step] = torch.bmm(torch.softmax(scores, dim=-1), v).transpose(0, 1)
    return out, None


AttentionInterface.register(CHUNKED_ATTENTION, chunked_attention)


def default_chunk(size: int) -> int:
    """Images per forward pass: 8 at 224 px (27 % faster per image than 1), 2 at 518 (more only costs cache)."""
    return 8 if size <= 336 else 2


@functools.cache
def packed_bf16_available() -> bool:
    """oneDNN can run bf16 linears from pre-packed weights here (CPU builds with mkldnn and bf16 support)."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


class CastLinear(torch.nn.Module):
    """A Linear with bf16 weights: casts its input to bf16 and its output to ``out_dtype`` (fp32 residual stream).

    On a CPU with oneDNN the weight is pre-packed once into oneDNN's blocked layout (what torch.compile's
    freezing does), and ``gelu=True`` fuses the exact (erf) GELU that follows into the matmul: bit-identical
    matmul results, fc1 + GELU 22 % faster at 518 px (measured: 43.1 -> 33.6 ms for 2 images), q/k/v ~6 %.
    Packed modules are for inference on the CPU only (not saved, not moved between devices).
    """

    def __init__(
        self, linear: torch.nn.Linear, out_dtype: torch.dtype, *, gelu: bool = False, packed: bool | None = None
    ) -> None:
        super().__init__()
        weight = linear.weight.detach().to(torch.bfloat16)
        bias = linear.bias
        self.bias = None if bias is None else torch.nn.Parameter(bias.detach().to(torch.bfloat16), requires_grad=False)
        self.out_dtype = out_dtype
        self.gelu = gelu
        self.packed = packed_bf16_available() and weight.device.type == "cpu" if packed is None else packed
        if self.packed:
            self._packed_weight = torch.ops.mkldnn._reorder_linear_weight(weight, None)
            self.weight = None
        else:
            self.weight = torch.nn.Parameter(weight, requires_grad=False)

    @property
    def weight_dtype(self) -> torch.dtype:
        """dtype of the matmul weights (bf16)."""
        return self._packed_weight.dtype if self.packed else self.weight.dtype  # type: ignore[union-attr]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """bf16 matmul (fp32 accumulation in oneDNN), then GELU if fused, output in ``out_dtype``."""
        x = x.to(torch.bfloat16)
        if self.packed:
            attr, algorithm = ("gelu", "none") if self.gelu else ("none", "")
            y = torch.ops.mkldnn._linear_pointwise(x, self._packed_weight, self.bias, attr, [], algorithm)
        else:
            assert self.weight is not None
            y = torch.nn.functional.linear(x, self.weight, self.bias)
            if self.gelu:
                y = torch.nn.functional.gelu(y)
        return y.to(self.out_dtype)


def _dynamic_int8(linear: torch.nn.Linear) -> torch.nn.Module:
    """torch.ao dynamic int8 Linear (per-channel weights, activations quantised per batch at run time)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao dynamic quantisation is deprecated but still the fastest here
        from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
        from torch.ao.quantization.qconfig import per_channel_dynamic_qconfig

        linear.qconfig = per_channel_dynamic_qconfig  # type: ignore[assignment]
        return DynamicLinear.from_float(linear)  # type: ignore[no-any-return]


def mixed_precision(
    model: torch.nn.Module, *, int8_mlp: bool, residual: torch.dtype = torch.float32
) -> torch.nn.Module:
    """bf16 matmuls with a ``residual``-dtype residual stream (fp32: layer norms, patch embedding and head stay
    fp32 too); int8 MLP if asked.

    q/k/v emit bf16 so attention runs in bf16; o_proj and fc2 return ``residual`` into the residual stream;
    fc1 carries the MLP's GELU (fused on oneDNN) when the model's activation is the exact GELU.
    """
    backbone = getattr(model, "dinov2", None)
    if backbone is None:
        raise TypeError("expected a Dinov2ForImageClassification-like model with a .dinov2 backbone")
    for layer in backbone.encoder.layer:
        attn = layer.attention
        for name in ATTENTION_IN:
            setattr(attn, name, CastLinear(getattr(attn, name), torch.bfloat16))
        attn.o_proj = CastLinear(attn.o_proj, residual)
        mlp = layer.mlp
        if int8_mlp:
            mlp.fc1, mlp.fc2 = _dynamic_int8(mlp.fc1), _dynamic_int8(mlp.fc2)
            continue
        exact_gelu = type(getattr(mlp, "activation_fn", None)) is GELUActivation  # erf GELU ("gelu"), not tanh
        mlp.fc1 = CastLinear(mlp.fc1, torch.bfloat16, gelu=exact_gelu)
        if exact_gelu:
            mlp.activation_fn = torch.nn.Identity()
        mlp.fc2 = CastLinear(mlp.fc2, residual)
    return model


def merged_model(peft_model: PeftModel, mode: str) -> torch.nn.Module:
    """A plain classifier with ``mode``'s LoRA folded into the weights and its head in place (base untouched)."""
    clone = copy.deepcopy(peft_model)
    clone.set_adapter(mode)
    for other in [a for a in clone.peft_config if a != mode]:
        clone.delete_adapter(other)
    merged = clone.merge_and_unload()
    return merged.eval()


def quantize_int8(model: torch.nn.Module) -> torch.nn.Module:
    """Dynamic int8 (per-channel weights) of every encoder nn.Linear; patch embedding, final norm and head stay fp32."""
    backbone = getattr(model, "dinov2", None)
    if backbone is None:
        raise TypeError("expected a Dinov2ForImageClassification-like model with a .dinov2 backbone")
    for layer in backbone.encoder.layer:
        for parent in (layer.attention, layer.mlp):
            for name, child in list(parent.named_children()):
                if isinstance(child, torch.nn.Linear):
                    setattr(parent, name, _dynamic_int8(child))
    return model


def optimise(model: torch.nn.Module, variant: Variant) -> torch.nn.Module:
    """Apply a precision variant to a merged model (and, past fp32, the chunked attention)."""
    if variant != "fp32" and variant in VARIANTS:
        config: Any = model.config
        config._attn_implementation = CHUNKED_ATTENTION
    if variant == "bf16":
        return mixed_precision(model.to(torch.bfloat16), int8_mlp=False, residual=torch.bfloat16)
    if variant == "int8":
        return quantize_int8(model)
    if variant in ("bf16mix", "int8mix"):
        return mixed_precision(model, int8_mlp=variant == "int8mix")
    if variant != "fp32":
        raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
    return model


class FastScorer:
    """Scores images with one merged, optimised model per mode; what the inference service calls."""

    def __init__(
        self,
        models: Mapping[str, torch.nn.Module],
        *,
        preprocess: PreprocessConfig,
        thresholds: Mapping[str, float],
        variant: Variant,
        batch_size: int | None = None,
    ) -> None:
        self.models = dict(models)
        self.preprocess = preprocess
        self.thresholds = dict(thresholds)
        self.variant = variant
        self.batch_size = batch_size or default_chunk(preprocess.size)
        self._dtype = torch.bfloat16 if variant == "bf16" else torch.float32

    @classmethod
    def from_classifier(
        cls,
        classifier: CrystalClassifier,
        *,
        variant: Variant = "bf16",
        modes: Sequence[str] | None = None,
        batch_size: int | None = None,
    ) -> FastScorer:
        """Merge each mode's adapter into its own copy of the base and optimise it (the classifier is unchanged)."""
        models = {m: optimise(merged_model(classifier.model, m), variant) for m in modes or classifier.modes}
        return cls(
            models,
            preprocess=classifier.preprocess,
            thresholds=classifier.thresholds,
            variant=variant,
            batch_size=batch_size,
        )

    @property
    def modes(self) -> list[str]:
        """Modes this scorer can score."""
        return list(self.models)

    @torch.inference_mode()
    def predict_logits(self, pixels: np.ndarray | torch.Tensor, mode: str) -> np.ndarray:
        """Raw 2-class logits (index 0 = crystal), N x 2 float32, for an N x 3 x H x W batch of one mode."""
        if mode not in self.models:
            raise KeyError(f"no model for mode {mode!r}; loaded: {self.modes}")
        model = self.models[mode]
        x = torch.as_tensor(pixels)
        out = [
            model(pixel_values=x[start : start + self.batch_size].to(self._dtype)).logits.float()
            for start in range(0, len(x), self.batch_size)
        ]
        return torch.cat(out).numpy() if out else np.empty((0, len(LABELS)), dtype=np.float32)

    def predict_proba(self, pixels: np.ndarray | torch.Tensor, mode: str) -> np.ndarray:
        """P(crystal) for an N x 3 x H x W batch of one mode."""
        logits = torch.from_numpy(self.predict_logits(pixels, mode))
        return torch.softmax(logits, dim=-1)[:, CRYSTAL_INDEX].numpy().astype(np.float64)

    def score(self, images_by_mode: Mapping[str, np.ndarray | torch.Tensor]) -> dict[str, np.ndarray]:
        """Score a mixed batch given as {mode: N x 3 x H x W}."""
        return {mode: self.predict_proba(pixels, mode) for mode, pixels in images_by_mode.items() if len(pixels)}

    def score_items(self, items: Sequence[tuple[str, np.ndarray]]) -> np.ndarray:
        """Score (mode, 3 x H x W) items in any order; results in input order."""
        return score_grouped(self.predict_proba, items)

    def score_files(self, items: Sequence[tuple[str, bytes]]) -> np.ndarray:
        """Decode + score (mode, image bytes) items; raises ImageRejected for a bad image (decode first)."""
        pixels = preprocess_batch([data for _, data in items], self.preprocess)
        return self.score_items([(mode, x) for (mode, _), x in zip(items, pixels, strict=True)])

    def label(self, probability: float, mode: str) -> str:
        """'crystal' if P(crystal) >= the mode's threshold, else 'other'."""
        return LABELS[0] if probability >= self.thresholds[mode] else LABELS[1]
