"""GPU scoring benchmark: axis_model.gpu variants x batch sizes on one device, fidelity against fp32 there.

    python -m axis_model.bench_gpu [--device auto|cpu|cuda] [--size 518] [--batch-sizes 1,8,32,64]
                                   [--variants fp32,bf16-merged,...] [--base base|tiny|DIR]

The model is the DINOv2-base architecture (random, seeded) or a local directory's weights, with two random
non-zero LoRA adapters and heads (``randomise_adapter``): nothing is trained. Timing is per batch of gray
images already on the device, both modes alternating (a merged variant runs a mixed batch as one forward
per mode), synchronised after each batch: images/s, p50/p99 latency, peak memory, and achieved TFLOP/s =
the model's FLOPs (axis_model.flops) x images/s against the device's dense bf16 peak. The first batch of
each shape (CUDA graph capture, torch.compile) is timed apart as "first s". Fidelity is against the
transformers classifier in fp32 on the same device (TF32 off). Then the fastest faithful variant scores JPEG
bytes end to end (decoded on CPU threads into pinned buffers ahead of the device). Without CUDA the same
code runs on the CPU with small defaults, and the output says "device cpu". `make bench-gpu` runs
axis_inference.bench_gpu, which adds the service end to end and the summary line.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch

from axis_model.adapters import randomise_adapter
from axis_model.bench_drops import REAL_SIZE, synthetic_set
from axis_model.bench_gpu_report import GpuBenchResult, Row, summary_line
from axis_model.bench_report import Fidelity
from axis_model.classifier import CrystalClassifier, build_classifier
from axis_model.fast import FastScorer
from axis_model.flops import peak_bf16_tflops, vit_flops
from axis_model.gpu import GpuScorer, _cpu_count, gray_input, resolve_device
from axis_model.preprocess import PreprocessConfig, normalise
from axis_model.spec import MODES, BaseSpec, LoraSpec

CPU_FAST = "cpu-bf16mix"  # the CPU service path (axis_model.fast), a reference row on a CPU only
DEFAULTS: dict[str, dict[str, Any]] = {
    "cuda": {
        "size": 518,
        "batch_sizes": "1,8,32,64",
        "variants": "fp32,bf16-merged,bf16-lora,fp16-merged,bf16-merged+graph,bf16-lora+graph,"
        "bf16-merged+compile+graph",
        "iters": 20,
        "max_seconds": 4.0,
        "fidelity_images": 64,
        "stream_images": 1024,
    },
    "cpu": {
        "size": 224,
        "batch_sizes": "1,4",
        "variants": f"fp32,bf16-merged,bf16-lora,{CPU_FAST}",
        "iters": 3,
        "max_seconds": 3.0,
        "fidelity_images": 8,
        "stream_images": 16,
    },
}


def bench_classifier(base: str, size: int, seed: int = 0) -> CrystalClassifier:
    """Random DINOv2 (or a directory's weights) with two random non-zero adapters + heads: nothing trained."""
    clf = build_classifier(BaseSpec.named(base), LoraSpec(), modes=MODES, preprocess=PreprocessConfig(size=size))
    for i, mode in enumerate(MODES):
        randomise_adapter(clf, mode, seed=seed + 1 + i)
    return clf


@contextlib.contextmanager
def strict_fp32() -> Iterator[None]:
    """No TF32 in matmuls or cuDNN convolutions (a faithful fp32 reference on Ampere and later)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@torch.inference_mode()
def reference_logits(
    clf: CrystalClassifier, gray: np.ndarray, modes: Sequence[str], device: torch.device
) -> np.ndarray:
    """The transformers + peft classifier in fp32 on ``device`` on the normalised images (N x 2 logits)."""
    out = np.empty((len(gray), 2), dtype=np.float32)
    clf.model.to(device)
    try:
        with strict_fp32():
            for mode in dict.fromkeys(modes):
                idx = [i for i, m in enumerate(modes) if m == mode]
                for s in range(0, len(idx), 16):
                    part = idx[s : s + 16]
                    x = torch.from_numpy(np.stack([normalise(gray[i], clf.preprocess) for i in part])).to(device)
                    out[part] = clf.logits(x, mode).float().cpu().numpy()
    finally:
        clf.model.to("cpu")
    return out


class FastOnCpu:
    """The CPU fast path (FastScorer, merged bf16mix) behind GpuScorer's device-batch call, for the CPU table."""

    def __init__(self, clf: CrystalClassifier, batch_size: int) -> None:
        self.fast = FastScorer.from_classifier(clf, variant="bf16mix")
        self.batch_size = batch_size
        self.preprocess = clf.preprocess

    def logits_on_device(self, x: torch.Tensor, modes: Sequence[str]) -> torch.Tensor:
        """Normalise the gray images (as the CPU service does) and score them one mode at a time."""
        out = torch.empty((len(modes), 2))
        for mode in dict.fromkeys(modes):
            idx = [i for i, m in enumerate(modes) if m == mode]
            pixels = np.stack([normalise(x[i].numpy(), self.preprocess) for i in idx])
            out[idx] = torch.from_numpy(self.fast.predict_logits(pixels, mode))
        return out

    def clear_graphs(self) -> None:
        """Nothing to clear on the CPU path."""


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_batches(
    scorer: Any, x: torch.Tensor, modes: Sequence[str], *, iters: int, max_seconds: float, device: torch.device
) -> tuple[float, list[float]]:
    """(seconds of the first batch, per-batch seconds of the timed ones: at least 2, at most ``iters``)."""
    _sync(device)
    t0 = time.perf_counter()
    scorer.logits_on_device(x, modes)
    _sync(device)
    first = time.perf_counter() - t0
    scorer.logits_on_device(x, modes)  # a second untimed batch: allocator and autotuning settle
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max(2, iters) and (len(times) < 2 or time.perf_counter() - start < max_seconds):
        _sync(device)
        t = time.perf_counter()
        scorer.logits_on_device(x, modes)
        _sync(device)
        times.append(time.perf_counter() - t)
    return first, times


def _row(name: str, batch: int, first: float, times: list[float], mem: float | None, result: GpuBenchResult) -> Row:
    img_s = batch * len(times) / sum(times)
    tflops = result.flops.total * img_s / 1e12
    pct = 100 * tflops / result.peak_tflops if result.peak_tflops else None
    ms = 1000 * np.asarray(times)
    return Row(name, batch, img_s, float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), first, mem, tflops, pct)


