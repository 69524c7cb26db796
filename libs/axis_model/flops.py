"""FLOPs of one DINOv2 classifier forward, counted from its config, and the bf16 peaks of known GPUs.

A FLOP here is one multiply or one add: a matmul of (m x k) by (k x n) costs 2 m k n. Only matmuls are
counted (patch embedding, q/k/v/o projections, attention scores and values, MLP, head); layer norms,
softmax, GELU and residual adds are a fraction of a percent at 518 px. DINOv2-base at 518 px (1,370
tokens) comes to about 303 GFLOP (152 GMAC) an image. Achieved TFLOP/s in the benchmarks are this model
count times images per second, whatever the kernels really execute (the gray-input patch embedding does a
third of the patch work; an unmerged LoRA adds ``lora``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Dense (no sparsity) bf16 tensor-core peaks from NVIDIA's data sheets, TFLOP/s. The first name found in
# torch.cuda.get_device_name() wins, so the more specific names come first.
BF16_PEAK_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.0),
    ("H100 PCIe", 756.0),
    ("H100", 989.0),  # SXM
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
)


@dataclass(frozen=True)
class FlopCount:
    """Matmul FLOPs of one image through the classifier, by part."""

    tokens: int
    patch_embed: int
    qkv: int
    attention_scores: int
    attention_values: int
    out_proj: int
    mlp: int
    head: int
    lora: int = 0  # extra work of unmerged LoRA adapters (x A^T B^T per linear); not part of ``total``

    @property
    def total(self) -> int:
        """The model's FLOPs per image (LoRA merged, i.e. without ``lora``)."""
        return (
            self.patch_embed
            + self.qkv
            + self.attention_scores
            + self.attention_values
            + self.out_proj
            + self.mlp
            + self.head
        )


def _get(config: Any, name: str, default: Any = None) -> Any:
    return config.get(name, default) if isinstance(config, dict) else getattr(config, name, default)


def mlp_hidden(config: Any) -> int:
    """Hidden width of the MLP as transformers' DINOv2 builds it (hidden_size x mlp_ratio; SwiGLU: 2/3, to 8)."""
    hidden = int(_get(config, "hidden_size") * _get(config, "mlp_ratio", 4))
    if _get(config, "use_swiglu_ffn", False):
        hidden = (int(hidden * 2 / 3) + 7) // 8 * 8
    return hidden


def vit_flops(config: Any, image_size: int, *, lora_rank: int = 0, num_labels: int = 2) -> FlopCount:
    """FLOPs per image of a Dinov2ForImageClassification (config object or dict) at ``image_size`` px.

    The head is Linear(2 x hidden -> num_labels) on CLS || mean of patch tokens; ``lora_rank`` > 0 also
    counts an unmerged LoRA of that rank on every encoder linear (q, k, v, o, fc1, fc2).
    """
    dim = int(_get(config, "hidden_size"))
    layers = int(_get(config, "num_hidden_layers"))
    patch = int(_get(config, "patch_size"))
    channels = int(_get(config, "num_channels", 3))
    hidden = mlp_hidden(config)
    swiglu = bool(_get(config, "use_swiglu_ffn", False))
    patches = (image_size // patch) ** 2
    tokens = patches + 1
    mlp_matrices = 3 if swiglu else 2  # gate + up + down, or fc1 + fc2
    lora = 0
    if lora_rank:
        shapes = [(dim, dim)] * 4 + [(dim, hidden)] * (mlp_matrices - 1) + [(hidden, dim)]
        lora = layers * sum(2 * tokens * lora_rank * (i + o) for i, o in shapes)
    return FlopCount(
        tokens=tokens,
        patch_embed=2 * patches * channels * patch * patch * dim,
        qkv=layers * 2 * tokens * dim * 3 * dim,
        attention_scores=layers * 2 * tokens * tokens * dim,
        attention_values=layers * 2 * tokens * tokens * dim,
        out_proj=layers * 2 * tokens * dim * dim,
        mlp=layers * mlp_matrices * 2 * tokens * dim * hidden,
        head=2 * 2 * dim * num_labels,
        lora=lora,
    )


def peak_bf16_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of a known GPU by its torch device name, else None (CPUs and unlisted GPUs)."""
    for name, peak in BF16_PEAK_TFLOPS:
        if name.lower() in device_name.lower():
            return peak
    return None
