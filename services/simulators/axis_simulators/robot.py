"""Imaging-robot simulator: plates from axis_synth's planner -> rendered images in S3 -> ImageCaptured events.

``python -m axis_simulators robot --domain B --plates 2 --seed 1 --rate 20`` images two facility-B plates,
uploads every image to ``s3://axis-images/<plate>/<well>/<drop>/<inspection>-<mode>.jpg``, writes the
ground truth to ``s3://axis-images/<run>/truth.json`` (read by the LIMS and curator simulators) and emits
one ImageCaptured per image at the configured rate.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from axis_adapters.kafka import Publisher, publish_event
from axis_adapters.objectstore import ObjectStore, make_uri
from axis_contracts import ImageCaptured
from axis_synth import DOMAINS, Domain, PlannedImage, plan_plates, render, to_jpeg_bytes, to_png_bytes
from pydantic import BaseModel, ConfigDict, Field

PRODUCER = "robot-simulator"
TRUTH_NAME = "truth.json"
ImageFormat = Literal["jpg", "png"]


class RobotConfig(BaseModel):
    """What the robot images: which facility domain, how many plates/wells/drops/inspections, how fast."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: str = Field(default="B", description="axis_synth domain name (A, B)")
    plates: int = Field(default=1, ge=1, le=1000)
    wells: int | None = Field(default=None, ge=1, le=1536, description="first N wells per plate; None: all 96")
    drops_per_well: int = Field(default=1, ge=1, le=16)
    inspections: int = Field(default=3, ge=1, le=60)
    days: float = Field(default=14.0, gt=0)
    seed: int = Field(default=0, ge=0)
    rate: float = Field(default=0.0, ge=0, description="images per second; 0: as fast as rendering allows")
    image_format: ImageFormat = "jpg"
    size: tuple[int, int] | None = Field(default=None, description="(width, height); None: the domain's size")
    bucket: str = "axis-images"
    run_id: str | None = Field(default=None, description="folder of truth.json; default robot-<domain>-<seed>")
    class_mix: dict[str, float] | None = None
    start: datetime | None = Field(default=None, description="setup time of plate 1; None: `days` before now")
    render_threads: int = Field(default=2, ge=1, le=32)
    barcode_prefix: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$",
        description="plate barcodes <prefix>-<seed>-NNN (the pixels do not depend on it); None: the domain's",
    )

    def domain_obj(self) -> Domain:
        """The axis_synth Domain (ValueError naming the known ones when unknown)."""
        if self.domain not in DOMAINS:
            raise ValueError(f"unknown domain {self.domain!r}; known: {', '.join(sorted(DOMAINS))}")
        return DOMAINS[self.domain]

    def run_name(self) -> str:
        """The run's folder name in the images bucket."""
        return self.run_id or f"robot-{self.domain}-{self.seed}"


def plan(config: RobotConfig, *, now: datetime | None = None) -> list[PlannedImage]:
    """Every image of the configured plates, in imaging order (plates set up `days` before now by default)."""
    start = config.start
    domain = config.domain_obj()

    def planned(start: datetime) -> list[PlannedImage]:
        return plan_plates(
            domain,
            config.plates,
            wells=config.wells,
            drops_per_well=config.drops_per_well,
            n_inspections=config.inspections,
            days=config.days,
            seed=config.seed,
            class_mix=config.class_mix,
            start=start,
        )

    if start is None:
        now = now or datetime.now(UTC)
        start = (now - timedelta(days=config.days)).replace(microsecond=0)
        images = planned(start)
        # plates are set up an hour apart: move the run back so that no image is taken in the future
        # (consumers refuse times ahead of their clock)
        late = max(im.imaged_at for im in images) - now if images else timedelta(0)
        if late > timedelta(0):
            images = planned(start - timedelta(seconds=math.ceil(late.total_seconds())))
    else:
        images = planned(start)
    if not config.barcode_prefix or config.barcode_prefix == domain.barcode_prefix:
        return images
    # same drops and pixels as without the prefix (render seeds stay), only the names change
    old, new = domain.barcode_prefix + "-", config.barcode_prefix + "-"
    return [
        im.model_copy(
            update={
                "plate_barcode": new + im.plate_barcode.removeprefix(old),
                "inspection_id": new + im.inspection_id.removeprefix(old),
            }
        )
        for im in images
    ]


