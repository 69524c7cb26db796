"""Inference benchmark: naive vs fast path (axis_model.bench), plus the whole service path end to end.

    python -m axis_inference.bench --size 224 [--n 64] [--events 64] [--base base|tiny]

The service part starts the embedded stack in a temporary directory, registers champions in MLflow, puts
real-size JPEGs in S3, runs the service in this process with the variant the model benchmark chose, sends
ImageCaptured events and measures images per second until every score is in PostgreSQL and on the
CrystalScored topic. The last line printed is the summary the checks read.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from axis_adapters.console import quiet_libraries
from axis_adapters.objectstore import MinioObjectStore
from axis_adapters.registry import ModelRegistry
from axis_contracts import CrystalScored, topics
from axis_model.bench import run_model_benchmark
from axis_model.bench_drops import synthetic_set
from axis_model.bench_report import BenchResult
from axis_model.bundle import save_bundle
from axis_model.spec import BaseSpec

from axis_inference.seeding import image_event, make_classifier, register_champions, save_mode_bundles
from axis_inference.service import InferenceService
from axis_inference.settings import InferenceOptions, InferenceSettings


@dataclass
class ServiceResult:
    """End-to-end service measurement."""

    events: int
    seconds: float
    cpu_seconds: float
    batches: int
    avg_batch: float
    scorer: str = ""  # which scorer the service used (ServiceScorer.describe)
    stages: dict[str, float] | None = None  # wall seconds of the batches' stages (axis_inference.metrics.STAGES)
    cpu_by_part: dict[str, float] | None = None  # CPU seconds of every process on the machine, by part (cpu_by_part)

    @property
    def img_s(self) -> float:
        """Images per second from the first event sent to the last score stored and published."""
        return self.events / self.seconds


def _part_of(pid: int, cmdline: str) -> str:
    if pid == os.getpid():
        return "service + bench clients"
    for needle, part in (
        ("axis_inference.scoring_process", "scoring process"),
        ("multiprocessing", "scoring process"),
        ("tansu", "broker"),
        ("postgres", "PostgreSQL"),
        ("mlflow", "MLflow"),
        ("serve_s3", "S3 server"),
        ("moto.server", "S3 server"),
    ):
        if needle in cmdline:
            return part
    return "other"


def process_cpu() -> dict[int, tuple[str, float]]:
    """pid -> (part, CPU seconds so far) of every process on the machine (Linux /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, tuple[str, float]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        pid = int(entry.name)
        out[pid] = (_part_of(pid, cmdline), (int(fields[11]) + int(fields[12])) / tick)
    return out


def cpu_by_part(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU seconds each part of the machine used between two ``process_cpu`` snapshots (processes that ended
    in between are not counted; ones that started count in full)."""
    parts: dict[str, float] = {}
    for pid, (part, cpu) in after.items():
        used = cpu - before[pid][1] if pid in before and before[pid][0] == part else cpu
        parts[part] = parts.get(part, 0.0) + max(0.0, used)
    return parts


async def _count_scores(settings: InferenceSettings, model_names: Sequence[str]) -> int:
    import psycopg

    def count() -> int:
        with psycopg.connect(settings.postgres.conninfo()) as conn:
            row = conn.execute(
                "SELECT count(*) FROM image_scores WHERE model_name = ANY(%s)", (list(model_names),)
            ).fetchone()
            return int(row[0]) if row else 0

    return await asyncio.to_thread(count)


def _bundles(model: BenchResult | None, size: int, base: str, tmp: Path) -> dict[str, Path]:
    """The weights the model benchmark measured (its one trained mode serves both), else fresh random ones."""
    trained = getattr(model, "classifier", None) if model is not None else None
    if trained is not None:
        path = tmp / "bundles" / "trained"
        save_bundle(trained, path, modes=[trained.modes[0]])
        return {"visible": path, "uv": path}
    return save_mode_bundles(make_classifier(BaseSpec.named(base), size, seed=1), tmp / "bundles")


async def _measure(settings: InferenceSettings, images: list[bytes], bundles: dict[str, Path]) -> ServiceResult:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    names = {"visible": settings.mlflow.visible_model, "uv": settings.mlflow.uv_model}
    registry = ModelRegistry(settings.mlflow.tracking_uri)
    await asyncio.to_thread(register_champions, registry, bundles, names)
    store = MinioObjectStore(settings.s3)
    plate = f"BENCH{uuid.uuid4().hex[:6]}"
    events = []
    for i, data in enumerate(images):
        mode = ("visible", "uv")[i % 2]
        inspection = f"{plate}-{i // 2}"
        uri = f"s3://{settings.s3.images_bucket}/bench/{plate}/{i}.jpg"
        store.put_bytes(uri, data, "image/jpeg")
        well = f"{'ABCDEFGH'[(i // 2) % 8]}{(i // 2) // 8 % 12 + 1}"
        events.append(image_event(plate=plate, well=well, inspection=inspection, mode=mode, uri=uri))
    warm = [
        image_event(plate=plate, well="H12", inspection=f"{plate}-warm", mode=m, uri=events[0].image_uri)
        for m in ("visible", "uv")
    ]
    svc = InferenceService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, enable_idempotence=False)
    consumer = AIOKafkaConsumer(
        topics.CRYSTAL_SCORED, bootstrap_servers=settings.kafka.bootstrap_servers, auto_offset_reset="latest"
    )
    await producer.start()
    await consumer.start()
    try:
        while not svc.consuming:
            if task.done():
                task.result()
            await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # let the consumer group settle
        for e in warm:
            await producer.send_and_wait(topics.IMAGE_CAPTURED, e.to_bytes(), key=e.key().encode())
        while await _count_scores(settings, list(names.values())) < len(warm):  # noqa: ASYNC110 - polling PG
            await asyncio.sleep(0.2)
        seen: set[uuid.UUID] = set()
        wanted = {e.event_id for e in events}
        batches0 = svc.metrics.batches
        stages0 = dict(svc.metrics.stage_seconds)
        procs0 = process_cpu()
        t0, c0 = time.perf_counter(), time.process_time()
        for e in events:
            await producer.send(topics.IMAGE_CAPTURED, e.to_bytes(), key=e.key().encode())
        await producer.flush()
        while not wanted <= seen or await _count_scores(settings, list(names.values())) < len(events) + len(warm):
            got = await consumer.getmany(timeout_ms=20)  # a short wait: the end is seen within 20 ms
            for recs in got.values():
                for rec in recs:
                    scored = CrystalScored.model_validate_json(rec.value)
                    seen.update(s.image_event_id for s in scored.scores.values())
            if task.done():
                task.result()
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        parts = cpu_by_part(procs0, process_cpu())
        batches = svc.metrics.batches - batches0
        describe = getattr(svc.holder.scorer, "describe", None)
        used = describe() if callable(describe) else type(svc.holder.scorer).__name__
        stages = {k: v - stages0.get(k, 0.0) for k, v in svc.metrics.stage_seconds.items()}
        return ServiceResult(len(events), elapsed, cpu, batches, len(events) / max(1, batches), used, stages, parts)
    finally:
        await producer.stop()
        await consumer.stop()
        stop.set()
        await asyncio.wait_for(task, timeout=120)


def run_service_benchmark(
    images: list[bytes],
    *,
    size: int,
    base: str,
    variant: str,
    batch_size: int = 8,
    model: BenchResult | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> ServiceResult:
    """Start the embedded stack in a temp dir, measure the service end to end, stop the stack.

    ``extra_env``: more ``AXIS_INFERENCE__*`` settings for the service (the GPU bench's device and variant).
    """
    from axis_stack import down, up

    data_dir = Path(tempfile.mkdtemp(prefix="axis-bench-", dir="/tmp"))
    tmp = Path(tempfile.mkdtemp(prefix="axis-bench-work-"))
    saved = dict(os.environ)
    try:
        print("[bench] starting the embedded stack (broker, PostgreSQL, S3, MLflow)", flush=True)
        info = up(data_dir, quiet=True)
        run = uuid.uuid4().hex[:6]
        os.environ.update(info.env)  # MLflow's client reads the S3 endpoint and keys from the environment
        os.environ.update(
            {
                "AXIS_MLFLOW__VISIBLE_MODEL": f"axis-visible-bench-{run}",
                "AXIS_MLFLOW__UV_MODEL": f"axis-uv-bench-{run}",
                "AXIS_INFERENCE__VARIANT": variant,
                "AXIS_INFERENCE__BATCH_SIZE": str(batch_size),
                "AXIS_INFERENCE__HTTP_PORT": "0",
                "AXIS_INFERENCE__CACHE_DIR": str(tmp / "cache"),
                **(extra_env or {}),
            }
        )
        settings = InferenceSettings(_env_file=None)  # type: ignore[call-arg]
        print(f"[bench] service end to end: {len(images)} events, variant {variant}, batches of {batch_size}")
        logging.disable(logging.INFO)  # FastStream's per-message access log would bury the figures
        return asyncio.run(_measure(settings, images, _bundles(model, size, base, tmp)))
    finally:
        logging.disable(logging.NOTSET)
        os.environ.clear()
        os.environ.update(saved)
        down(data_dir, quiet=True)
        shutil.rmtree(data_dir, ignore_errors=True)
        shutil.rmtree(tmp, ignore_errors=True)


def _fast_again(model: BenchResult, images: list[bytes]) -> float | None:
    """The fast path re-timed right after the service run, on the service's images (this machine's speed drifts
    over minutes, so the ratio against a figure taken before the service started can mislead): images/s."""
    from axis_model.fast import FastScorer
    from axis_model.preprocess import preprocess_batch

    trained = getattr(model, "classifier", None)
    if trained is None:
        return None
    scorer = FastScorer.from_classifier(trained, variant=model.variant, batch_size=8)  # type: ignore[arg-type]
    mode = trained.modes[0]
    sample = images[: min(len(images), 32)]
    scorer.predict_logits(preprocess_batch(sample[:8], trained.preprocess), mode)  # warm-up
    t0 = time.perf_counter()
    for start in range(0, len(sample), 8):  # as the model benchmark: decode + model, 8 per forward
        scorer.predict_logits(preprocess_batch(sample[start : start + 8], trained.preprocess), mode)
    return len(sample) / (time.perf_counter() - t0)


def summary_line(model: BenchResult, service: ServiceResult) -> str:
    """The last line of the benchmark output."""
    return (
        f"inference speedup: {model.speedup:.2f}x (fast {model.fast_img_s:.1f} img/s vs naive "
        f"{model.naive_img_s:.1f} img/s, service end-to-end {service.img_s:.1f} img/s, label agreement "
        f"{100 * model.label_agreement:.1f}%, max |dp| {model.max_abs_dp:.3f}, size {model.size} px, "
        f"model {model.base})"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point."""
    parser = argparse.ArgumentParser(description="naive vs fast inference, plus the service end to end")
    parser.add_argument("--size", type=int, default=518, choices=(224, 518))
    parser.add_argument("--n", type=int, default=None, help="benchmark images (default 64 at 224 px, 32 at 518)")
    parser.add_argument("--events", type=int, default=None, help="events through the service (default: --n)")
    parser.add_argument("--base", default="base", help="'base', 'tiny' or a local DINOv2 directory")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=InferenceOptions().batch_size,
        help="the service's AXIS_INFERENCE__BATCH_SIZE (default: the service's own default)",
    )
    args = parser.parse_args(argv)
    quiet_libraries()  # no MLflow download bars or run URLs between the tables
    n = args.n or (64 if args.size == 224 else 32)
    events = args.events or n
    model = run_model_benchmark(args.size, n, args.base)
    images, _ = synthetic_set(events, seed=7)
    service = run_service_benchmark(
        images, size=args.size, base=args.base, variant=model.variant, batch_size=args.batch_size, model=model
    )
    again = _fast_again(model, images)
    ratio = service.img_s / model.fast_img_s
    fast_cpu = next((v.cpu_ms_per_image for v in model.variants if v.variant == model.variant), 0.0)
    service_cpu = 1000 * service.cpu_seconds / service.events
    print(f"{'path':<28}{'img/s':>8}{'CPU ms/img':>12}")
    print(f"{'naive (reference style)':<28}{model.naive_img_s:>8.2f}{model.naive_cpu_ms_per_image:>12.1f}")
    print(f"{'fast path [' + model.variant + ']':<28}{model.fast_img_s:>8.2f}{fast_cpu:>12.1f}")
    print(
        f"{'service end to end':<28}{service.img_s:>8.2f}{service_cpu:>12.1f}   ({100 * ratio:.0f}% of fast; "
        f"{service.batches} batches, avg {service.avg_batch:.1f} images; CPU includes broker/DB clients)"
    )
    if again:
        print(
            f"{'fast path again, after it':<28}{again:>8.2f}{'':>12}   (service {100 * service.img_s / again:.0f}% of "
            "it: the same images, the same process, minutes later)"
        )
    if service.stages:
        per = {k: 1000 * v / service.events for k, v in service.stages.items()}
        other = 1000 * service.seconds / service.events - sum(per.values())
        parts = ", ".join(f"{k} {v:.1f}" for k, v in per.items())
        print(f"service wall ms per image by stage: {parts}, between batches {other:.1f}")
    if service.cpu_by_part:
        cores = os.cpu_count() or 1
        total = sum(service.cpu_by_part.values())
        ranked = sorted(service.cpu_by_part.items(), key=lambda kv: -kv[1])
        parts = ", ".join(f"{k} {1000 * v / service.events:.1f}" for k, v in ranked)
        print(
            f"machine CPU ms per image during the service run: {parts}; total {1000 * total / service.events:.1f} "
            f"of {1000 * cores * service.seconds / service.events:.1f} available on {cores} cores "
            f"(the fast path: {fast_cpu:.1f})"
        )
    print(summary_line(model, service), flush=True)


if __name__ == "__main__":
    main()
