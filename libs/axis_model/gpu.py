"""Batched GPU scoring: the inference service's scorer where torch sees a CUDA device (``device="auto"``).

A variant is ``<precision>-<adapters>[+graph][+compile]``:

- precision ``fp32`` | ``bf16`` | ``fp16``: the matmuls' and attention's dtype (axis_model.gpu_vit: fp32
  residual stream, layer norms, patch embedding and head in every variant);
- adapters ``merged`` (each mode's LoRA folded into its own weight set; a mixed batch runs as one forward
  per mode) | ``lora`` (base weights once, a per-sample low-rank product; both modes in one forward);
- ``+graph``: each batch shape is captured once as a CUDA graph and replayed (no per-kernel launch cost;
  batches are padded to a power of two so few shapes exist); ``+compile``: torch.compile (inductor fuses
  the layer norms, casts and residual adds). Both cost time at the first batch of each shape, which the
  benchmark reports apart from throughput. On a CPU both are ignored.

Inputs are uint8 gray images at the model size (decoding and resizing stay on CPU threads; only the gray
bytes cross to the device, from pinned memory) or normalised N x 3 x H x W floats. ``stream_logits`` decodes
on a thread pool into a ring of pinned buffers while the GPU scores earlier batches.
"""

from __future__ import annotations

import os
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import torch

from axis_model.classifier import CrystalClassifier
from axis_model.gpu_vit import DenseVit, Precision, extract_parts
from axis_model.preprocess import PreprocessConfig, decode_gray, resize_gray
from axis_model.spec import CRYSTAL_INDEX, LABELS

Device = Literal["auto", "cpu", "cuda"]
VARIANT_PATTERN = r"^(fp32|bf16|fp16)(-(merged|lora))?(\+(graph|compile))*$"
DEFAULT_GPU_VARIANT = "bf16-merged"


@dataclass(frozen=True)
class GpuVariant:
    """A parsed variant name (see the module docstring)."""

    precision: Precision
    adapters: Literal["merged", "lora"] = "merged"
    graph: bool = False
    compile: bool = False

    @classmethod
    def parse(cls, name: str) -> GpuVariant:
        """'bf16-lora+graph' -> GpuVariant('bf16', 'lora', graph=True); 'fp32' means 'fp32-merged'."""
        match = re.match(VARIANT_PATTERN, name)
        if not match:
            raise ValueError(
                f"unknown GPU variant {name!r}: use <fp32|bf16|fp16>-<merged|lora>[+graph][+compile], e.g. bf16-merged"
            )
        mods = name.split("+")[1:]
        adapters = cast(Literal["merged", "lora"], match.group(3) or "merged")
        return cls(cast(Precision, match.group(1)), adapters, "graph" in mods, "compile" in mods)

    def __str__(self) -> str:
        mods = "+graph" * self.graph + "+compile" * self.compile
        return f"{self.precision}-{self.adapters}{mods}"