def image_uri(image: PlannedImage, *, bucket: str = "axis-images", image_format: ImageFormat = "jpg") -> str:
    """``s3://<bucket>/<plate>/<well>/<drop>/<inspection>-<mode>.<ext>``."""
    key = f"{image.plate_barcode}/{image.well}/{image.drop}/{image.inspection_id}-{image.imaging_mode.value}"
    return make_uri(bucket, f"{key}.{image_format}")


def truth_uri(bucket: str, run_id: str) -> str:
    """Where a run's ground truth lives."""
    return make_uri(bucket, f"{run_id}/{TRUTH_NAME}")


def encode_image(
    image: PlannedImage, domain: Domain, *, image_format: ImageFormat = "jpg", size: tuple[int, int] | None = None
) -> bytes:
    """Render one planned image and encode it as an imager would store it."""
    img = render(image.spec, domain, image.imaging_mode.value, image.seed, size=size)  # type: ignore[arg-type]
    return to_jpeg_bytes(img) if image_format == "jpg" else to_png_bytes(img)


def captured_event(image: PlannedImage, uri: str, *, producer: str = PRODUCER) -> ImageCaptured:
    """The ImageCaptured the robot emits for a stored image."""
    return ImageCaptured(
        producer=producer,
        plate_barcode=image.plate_barcode,
        plate_type=image.plate_type,
        well=image.well,
        drop=image.drop,
        inspection_id=image.inspection_id,
        imaged_at=image.imaged_at,
        imaging_mode=image.imaging_mode,
        image_uri=uri,
        imager_id=image.imager_id,
    )


def ground_truth(images: Sequence[PlannedImage], *, run_id: str, domain: str) -> dict[str, Any]:
    """JSON-able ground truth: per inspection its outcome, sub-type, crystal/other label and user-score class."""
    inspections: dict[str, dict[str, Any]] = {}
    for im in images:
        entry = inspections.setdefault(
            im.inspection_id,
            {
                "plate_barcode": im.plate_barcode,
                "well": im.well,
                "drop": im.drop,
                "inspection_index": im.inspection_index,
                "imaged_at": im.imaged_at.isoformat(),
                "outcome": im.outcome,
                "subtype": im.subtype,
                "label": im.label,
                "user_score_class": im.user_score_class,
                "final_outcome": im.final_outcome,
                "growth": im.growth,
                "modes": [],
            },
        )
        entry["modes"].append(im.imaging_mode.value)
    plates = sorted({im.plate_barcode for im in images})
    return {"run_id": run_id, "domain": domain, "plates": plates, "inspections": inspections}


