"""A dense DINOv2 classifier forward for batched scoring on a GPU (and, for tests and CI, on the CPU).

Built from a classifier's weights (peft LoRA adapters + per-mode heads); nothing is trained. Per encoder
layer: one fused q/k/v matmul, attention through torch's SDPA (flash or memory-efficient kernels on a
GPU), layer scale folded into o_proj and fc2, and an fp32 residual stream with fp32 layer norms around
bf16/fp16 matmuls (the CPU path's ``bf16mix`` policy; the patch embedding and head stay fp32 too).

Adapters either merged (one weight set per mode, batches of one mode) or batched: the base weights once,
each linear adding a per-sample low-rank product (x A_m^T) B_m^T, so one batch holds both modes.
Gray inputs (uint8, N x H x W): the three identical channels that ImageNet normalisation makes differ
only by an affine map, so they fold into one-channel patch weights, and only the gray bytes travel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from peft import PeftModel

Precision = Literal["fp32", "bf16", "fp16"]
DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class LinearParts:
    """One linear layer in fp32: base weight (out x in), bias, and per-mode LoRA (A: M x r x in, B: M x out x r)."""

    weight: torch.Tensor
    bias: torch.Tensor
    a: torch.Tensor | None = None
    b: torch.Tensor | None = None  # the LoRA scaling (alpha / r) is folded in

    def merged(self, m: int | None) -> torch.Tensor:
        """The weight with mode ``m``'s adapter folded in (the base weight for None)."""
        if m is None or self.a is None or self.b is None:
            return self.weight
        return self.weight + self.b[m] @ self.a[m]

    def scaled(self, scale: torch.Tensor) -> LinearParts:
        """Output rows multiplied by ``scale`` (DINOv2's layer scale folded into the layer)."""
        b = None if self.b is None else self.b * scale[None, :, None]
        return LinearParts(self.weight * scale[:, None], self.bias * scale, self.a, b)


def _linear_parts(module: Any, modes: Sequence[str]) -> LinearParts:
    """Base weight + stacked LoRA of a peft lora.Linear (or a plain Linear) for ``modes`` (zeros where absent)."""
    base = getattr(module, "base_layer", module)
    weight = base.weight.detach().float().cpu()
    bias = base.bias.detach().float().cpu() if base.bias is not None else torch.zeros(weight.shape[0])
    lora_a = getattr(module, "lora_A", {})
    present = [m for m in modes if m in lora_a]
    if not present:
        return LinearParts(weight, bias)
    if any(getattr(module, "use_dora", {}).get(m) for m in present):
        raise NotImplementedError("DoRA adapters are not supported by the GPU path; use the CPU fast path")
    rank = max(lora_a[m].weight.shape[0] for m in present)
    a = torch.zeros(len(modes), rank, weight.shape[1])
    b = torch.zeros(len(modes), weight.shape[0], rank)
    for i, m in enumerate(modes):
        if m in present:
            r = lora_a[m].weight.shape[0]
            a[i, :r] = lora_a[m].weight.detach().float().cpu()
            b[i, :, :r] = module.lora_B[m].weight.detach().float().cpu() * float(module.scaling[m])
    return LinearParts(weight, bias, a, b)


def _fuse_qkv(q: LinearParts, k: LinearParts, v: LinearParts) -> LinearParts:
    """q/k/v as one linear; the LoRA A matrices stacked, the B matrices block-diagonal."""
    weight, bias = torch.cat([q.weight, k.weight, v.weight]), torch.cat([q.bias, k.bias, v.bias])
    if q.a is None or k.a is None or v.a is None or q.b is None or k.b is None or v.b is None:
        if any(p.a is not None for p in (q, k, v)):
            raise NotImplementedError("LoRA on only some of q/k/v is not supported by the GPU path")
        return LinearParts(weight, bias)
    modes, rank, out = q.a.shape[0], q.a.shape[1], q.weight.shape[0]
    b = torch.zeros(modes, 3 * out, 3 * rank)
    for i, part in enumerate((q, k, v)):
        assert part.b is not None
        b[:, i * out : (i + 1) * out, i * rank : (i + 1) * rank] = part.b
    return LinearParts(weight, bias, torch.cat([q.a, k.a, v.a], dim=1), b)


@dataclass
class VitParts:
    """Everything the dense forward needs, in fp32 on the CPU, for ``modes`` (in this order)."""

    modes: list[str]
    heads: int
    eps: float
    patch_weight: torch.Tensor  # hidden x channels x p x p
    patch_bias: torch.Tensor
    cls_pos: torch.Tensor  # CLS token + its position embedding (hidden)
    patch_pos: torch.Tensor  # position embeddings of the patches at the input size (patches x hidden)
    layers: list[dict[str, Any]]
    final_norm: tuple[torch.Tensor, torch.Tensor]
    head_weight: torch.Tensor  # modes x labels x 2 hidden
    head_bias: torch.Tensor  # modes x labels