def resolve_device(device: str) -> torch.device:
    """'auto' -> cuda when torch sees a GPU, else cpu; 'cuda' without one is an error that says so."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(
            f"device {device!r} asked for, but torch {torch.__version__} sees no CUDA device; "
            "use device 'auto' or 'cpu'"
        )
    return torch.device(device)


def default_batch(size: int) -> int:
    """Images per forward on a GPU: 64 up to 518 px (enough tokens to fill an H100-class GPU), fewer above."""
    return 64 if size <= 518 else 16


def gray_input(data: bytes, config: PreprocessConfig) -> np.ndarray:
    """Image bytes -> config.size x config.size uint8 gray (the GPU path's input; raises ImageRejected)."""
    return resize_gray(decode_gray(data, config), config.size)


def _bucket(n: int, cap: int) -> int:
    """Smallest power of two >= n, at most ``cap`` (graph and compile shapes)."""
    return min(cap, 1 << max(0, n - 1).bit_length())


@dataclass
class _Graph:
    graph: Any
    x: torch.Tensor
    mode: torch.Tensor | None
    out: torch.Tensor


class GpuScorer:
    """Scores images on one device with DenseVit nets: one per mode (merged) or one for all modes (lora)."""

    def __init__(
        self,
        nets: Mapping[str | None, DenseVit],
        *,
        modes: Sequence[str],
        preprocess: PreprocessConfig,
        thresholds: Mapping[str, float],
        variant: GpuVariant,
        device: torch.device,
        batch_size: int | None = None,
    ) -> None:
        self.nets = dict(nets)
        self.mode_index = {m: i for i, m in enumerate(modes)}
        self.preprocess = preprocess
        self.thresholds = dict(thresholds)
        self.variant = variant
        self.device = device
        self.batch_size = batch_size or default_batch(preprocess.size)
        self.cuda = device.type == "cuda"
        self._graphs: dict[tuple[str | None, int, int], _Graph] = {}
        self._fns: dict[str | None, Callable[..., torch.Tensor]] = {key: net for key, net in self.nets.items()}
        if variant.compile:
            import torch._dynamo.config as dynamo_config

            # one compiled entry per (net, batch shape); the default limit of 8 would fall back to eager
            dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 64)
            self._fns = {key: torch.compile(net, dynamic=False) for key, net in self.nets.items()}
        self._copy_stream = torch.cuda.Stream(device) if self.cuda else None

    @classmethod
    def from_classifier(
        cls,
        classifier: CrystalClassifier,
        *,
        variant: str | GpuVariant = DEFAULT_GPU_VARIANT,
        device: str = "auto",
        batch_size: int | None = None,
        modes: Sequence[str] | None = None,
    ) -> GpuScorer:
        """Read the classifier's base, adapters and heads (it is left unchanged) and build the nets on the device."""
        v = variant if isinstance(variant, GpuVariant) else GpuVariant.parse(variant)
        dev = resolve_device(device)
        modes = list(modes or classifier.modes)
        pre = classifier.preprocess
        parts = extract_parts(classifier.model, modes, pre.size)
        nets: dict[str | None, DenseVit] = {}
        if v.adapters == "lora":
            nets[None] = DenseVit(parts, v.precision, merge=None, mean=pre.mean, std=pre.std)
        else:
            for i, m in enumerate(modes):
                nets[m] = DenseVit(parts, v.precision, merge=i, mean=pre.mean, std=pre.std)
        nets = {k: net.to(dev).eval() for k, net in nets.items()}
        return cls(
            nets,
            modes=modes,
            preprocess=pre,
            thresholds={m: classifier.thresholds[m] for m in modes},
            variant=v,
            device=dev,
            batch_size=batch_size,
        )

    @property
    def modes(self) -> list[str]:
        """Modes this scorer can score."""
        return list(self.mode_index)

    def describe(self) -> str:
        """'GpuScorer bf16-merged on cuda:0 (NVIDIA H100 ...), batches of 64'."""
        name = torch.cuda.get_device_name(self.device) if self.cuda else "cpu"
        return f"GpuScorer {self.variant} on {self.device} ({name}), batches of {self.batch_size}"

    def prepare_gray(self, data: bytes, config: PreprocessConfig | None = None) -> np.ndarray:
        """Image bytes -> size x size uint8 gray, this scorer's input (raises ImageRejected); thread-safe."""
        return gray_input(data, config or self.preprocess)

    def to_device(self, pixels: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Host pixels -> the device, through pinned memory and a non-blocking copy on a GPU."""
        x = torch.as_tensor(pixels)
        if not self.cuda or x.device.type == "cuda":
            return x.to(self.device)
        return x.pin_memory().to(self.device, non_blocking=True)

    # -- one forward -------------------------------------------------------------------------------

    def _call(self, key: str | None, x: torch.Tensor, mode: torch.Tensor | None) -> torch.Tensor:
        """Logits of one chunk (one net), padded to a power of two for graphs and compiled nets."""
        n = x.shape[0]
        if not (self.cuda and (self.variant.graph or self.variant.compile)):
            return self.nets[key](x, mode)
        size = _bucket(n, self.batch_size)
        if size != n:
            x = torch.cat([x, x[:1].expand(size - n, *x.shape[1:])])
            mode = None if mode is None else torch.cat([mode, mode[:1].expand(size - n)])
        if not self.variant.graph:
            return self._fns[key](x, mode)[:n]
        graph = self._graphs.get((key, size, x.dim())) or self._capture(key, x, mode)
        graph.x.copy_(x)
        if mode is not None and graph.mode is not None:
            graph.mode.copy_(mode)
        graph.graph.replay()
        return graph.out[:n].clone()

    def _capture(self, key: str | None, x: torch.Tensor, mode: torch.Tensor | None) -> _Graph:
        """Warm the net up on a side stream (compiling it if asked), then capture one forward as a CUDA graph."""
        fn = self._fns[key]
        static_x, static_mode = x.clone(), None if mode is None else mode.clone()
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(3):
                fn(static_x, static_mode)
        torch.cuda.current_stream(self.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # thread_local: the service's other threads (a model swap loading the next scorer) may use CUDA meanwhile
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            out = fn(static_x, static_mode)
        captured = _Graph(graph, static_x, static_mode, out)
        self._graphs[(key, x.shape[0], x.dim())] = captured
        return captured

    def clear_graphs(self) -> None:
        """Drop the captured graphs (and their memory pools)."""
        self._graphs.clear()
        if self.cuda:
            torch.cuda.empty_cache()

    def _plan(self, modes: Sequence[str]) -> list[list[int]]:
        """Chunks of item indices, at most ``batch_size`` each; one mode per chunk unless the adapters are batched."""
        for m in set(modes):
            if m not in self.mode_index:
                raise KeyError(f"no model for mode {m!r}; loaded: {self.modes}")
        if self.variant.adapters == "lora":
            order = list(range(len(modes)))
            return [order[s : s + self.batch_size] for s in range(0, len(order), self.batch_size)]
        plan = []
        for m in self.modes:
            idx = [i for i, mode in enumerate(modes) if mode == m]
            plan += [idx[s : s + self.batch_size] for s in range(0, len(idx), self.batch_size)]
        return plan

    def _index(self, values: Sequence[int]) -> torch.Tensor:
        """An int64 index on the device without a host-device sync (pinned, non-blocking copy on a GPU)."""
        index = torch.tensor(list(values), dtype=torch.int64)
        return self.to_device(index) if self.cuda else index

    def _chunk_logits(self, x: torch.Tensor, modes: Sequence[str]) -> torch.Tensor:
        """Device logits of one planned chunk (x already on the device)."""
        if self.variant.adapters == "lora":
            return self._call(None, x, self._index([self.mode_index[m] for m in modes]))
        return self._call(modes[0], x, None)

    @torch.inference_mode()
    def logits_on_device(self, x: torch.Tensor, modes: Sequence[str]) -> torch.Tensor:
        """N x 2 fp32 logits on the device for device pixels ``x`` whose items have ``modes``."""
        if len(modes) != x.shape[0]:
            raise ValueError(f"{x.shape[0]} images but {len(modes)} modes")
        out = torch.empty((len(modes), len(LABELS)), dtype=torch.float32, device=self.device)
        for idx in self._plan(modes):
            rows = self._index(idx)
            contiguous = idx == list(range(idx[0], idx[0] + len(idx)))
            chunk = x[idx[0] : idx[0] + len(idx)] if contiguous else x.index_select(0, rows)
            out.index_copy_(0, rows, self._chunk_logits(chunk, [modes[i] for i in idx]).float())
        return out

    # -- the scorer interface (as FastScorer's) ----------------------------------------------------

    def predict_logits(self, pixels: np.ndarray | torch.Tensor, modes: Sequence[str] | str) -> np.ndarray:
        """N x 2 float32 logits for N gray (N x H x W uint8) or normalised (N x 3 x H x W) images."""
        n = len(pixels)
        mode_list = [modes] * n if isinstance(modes, str) else list(modes)
        if not n:
            return np.empty((0, len(LABELS)), dtype=np.float32)
        return self.logits_on_device(self.to_device(pixels), mode_list).cpu().numpy()

    def predict_proba(self, pixels: np.ndarray | torch.Tensor, mode: str) -> np.ndarray:
        """P(crystal) for a batch of one mode."""
        return _proba(self.predict_logits(pixels, mode))

    def score(self, images_by_mode: Mapping[str, np.ndarray | torch.Tensor]) -> dict[str, np.ndarray]:
        """Score {mode: images}."""
        return {mode: self.predict_proba(pixels, mode) for mode, pixels in images_by_mode.items() if len(pixels)}

    def score_items(self, items: Sequence[tuple[str, np.ndarray]]) -> np.ndarray:
        """Score (mode, image) items in any order, in as few forwards as the adapters allow; input order."""
        if not items:
            return np.empty(0, dtype=np.float64)
        return _proba(self.predict_logits(np.stack([x for _, x in items]), [m for m, _ in items]))

    def score_files(self, items: Sequence[tuple[str, bytes]], *, workers: int | None = None) -> np.ndarray:
        """Decode + score (mode, image bytes) items, decoding overlapped with scoring; raises ImageRejected."""
        return _proba(self.stream_logits(items, workers=workers))

    def label(self, probability: float, mode: str) -> str:
        """'crystal' if P(crystal) >= the mode's threshold, else 'other'."""
        return LABELS[0] if probability >= self.thresholds[mode] else LABELS[1]

    # -- decoding overlapped with the device ----------------------------------------------------------

    @torch.inference_mode()
    def stream_logits(
        self, items: Sequence[tuple[str, bytes]], *, workers: int | None = None, depth: int | None = None
    ) -> np.ndarray:
        """Logits of (mode, bytes) items: ``workers`` threads decode into ``depth`` pinned batch buffers ahead
        of the device (default: every core, and enough buffers to keep two batches' decoding in flight per
        worker round); the first bad image raises ImageRejected."""
        modes = [m for m, _ in items]
        plan = self._plan(modes)
        workers = workers or _cpu_count()
        depth = depth or max(3, -(-2 * workers // self.batch_size) + 1)
        size = self.preprocess.size
        slots = [
            torch.empty((self.batch_size, size, size), dtype=torch.uint8, pin_memory=self.cuda) for _ in range(depth)
        ]
        copied: list[Any] = [None] * depth
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="axis-gpu-decode")

        def fill(slot: int, j: int, data: bytes) -> None:
            slots[slot][j].numpy()[...] = self.prepare_gray(data)

        def submit(k: int) -> list[Future[None]]:
            slot = k % depth
            if copied[slot] is not None:
                copied[slot].synchronize()  # the buffer's previous batch has reached the device
            return [pool.submit(fill, slot, j, items[i][1]) for j, i in enumerate(plan[k])]

        pending: deque[list[Future[None]]] = deque(submit(k) for k in range(min(depth, len(plan))))
        outs: list[torch.Tensor] = []
        try:
            for k, idx in enumerate(plan):
                for future in pending.popleft():
                    future.result()
                slot = k % depth
                host = slots[slot][: len(idx)]
                if self._copy_stream is not None:
                    with torch.cuda.stream(self._copy_stream):
                        x = host.to(self.device, non_blocking=True)
                        copied[slot] = torch.cuda.Event()
                        copied[slot].record(self._copy_stream)
                    torch.cuda.current_stream(self.device).wait_event(copied[slot])
                    x.record_stream(torch.cuda.current_stream(self.device))
                else:
                    x = host.clone()
                outs.append(self._chunk_logits(x, [modes[i] for i in idx]).float())
                if k + depth < len(plan):
                    pending.append(submit(k + depth))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        result = np.empty((len(items), len(LABELS)), dtype=np.float32)
        if outs:
            result[[i for idx in plan for i in idx]] = torch.cat(outs).cpu().numpy()
        return result


def _proba(logits: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.from_numpy(logits), dim=-1)[:, CRYSTAL_INDEX].numpy().astype(np.float64)


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