def parse_truth(data: bytes | str | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """inspection_id -> truth entry, from truth.json bytes/text or an already parsed document."""
    doc = json.loads(data) if isinstance(data, bytes | str) else data
    inspections = doc.get("inspections") if isinstance(doc, Mapping) else None
    if not isinstance(inspections, Mapping):
        raise ValueError("not a robot truth document: no 'inspections' object")
    return {str(k): dict(v) for k, v in inspections.items()}


@dataclass
class RobotRun:
    """What one robot run did."""

    run_id: str
    truth_uri: str
    truth: dict[str, Any]
    plates: list[str]
    images: int = 0
    events: int = 0
    seconds: float = 0.0
    uris: list[str] = field(default_factory=list)
    planned: int = 0
    stopped: bool = False  # asked to stop (SIGTERM / SIGINT) before every planned image was announced


ProgressFn = Callable[[int, int], None]


async def run_robot(
    config: RobotConfig,
    *,
    store: ObjectStore,
    publisher: Publisher,
    images: Sequence[PlannedImage] | None = None,
    on_progress: ProgressFn | None = None,
    producer: str = PRODUCER,
    stop: asyncio.Event | None = None,
) -> RobotRun:
    """Write truth.json, then render + upload + announce every image at ``config.rate`` images/s.

    When ``stop`` is set the run ends after the image being announced: every image it announced is in the
    store, no event is half sent, and images rendered ahead but not announced are left unannounced.
    """
    t0 = time.monotonic()
    domain = config.domain_obj()
    todo = list(images) if images is not None else plan(config)
    run_id = config.run_name()
    truth = ground_truth(todo, run_id=run_id, domain=domain.name)
    t_uri = truth_uri(config.bucket, run_id)
    store.ensure_bucket(config.bucket)
    await asyncio.to_thread(store.put_bytes, t_uri, json.dumps(truth, indent=1).encode(), "application/json")
    run = RobotRun(run_id=run_id, truth_uri=t_uri, truth=truth, plates=list(truth["plates"]), planned=len(todo))
    content_type = "image/jpeg" if config.image_format == "jpg" else "image/png"
    loop = asyncio.get_running_loop()

    def produce(im: PlannedImage) -> str:
        uri = image_uri(im, bucket=config.bucket, image_format=config.image_format)
        store.put_bytes(uri, encode_image(im, domain, image_format=config.image_format, size=config.size), content_type)
        return uri

    window = max(1, config.render_threads * 2)
    with ThreadPoolExecutor(max_workers=config.render_threads, thread_name_prefix="robot-render") as pool:
        pending = [loop.run_in_executor(pool, produce, im) for im in todo[:window]]
        for i, im in enumerate(todo):
            if stop is not None and stop.is_set():
                run.stopped = True
                for future in pending[i:]:
                    future.cancel()
                break
            uri = await pending[i]
            if i + window < len(todo):
                pending.append(loop.run_in_executor(pool, produce, todo[i + window]))
            run.images += 1
            if config.rate > 0:
                due = t0 + i / config.rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await publish_event(publisher, captured_event(im, uri, producer=producer))
            run.events += 1
            run.uris.append(uri)
            if on_progress is not None:
                on_progress(run.events, len(todo))
    run.seconds = time.monotonic() - t0
    return run


def _parser() -> Any:
    import argparse

    p = argparse.ArgumentParser(prog="python -m axis_simulators robot", description="imaging-robot simulator")
    p.add_argument("--domain", default="B", help="synthetic facility domain (A, B)")
    p.add_argument("--plates", type=int, default=1)
    p.add_argument("--wells", type=int, default=None, help="first N wells of each plate (default: all)")
    p.add_argument("--drops", type=int, default=1, help="drops per well")
    p.add_argument("--inspections", type=int, default=3)
    p.add_argument("--days", type=float, default=14.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=float, default=0.0, help="images per second (0: as fast as possible)")
    p.add_argument("--format", choices=["jpg", "png"], default="jpg")
    p.add_argument("--run-id", default=None)
    p.add_argument("--barcode-prefix", default=None, help="plate barcodes <prefix>-<seed>-NNN")
    return p


async def _main_async(config: RobotConfig) -> RobotRun:
    from axis_adapters.kafka import make_broker
    from axis_adapters.objectstore import MinioObjectStore
    from axis_adapters.settings import ServiceSettings, load_settings

    settings = load_settings(ServiceSettings)
    broker = make_broker(settings.kafka)
    await broker.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)  # finish the current image, flush the producer, report
    try:
        last = [0.0]

        def progress(done: int, total: int) -> None:
            if done == total or time.monotonic() - last[0] > 5:
                last[0] = time.monotonic()
                print(f"robot: {done}/{total} images", flush=True)

        return await run_robot(
            config, store=MinioObjectStore(settings.s3), publisher=broker, on_progress=progress, stop=stop
        )
    finally:
        await broker.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


def main(argv: Sequence[str] | None = None) -> int:
    """Image plates with the stack settings (AXIS_* env / stack.env) and print where the truth went."""
    a = _parser().parse_args(argv)
    config = RobotConfig(
        domain=a.domain,
        plates=a.plates,
        wells=a.wells,
        drops_per_well=a.drops,
        inspections=a.inspections,
        days=a.days,
        seed=a.seed,
        rate=a.rate,
        image_format=a.format,
        run_id=a.run_id,
        barcode_prefix=a.barcode_prefix,
    )
    run = asyncio.run(_main_async(config))
    stopped = f" (stopped by a signal after {run.events} of {run.planned} images)" if run.stopped else ""
    print(
        f"robot: {run.events} ImageCaptured for plates {', '.join(run.plates)} in {run.seconds:.1f}s; "
        f"truth in {run.truth_uri}{stopped}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