def extract_parts(model: torch.nn.Module, modes: Sequence[str], image_size: int) -> VitParts:
    """Read a (peft-wrapped) Dinov2ForImageClassification's weights for ``modes`` at ``image_size`` px."""
    hf: Any = model.base_model.model if isinstance(model, PeftModel) else model
    config = hf.config
    if getattr(config, "use_swiglu_ffn", False) or config.hidden_act != "gelu":
        raise NotImplementedError("the GPU path implements DINOv2 with the exact-GELU MLP only (ViT-S/B/L)")
    emb = hf.dinov2.embeddings
    patches = (image_size // config.patch_size) ** 2
    with torch.no_grad():
        probe = torch.zeros(1, patches + 1, config.hidden_size, device=emb.position_embeddings.device)
        pos = emb.interpolate_pos_encoding(probe, image_size, image_size)[0].detach().float().cpu()
    layers = []
    for layer in hf.dinov2.encoder.layer:
        att, mlp = layer.attention, layer.mlp
        qkv = _fuse_qkv(*(_linear_parts(getattr(att, n), modes) for n in ("q_proj", "k_proj", "v_proj")))
        layers.append(
            {
                "norm1": (layer.norm1.weight.detach().float().cpu(), layer.norm1.bias.detach().float().cpu()),
                "qkv": qkv,
                "o": _linear_parts(att.o_proj, modes).scaled(layer.layer_scale1.lambda1.detach().float().cpu()),
                "norm2": (layer.norm2.weight.detach().float().cpu(), layer.norm2.bias.detach().float().cpu()),
                "fc1": _linear_parts(mlp.fc1, modes),
                "fc2": _linear_parts(mlp.fc2, modes).scaled(layer.layer_scale2.lambda1.detach().float().cpu()),
            }
        )
    head = hf.classifier
    saved = getattr(head, "modules_to_save", None)
    heads = [saved[m] if saved is not None and m in saved else getattr(head, "original_module", head) for m in modes]
    proj = emb.patch_embeddings.projection
    return VitParts(
        modes=list(modes),
        heads=config.num_attention_heads,
        eps=config.layer_norm_eps,
        patch_weight=proj.weight.detach().float().cpu(),
        patch_bias=proj.bias.detach().float().cpu(),
        cls_pos=emb.cls_token.detach().float().cpu()[0, 0] + pos[0],
        patch_pos=pos[1:],
        layers=layers,
        final_norm=(hf.dinov2.layernorm.weight.detach().float().cpu(), hf.dinov2.layernorm.bias.detach().float().cpu()),
        head_weight=torch.stack([h.weight.detach().float().cpu() for h in heads]),
        head_bias=torch.stack([h.bias.detach().float().cpu() for h in heads]),
    )


class DenseLinear(torch.nn.Module):
    """A linear in the compute dtype; with ``lora``, plus a per-sample adapter chosen by a mode index tensor."""

    weight: torch.Tensor
    bias: torch.Tensor
    a_t: torch.Tensor
    b_t: torch.Tensor

    def __init__(self, parts: LinearParts, dtype: torch.dtype, *, merge: int | None, lora: bool) -> None:
        super().__init__()
        self.register_buffer("weight", parts.merged(merge).to(dtype).contiguous())
        self.register_buffer("bias", parts.bias.to(dtype))
        self.lora = lora and parts.a is not None
        if self.lora:
            assert parts.a is not None and parts.b is not None
            self.register_buffer("a_t", parts.a.transpose(1, 2).to(dtype).contiguous())  # M x in x r
            self.register_buffer("b_t", parts.b.transpose(1, 2).to(dtype).contiguous())  # M x r x out

    def forward(self, x: torch.Tensor, mode: torch.Tensor | None) -> torch.Tensor:
        """x (B x T x in) -> B x T x out; ``mode`` (B,) picks each sample's adapter."""
        y = F.linear(x, self.weight, self.bias)
        if not self.lora or mode is None:
            return y
        low = torch.bmm(x, self.a_t.index_select(0, mode))
        return torch.baddbmm(y, low, self.b_t.index_select(0, mode))


class DenseBlock(torch.nn.Module):
    """One pre-norm DINOv2 encoder layer (layer scale folded into o_proj and fc2)."""

    norm1_w: torch.Tensor
    norm1_b: torch.Tensor
    norm2_w: torch.Tensor
    norm2_b: torch.Tensor

    def __init__(
        self, layer: dict[str, Any], dtype: torch.dtype, heads: int, eps: float, *, merge: int | None, lora: bool
    ) -> None:
        super().__init__()
        self.dtype, self.heads, self.eps = dtype, heads, eps
        for name in ("norm1", "norm2"):
            self.register_buffer(f"{name}_w", layer[name][0])
            self.register_buffer(f"{name}_b", layer[name][1])
        self.qkv = DenseLinear(layer["qkv"], dtype, merge=merge, lora=lora)
        self.o = DenseLinear(layer["o"], dtype, merge=merge, lora=lora)
        self.fc1 = DenseLinear(layer["fc1"], dtype, merge=merge, lora=lora)
        self.fc2 = DenseLinear(layer["fc2"], dtype, merge=merge, lora=lora)

    def forward(self, h: torch.Tensor, mode: torch.Tensor | None) -> torch.Tensor:
        """fp32 residual stream B x T x D in and out."""
        batch, tokens, dim = h.shape
        x = F.layer_norm(h, (dim,), self.norm1_w, self.norm1_b, self.eps).to(self.dtype)
        qkv = self.qkv(x, mode).view(batch, tokens, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        h = h + self.o(att.transpose(1, 2).reshape(batch, tokens, dim), mode)
        x = F.layer_norm(h, (dim,), self.norm2_w, self.norm2_b, self.eps).to(self.dtype)
        return h + self.fc2(F.gelu(self.fc1(x, mode)), mode)


def _patches(x: torch.Tensor, p: int) -> torch.Tensor:
    """B x C x H x W -> B x (H/p * W/p) x (C p p), row-major patches (a stride-p conv's order)."""
    batch, channels, height, width = x.shape
    nh, nw = height // p, width // p
    x = x[:, :, : nh * p, : nw * p].reshape(batch, channels, nh, p, nw, p)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(batch, nh * nw, channels * p * p)


class DenseVit(torch.nn.Module):
    """DINOv2 classifier forward: pixels (B x 3 x H x W normalised, or B x H x W uint8 gray) -> B x 2 fp32 logits.

    ``merge`` = a mode's index: that adapter folded into the weights, its head only, no mode input.
    ``merge`` = None with ``lora``: every adapter and head, chosen per sample by ``mode`` (B,) int64.
    """

    patch_w: torch.Tensor
    patch_w_gray: torch.Tensor
    patch_pos: torch.Tensor
    patch_pos_gray: torch.Tensor
    cls_pos: torch.Tensor
    norm_w: torch.Tensor
    norm_b: torch.Tensor
    head_w: torch.Tensor
    head_b: torch.Tensor

    def __init__(
        self,
        parts: VitParts,
        precision: Precision,
        *,
        merge: int | None,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__()
        dtype = DTYPES[precision]
        self.lora = merge is None
        self.patch = parts.patch_weight.shape[-1]
        self.eps = parts.eps
        hidden = parts.patch_weight.shape[0]
        inv_std = 1.0 / torch.tensor(list(std), dtype=torch.float32)
        shift = torch.tensor(list(mean), dtype=torch.float32) * inv_std
        # gray g in [0, 1] becomes channel c = (g - mean_c) / std_c: fold that map into the patch weights
        gray = (parts.patch_weight * inv_std[None, :, None, None]).sum(dim=1).reshape(hidden, -1)
        gray_bias = parts.patch_bias - (parts.patch_weight.sum(dim=(2, 3)) * shift[None, :]).sum(dim=1)
        self.register_buffer("patch_w", parts.patch_weight.reshape(hidden, -1).contiguous())
        self.register_buffer("patch_w_gray", gray.contiguous())
        self.register_buffer("patch_pos", parts.patch_pos + parts.patch_bias)
        self.register_buffer("patch_pos_gray", parts.patch_pos + gray_bias)
        self.register_buffer("cls_pos", parts.cls_pos.reshape(1, 1, hidden))
        self.blocks = torch.nn.ModuleList(
            DenseBlock(layer, dtype, parts.heads, parts.eps, merge=merge, lora=self.lora) for layer in parts.layers
        )
        self.register_buffer("norm_w", parts.final_norm[0])
        self.register_buffer("norm_b", parts.final_norm[1])
        keep = slice(None) if merge is None else slice(merge, merge + 1)
        self.register_buffer("head_w", parts.head_weight[keep].contiguous())
        self.register_buffer("head_b", parts.head_bias[keep].contiguous())

    def embed(self, pixels: torch.Tensor) -> torch.Tensor:
        """Patch + position embeddings with the CLS token first, fp32 B x (1 + patches) x D."""
        if pixels.dim() == 3:  # uint8 gray: the same x * (1/255) as axis_model.preprocess.normalise
            tokens = F.linear(_patches(pixels[:, None].float() * (1.0 / 255.0), self.patch), self.patch_w_gray)
            tokens = tokens + self.patch_pos_gray
        else:
            tokens = F.linear(_patches(pixels.float(), self.patch), self.patch_w) + self.patch_pos
        return torch.cat([self.cls_pos.expand(tokens.shape[0], 1, -1), tokens], dim=1)

    def forward(self, pixels: torch.Tensor, mode: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (index 0 = crystal), fp32."""
        if self.lora and mode is None:
            raise ValueError("a batched-adapter DenseVit needs each sample's mode index")
        h = self.embed(pixels)
        for block in self.blocks:
            h = block(h, mode if self.lora else None)
        h = F.layer_norm(h, (h.shape[-1],), self.norm_w, self.norm_b, self.eps)
        feats = torch.cat([h[:, 0], h[:, 1:].mean(dim=1)], dim=1)
        if not self.lora or mode is None:  # mode is None only for a merged net here
            return F.linear(feats, self.head_w[0], self.head_b[0])
        weight = self.head_w.index_select(0, mode)  # B x labels x 2D
        return torch.bmm(weight, feats[:, :, None])[:, :, 0] + self.head_b.index_select(0, mode)