def _build(clf: CrystalClassifier, name: str, device: torch.device, batch: int) -> Any:
    if name == CPU_FAST:
        if device.type != "cpu":
            raise ValueError(f"{CPU_FAST} is the CPU path; it has no {device.type} rows")
        return FastOnCpu(clf, batch)
    return GpuScorer.from_classifier(clf, variant=name, device=str(device), batch_size=batch)


def _decode_rate(scorer: GpuScorer, jpegs: Sequence[bytes], workers: int) -> float:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        t0 = time.perf_counter()
        list(pool.map(scorer.prepare_gray, jpegs))
        return len(jpegs) / (time.perf_counter() - t0)


def run_gpu_benchmark(
    *,
    device: str = "auto",
    size: int | None = None,
    base: str = "base",
    batch_sizes: Sequence[int] | None = None,
    variants: Sequence[str] | None = None,
    iters: int | None = None,
    max_seconds: float | None = None,
    fidelity_images: int | None = None,
    stream_images: int | None = None,
    image_size: tuple[int, int] = REAL_SIZE,
    peak_tflops: float | None = None,
    workers: int | None = None,
    seed: int = 0,
    progress: Callable[[str], None] = print,
) -> GpuBenchResult:
    """Measure every variant at every batch size, fidelity per variant, then the best one from JPEG bytes."""
    dev = resolve_device(device)
    d = DEFAULTS["cuda" if dev.type == "cuda" else "cpu"]
    size = size or d["size"]
    batch_sizes = list(batch_sizes or [int(b) for b in d["batch_sizes"].split(",")])
    variants = list(variants or d["variants"].split(","))
    iters, max_seconds = iters or d["iters"], max_seconds or d["max_seconds"]
    n_fid = fidelity_images or d["fidelity_images"]
    n_stream = d["stream_images"] if stream_images is None else stream_images
    workers = workers or _cpu_count()
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    t_start = time.perf_counter()
    clf = bench_classifier(base, size, seed)
    result = GpuBenchResult(
        device=f"{dev} {name}" if dev.type == "cuda" else name,
        device_type=dev.type,
        size=size,
        base=base,
        flops=vit_flops(getattr(clf.model.base_model, "model", clf.model).config, size),
        peak_tflops=peak_tflops or (peak_bf16_tflops(name) if dev.type == "cuda" else None),
        classifier=clf,
    )
    n_distinct = max(n_fid, min(16, max(batch_sizes)))
    progress(f"[bench-gpu] {result.device}: rendering {n_distinct} JPEGs at {image_size[0]}x{image_size[1]}")
    jpegs, _ = synthetic_set(n_distinct, seed + 11, image_size)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        gray = np.stack(list(pool.map(lambda data: gray_input(data, clf.preprocess), jpegs)))
    fid_modes = [MODES[i % 2] for i in range(n_fid)]
    reference = reference_logits(clf, gray[:n_fid], fid_modes, dev)
    margin = reference[:, 0].astype(np.float64) - reference[:, 1]
    p_ref = 1 / (1 + np.exp(-margin))
    result.reference_note = (
        f"({n_fid} images, modes alternating; fp32 log-odds {margin.min():.1f} to {margin.max():.1f}, "
        f"{np.mean((p_ref > 0.1) & (p_ref < 0.9)):.0%} of p in 0.1-0.9)"
    )
    gray_dev = torch.from_numpy(gray).to(dev)
    for variant in variants:
        scorer: Any = None
        try:
            b0 = time.perf_counter()
            scorer = _build(clf, variant, dev, max(batch_sizes))
            progress(f"[bench-gpu] {variant}: built in {time.perf_counter() - b0:.1f}s")
            for batch in batch_sizes:
                scorer.batch_size = batch
                idx = torch.arange(batch, device=dev) % len(gray)
                x, modes = gray_dev.index_select(0, idx), [MODES[i % 2] for i in range(batch)]
                if dev.type == "cuda":
                    torch.cuda.reset_peak_memory_stats(dev)
                first, times = time_batches(scorer, x, modes, iters=iters, max_seconds=max_seconds, device=dev)
                mem = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else None
                result.rows.append(_row(variant, batch, first, times, mem, result))
                progress(f"[bench-gpu] {variant} batch {batch}: {result.rows[-1].img_s:.1f} img/s")
                if batch != max(batch_sizes):
                    scorer.clear_graphs()
            scorer.batch_size = max(batch_sizes)
            logits = scorer.logits_on_device(gray_dev[:n_fid], fid_modes).float().cpu().numpy()
            result.fidelity[variant] = Fidelity.of(logits, reference)
        except Exception as exc:  # one variant failing (no triton for compile, an old GPU) must not lose the rest
            result.failed[variant] = f"{type(exc).__name__}: {exc}"
            progress(f"[bench-gpu] {variant} failed: {result.failed[variant]}")
        finally:
            del scorer
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    gpu_path = [r for r in result.rows if r.variant != CPU_FAST]  # the CPU path's row is a reference only
    candidates = [r for r in gpu_path if result.fidelity.get(r.variant, _UNFAITHFUL).faithful]
    if not candidates:
        measured = [v for v in result.fidelity if v != CPU_FAST]
        if not measured:
            raise RuntimeError(f"no GPU-path variant could be measured: {result.failed}")
        best_name = min(measured, key=lambda v: result.fidelity[v].max_abs_dp)
        progress(f"[bench-gpu] WARNING: no variant met the fidelity bar; reporting the most faithful ({best_name})")
        candidates = [r for r in gpu_path if r.variant == best_name]
    result.best = max(candidates, key=lambda r: r.img_s)
    if n_stream:
        _measure_stream(result, clf, jpegs, n_stream, workers, dev, progress)
    progress(result.table())
    progress(f"[bench-gpu] model part done in {time.perf_counter() - t_start:.0f}s")
    return result


