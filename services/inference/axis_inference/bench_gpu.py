"""GPU benchmark with the service end to end: axis_model.bench_gpu, then ImageCaptured in, CrystalScored out.

    python -m axis_inference.bench_gpu [axis_model.bench_gpu options] [--events N] [--service-batch B] [--no-service]

What `make bench-gpu` runs (never part of `make test`). The service part is axis_inference.bench's run: the
embedded stack in a temporary directory, champions in MLflow, real-size JPEGs in S3, the inference service
in this process on the same device (``AXIS_INFERENCE__DEVICE``) with the fastest faithful variant and batch
size the model part found, one fetch/decode thread per core; measured from the first event sent until every
score is in PostgreSQL and on the CrystalScored topic. On a machine without CUDA everything runs on the CPU
(the service then keeps the CPU fast path, as it does in production there). The last line is the summary.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence

from axis_adapters.console import quiet_libraries
from axis_model.bench_drops import synthetic_set
from axis_model.bench_gpu import GpuBenchResult, add_arguments, run_from_args, summary_line

from axis_inference.bench import ServiceResult, run_service_benchmark


def run_service_part(
    result: GpuBenchResult, *, base: str, events: int, batch: int | None, image_size: tuple[int, int]
) -> ServiceResult:
    """The service end to end on the model part's device, variant and batch size."""
    assert result.best is not None
    cuda = result.device_type == "cuda"
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    env = {
        "AXIS_INFERENCE__DEVICE": "cuda" if cuda else "cpu",
        "AXIS_INFERENCE__GPU_VARIANT": result.best.variant,
        "AXIS_INFERENCE__GPU_BATCH": str(result.best.batch),
        "AXIS_INFERENCE__IO_THREADS": str(min(64, max(4, threads))),
    }
    images, _ = synthetic_set(events, seed=7, size=image_size)
    batch = batch or max(16, result.best.batch)
    return run_service_benchmark(
        images, size=result.size, base=base, variant="bf16mix", batch_size=batch, extra_env=env
    )


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point (`make bench-gpu`)."""
    parser = argparse.ArgumentParser(description="GPU scoring variants x batch sizes, then the service end to end")
    add_arguments(parser)
    parser.add_argument("--events", type=int, default=None, help="events through the service (512 cuda, 16 cpu)")
    parser.add_argument("--service-batch", type=int, default=None, help="records per service batch")
    parser.add_argument("--no-service", action="store_true", help="the model part only (no embedded stack)")
    args = parser.parse_args(argv)
    if not args.no_service:
        quiet_libraries()  # no MLflow download bars or run URLs between the tables
    result = run_from_args(args)
    pairs_s = None
    if not args.no_service:
        w, h = (int(v) for v in args.image_size.lower().split("x"))
        events = args.events or (512 if result.device_type == "cuda" else 16)
        svc = run_service_part(result, base=args.base, events=events, batch=args.service_batch, image_size=(w, h))
        pairs_s = svc.img_s / 2
        print(
            f"service end to end: {svc.img_s:.1f} img/s = {pairs_s:.1f} pairs/s ({svc.events} events in "
            f"{svc.seconds:.1f}s, {svc.batches} batches of {svc.avg_batch:.1f} on average; scorer {svc.scorer})"
        )
    print(summary_line(result, pairs_s), flush=True)


if __name__ == "__main__":
    main()