_UNFAITHFUL = Fidelity(0.0, 1.0, float("inf"))


def _measure_stream(
    result: GpuBenchResult,
    clf: CrystalClassifier,
    jpegs: Sequence[bytes],
    n: int,
    workers: int,
    dev: torch.device,
    progress: Callable[[str], None],
) -> None:
    """The best variant scoring JPEG bytes: decode threads + pinned ring buffers + the device."""
    assert result.best is not None
    scorer = GpuScorer.from_classifier(clf, variant=result.best.variant, device=str(dev), batch_size=result.best.batch)
    items = [(MODES[i % 2], jpegs[i % len(jpegs)]) for i in range(n)]
    scorer.stream_logits(items[: 2 * result.best.batch], workers=workers)  # warm-up: graphs, compile, threads
    result.decode_img_s = _decode_rate(scorer, [data for _, data in items], workers)
    t0 = time.perf_counter()
    scorer.stream_logits(items, workers=workers)
    result.stream_img_s = n / (time.perf_counter() - t0)
    result.stream_note = f"[{result.best.variant}, batch {result.best.batch}, {workers} decode threads, {n} images]"
    progress(f"[bench-gpu] streamed {n} JPEGs: {result.stream_img_s:.1f} img/s")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options (shared with axis_inference.bench_gpu)."""
    parser.add_argument("--device", default="auto", help="auto (cuda when torch sees a GPU), cuda or cpu")
    parser.add_argument("--size", type=int, default=None, help="input px (default 518 on cuda, 224 on cpu)")
    parser.add_argument("--base", default="base", help="'base', 'tiny' or a local DINOv2 directory")
    parser.add_argument("--batch-sizes", default=None, help="comma-separated (default 1,8,32,64 on cuda; 1,4 on cpu)")
    parser.add_argument("--variants", default=None, help="comma-separated variants (see axis_model.gpu)")
    parser.add_argument("--iters", type=int, default=None, help="timed batches per row (at most)")
    parser.add_argument("--max-seconds", type=float, default=None, help="time per row before stopping early")
    parser.add_argument("--fidelity-images", type=int, default=None)
    parser.add_argument("--stream-images", type=int, default=None, help="JPEGs scored from bytes (0: skip)")
    parser.add_argument("--image-size", default=f"{REAL_SIZE[0]}x{REAL_SIZE[1]}", help="JPEG size, WxH")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the device's bf16 peak, if not known")
    parser.add_argument("--workers", type=int, default=None, help="decode threads (default: every core)")


def run_from_args(args: argparse.Namespace) -> GpuBenchResult:
    """run_gpu_benchmark from parsed add_arguments options."""
    w, h = (int(v) for v in args.image_size.lower().split("x"))
    return run_gpu_benchmark(
        device=args.device,
        size=args.size,
        base=args.base,
        batch_sizes=[int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else None,
        variants=args.variants.split(",") if args.variants else None,
        iters=args.iters,
        max_seconds=args.max_seconds,
        fidelity_images=args.fidelity_images,
        stream_images=args.stream_images,
        image_size=(w, h),
        peak_tflops=args.peak_tflops,
        workers=args.workers,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: the model part only (the service end to end is axis_inference.bench_gpu)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_arguments(parser)
    result = run_from_args(parser.parse_args(argv))
    print(summary_line(result, None), flush=True)


if __name__ == "__main__":
    main()
