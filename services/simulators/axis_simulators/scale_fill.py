"""Fill a stack with a facility's year for ``make bench-scale``, through each service's own write path.

- inference: scored images and fused inspection scores (``fuse_batch``, the pipeline's fusion) written with
  ``axis_inference.scores_bulk.bulk_load`` (COPY of the rows the pipeline writes);
- discrepancy: the repository calls ``DiscrepancyService`` makes for a batch of decoded scores (lock, load state,
  history, fold, routing assessment, save), then its outbox;
- curation's read model: what its consumer does with CrystalScored, ComparisonRecorded and DiscrepancyFound;
- curation: curator labels through ``CurationRepo.add_label`` with the service's consensus rule;
- images of the plates the export will take, as small PNGs in the images bucket (the imager's job).

Everything is deterministic for a seed. ``FillPlan.of(scale)``: 5,000 plates at scale 1 (4,980 of 96 wells and
20 of 1,536), one inspection per well, a visible and a UV image each, user scores for 60 % of inspections and
5 % of those disagreeing with the model, every disagreement labelled by one curator and half of them by a second.
"""

from __future__ import annotations

import asyncio
import io
import json
import multiprocessing
import random
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from axis_contracts import ComparisonRecorded, CrystalScored, DiscrepancyFound, ImageCaptured, ImagingMode, ModeScore
from axis_contracts.scheme import DEFAULT_SCHEME, ScoreScheme
from axis_contracts.wells import PlateType, wells_of
from axis_core.discrepancy import HumanScore, InspectionState, MlScore, fold, group_by_inspection
from axis_core.fusion import ModeProbability as FusionMode
from axis_core.fusion import fuse
from axis_core.routing import ModeProbability as RoutingMode
from axis_core.routing import RoutingPolicy, assess
from axis_curation import read_model
from axis_discrepancy import discrepancy_repo as drepo
from axis_inference.pipeline import scored_event_id
from axis_inference.scores_bulk import bulk_load
from axis_inference.scores_repo import ImageScore
from PIL import Image

T0 = datetime(2025, 11, 24, 6, 0, tzinfo=UTC)
YEAR = timedelta(days=365)
CRYSTAL = ("microcrystals", "single_crystals")
OTHER = ("clear", "precipitate", "phase_separation", "denatured")
MODELS = {"visible": "axis-visible", "uv": "axis-uv"}
INFERENCE = "axis-inference"
CURATORS = ("scale-curator-a", "scale-curator-b")
NO_ROUTING = RoutingPolicy(agreements_per_day=0)  # the service's default: no agreement is routed to curators


@dataclass(frozen=True)
class FillPlan:
    """How much to write: plates of each size, the rates, the export's share."""

    plates_96: int
    plates_1536: int
    user_rate: float = 0.6
    disagree_rate: float = 0.05
    export_candidates: int = 200_000
    seed: int = 18

    @classmethod
    def of(cls, scale: float) -> FillPlan:
        """The plan at ``scale`` (1.0 = a facility's year: 5,000 plates, 1.0M images)."""
        big = max(1, round(20 * scale))
        return cls(
            plates_96=max(1, round(5000 * scale) - big),
            plates_1536=big,
            export_candidates=max(500, round(200_000 * scale)),
        )

    @property
    def plates(self) -> int:
        """All plates."""
        return self.plates_96 + self.plates_1536

    @property
    def inspections(self) -> int:
        """One per well of every plate."""
        return self.plates_96 * 96 + self.plates_1536 * 1536

    def export_plates(self) -> list[int]:
        """The first plates whose expected agreement images reach the export target (plus 3 % margin)."""
        out: list[int] = []
        expected = 0.0
        while expected < 1.03 * self.export_candidates and len(out) < self.plates:
            wells = len(wells_of(self.plate(len(out))[1]))
            expected += wells * 2 * self.user_rate * (1 - self.disagree_rate)
            out.append(len(out))
        return out

    def plate(self, idx: int) -> tuple[str, PlateType]:
        """Barcode and type of plate ``idx``: the 1,536-well plates spread evenly over the year."""
        step = max(1, self.plates // self.plates_1536)
        big = idx % step == 0 and idx // step < self.plates_1536
        return f"SC{idx:05d}", PlateType.WELLS_1536 if big else PlateType.WELLS_96


@dataclass
class PlateData:
    """What one plate contributes, in the form each service's repository takes it."""

    barcode: str
    plate_type: PlateType
    scores: list[ImageScore]  # inference: scored images
    scored: list[CrystalScored]  # inference: fused inspection scores (what the discrepancy service receives)
    mls: list[MlScore]  # discrepancy: the fused scores as the service holds them
    humans: list[HumanScore]  # discrepancy: user scores
    candidates: int  # export candidates: images of agreeing inspections (curated ones come from labels)


def _inspection(
    barcode: str, plate_type: PlateType, well: str, at: datetime, probs: dict[str, float], version: str, bucket: str
) -> tuple[list[ImageScore], CrystalScored]:
    """One inspection's scored images and its fused score, as ``fuse_batch`` builds them (values known valid)."""
    iid = f"{barcode}-{well}-1"
    scores, modes = [], {}
    for mode, p in probs.items():
        event = ImageCaptured.model_construct(
            event_id=uuid.uuid4(), producer="axis-robot", plate_barcode=barcode, plate_type=plate_type, well=well,
            drop=1, inspection_id=iid, imaged_at=at, imaging_mode=ImagingMode(mode),
            image_uri=image_uri(bucket, barcode, well, mode), imager_id="imager-1",
        )  # fmt: skip
        scores.append(ImageScore(event, p, 0.5, MODELS[mode], version, at + timedelta(minutes=10)))
        modes[mode] = ModeScore.model_construct(
            probability=p, threshold=0.5, model_name=MODELS[mode], model_version=version,
            image_uri=event.image_uri, image_event_id=event.event_id,
        )  # fmt: skip
    fused = fuse({m: FusionMode(ms.probability, ms.threshold) for m, ms in modes.items()})
    best = modes[fused.mode]
    by_mode: Any = modes  # keyed by mode name, as fuse_batch passes them (the model declares ImagingMode keys)
    scored = CrystalScored.model_construct(
        event_id=scored_event_id(iid, modes), producer=INFERENCE, plate_barcode=barcode, plate_type=plate_type,
        well=well, drop=1, inspection_id=iid, imaged_at=at, scores=by_mode, fused_probability=fused.probability,
        label=fused.label, threshold=fused.threshold, model_name=best.model_name, model_version=best.model_version,
        scored_at=at + timedelta(minutes=10),
    )  # fmt: skip
    return scores, scored


def _ml(c: CrystalScored) -> MlScore:
    modes = tuple(RoutingMode(str(m), s.probability, s.threshold) for m, s in sorted(c.scores.items()))
    return MlScore(
        event_id=c.event_id, inspection_id=c.inspection_id, plate_barcode=c.plate_barcode, well=c.well, drop=c.drop,
        imaged_at=c.imaged_at, probability=c.fused_probability, threshold=c.threshold, model_name=c.model_name,
        model_version=c.model_version, scored_at=c.scored_at, plate_type=str(c.plate_type), modes=modes,
    )  # fmt: skip


def make_plate(plan: FillPlan, idx: int, bucket: str, scheme: ScoreScheme = DEFAULT_SCHEME) -> PlateData:
    """One plate's images, scores, fused scores and user scores (deterministic per plate, ids aside)."""
    rng = random.Random(plan.seed * 1_000_003 + idx)
    barcode, plate_type = plan.plate(idx)
    start = T0 + YEAR * (idx / max(1, plan.plates))
    version = "1" if start < T0 + YEAR / 2 else "2"
    data = PlateData(barcode, plate_type, [], [], [], [], 0)
    for w, well in enumerate(wells_of(plate_type)):
        crystal = rng.random() < 0.3
        probs = {
            m: 0.5 + 0.5 * rng.random() if (crystal and rng.random() < 0.9) else 0.5 * rng.random()
            for m in ("visible", "uv")
        }
        scores, c = _inspection(barcode, plate_type, well, start + timedelta(seconds=3 * w), probs, version, bucket)
        data.scores += scores
        data.scored.append(c)
        data.mls.append(_ml(c))
        if rng.random() >= plan.user_rate:
            continue
        disagree = rng.random() < plan.disagree_rate
        raw = rng.choice(CRYSTAL if (c.label == "crystal") != disagree else OTHER)
        data.humans.append(
            HumanScore(
                event_id=uuid.uuid4(),
                inspection_id=c.inspection_id,
                user_id=f"user-{rng.randrange(40):02d}",
                raw_class=raw,
                label=scheme.classes[raw],
                scored_at=c.imaged_at + timedelta(days=1, minutes=rng.randrange(600)),
            )
        )
        data.candidates += 0 if disagree else len(scores)
    return data


async def discrepancy_batch(conn: Any, mls: Sequence[MlScore], humans: Sequence[HumanScore]) -> None:
    """What ``DiscrepancyService`` does with a batch of decoded scores, in the caller's transaction.

    The same repository calls in the same order: lock, load state, history (the idempotency), fold, route
    (reason and priority of each queue item), save.
    """
    scores: list[MlScore | HumanScore] = [*mls, *humans]
    by_inspection = group_by_inspection(scores)
    await drepo.lock_inspections(conn, list(by_inspection))
    states = await drepo.load_states(conn, list(by_inspection))
    fresh = await drepo.insert_ml_history(conn, mls)
    fresh |= await drepo.insert_user_scores(conn, humans)
    results = [
        fold(states.get(i) or InspectionState(i), [e for e in evs if e.event_id in fresh])
        for i, evs in by_inspection.items()
    ]
    latest = [r.comparisons[-1] for r in results if r.comparisons]
    users = await drepo.user_reliability(conn, [c.human.user_id for c in latest])
    assessments = {
        c.pair: assess(
            probability=c.ml.probability,
            threshold=c.ml.threshold,
            modes=c.ml.modes,
            agrees=c.agrees,
            user=users[c.human.user_id],
            policy=NO_ROUTING,
        )  # fmt: skip
        for c in latest
    }
    await drepo.save_results(conn, results, assessments=assessments, routed=set())


def texture_png(rng: np.random.Generator) -> bytes:
    """A 64x64 grey PNG that passes the export's image QC and hashes unlike the others."""
    coarse = rng.integers(40, 215, (8, 8), dtype=np.uint8)
    img = np.asarray(Image.fromarray(coarse).resize((64, 64), Image.Resampling.BILINEAR), dtype=np.int16)
    img = np.clip(img + rng.integers(-3, 4, (64, 64)), 1, 254).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class CapturingPublisher:
    """Takes what the discrepancy service publishes (ComparisonRecorded, DiscrepancyFound, dead letters) and keeps
    the comparisons and queue items for the curation read model (``take``), as its consumer would receive them."""

    def __init__(self) -> None:
        self.published = 0
        self._kept: list[bytes] = []

    async def publish(self, message: Any, topic: str, *, key: bytes | None = None, headers: Any = None) -> None:
        self.published += 1
        if isinstance(message, bytes | bytearray):
            self._kept.append(bytes(message))

    def take(self) -> tuple[list[ComparisonRecorded], list[DiscrepancyFound]]:
        """The comparisons and queue items published since the last call."""
        kept, self._kept = self._kept, []
        comparisons, items = [], []
        for raw in kept:
            kind = json.loads(raw).get("event_type")
            if kind == "ComparisonRecorded":
                comparisons.append(ComparisonRecorded.model_validate_json(raw))
            elif kind == "DiscrepancyFound":
                items.append(DiscrepancyFound.model_validate_json(raw))
        return comparisons, items


async def project(curation_pool: Any, scored: Sequence[CrystalScored], publisher: CapturingPublisher) -> None:
    """Curation's read model from the events its consumer reads (``axis_curation.read_model``), one transaction."""
    comparisons, items = publisher.take()
    async with curation_pool.connection() as conn, conn.transaction():
        await read_model.apply_scores(conn, scored)
        await read_model.apply_comparisons(conn, comparisons)
        await read_model.apply_discrepancies(conn, items)


@dataclass
class FillResult:
    """What was written, where the figures point to, and how long each part took."""

    plan: FillPlan
    images: int = 0
    inspections: int = 0
    user_scores: int = 0
    labels: int = 0
    image_objects: int = 0
    image_bytes: int = 0
    candidates: int = 0
    export_plates: list[str] = field(default_factory=list)
    plates_96: list[str] = field(default_factory=list)
    plates_1536: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    def add_time(self, part: str, dt: float) -> None:
        """Accumulate seconds of one part."""
        self.seconds[part] = self.seconds.get(part, 0.0) + dt


class _Clock:
    def __init__(self, result: FillResult, part: str) -> None:
        self._r, self._part = result, part

    def __enter__(self) -> None:
        self._t = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._r.add_time(self._part, time.perf_counter() - self._t)


def upload_images(s3: Any, bucket: str, plan: FillPlan, done: Any, threads: int = 16) -> None:
    """Child process: a PNG for every image the export reads (inspections with a user score on the export plates),
    PUT in parallel; ``done`` counts objects."""
    from axis_adapters.objectstore import MinioObjectStore

    store = MinioObjectStore(s3)
    store.ensure_bucket(bucket)
    rng = np.random.default_rng(plan.seed)

    def put(item: tuple[str, bytes]) -> None:
        store.put_bytes(item[0], item[1], "image/png")
        with done.get_lock():
            done.value += 1

    def blobs() -> Iterator[tuple[str, bytes]]:
        for idx in plan.export_plates():
            data = make_plate(plan, idx, bucket)  # the same draws: the inspections with a user score
            scored = {h.inspection_id for h in data.humans}
            for s in data.scores:
                if s.event.inspection_id in scored:
                    yield s.event.image_uri, texture_png(rng)

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for _ in pool.map(put, blobs()):
            pass


def image_uri(bucket: str, barcode: str, well: str, mode: str) -> str:
    """Where the fill's image of a drop lies."""
    return f"s3://{bucket}/scale/{barcode}/{well}-{mode}.png"


async def fill(
    plan: FillPlan,
    *,
    pool: Any,
    inference_pool: Any,
    curation_pool: Any,
    service: Any,
    publisher: CapturingPublisher,
    s3: Any,
    bucket: str,
    progress: Callable[[str], None] = print,
    workers: int = 2,
    batch_inspections: int = 1500,
) -> FillResult:
    """Write the plan's plates (``workers`` plates in flight) while a child process uploads the export images."""
    result = FillResult(plan)
    export = plan.export_plates()
    export_max = export[-1]
    total_objects = round(sum(2 * len(wells_of(plan.plate(i)[1])) for i in export) * plan.user_rate)  # about
    ctx = multiprocessing.get_context("spawn")
    uploaded = ctx.Value("q", 0)
    uploader = ctx.Process(target=upload_images, args=(s3, bucket, plan, uploaded), name="scale-images")
    uploader.start()
    t0 = last = time.perf_counter()
    todo: asyncio.Queue[int] = asyncio.Queue()
    for idx in range(plan.plates):
        todo.put_nowait(idx)

    async def worker() -> None:
        nonlocal last
        while not todo.empty():
            plates: list[PlateData] = []
            with _Clock(result, "generate"):
                while not todo.empty() and sum(len(d.scored) for d in plates) < batch_inspections:
                    plates.append(make_plate(plan, todo.get_nowait(), bucket))
            scores = [x for d in plates for x in d.scores]
            scored = [x for d in plates for x in d.scored]
            with _Clock(result, "inference rows (COPY)"):
                await bulk_load(inference_pool, scores, scored, consumer=INFERENCE)
            mls, humans = [x for d in plates for x in d.mls], [x for d in plates for x in d.humans]
            with _Clock(result, "discrepancy rows"):
                async with pool.connection() as conn, conn.transaction():
                    await discrepancy_batch(conn, mls, humans)
                await service.publish_pending()  # the service's outbox, to the capturing publisher
            with _Clock(result, "curation read model"):
                await project(curation_pool, scored, publisher)
            for d in plates:
                result.images += len(d.scores)
                result.inspections += len(d.scored)
                result.user_scores += len(d.humans)
                big = d.plate_type == PlateType.WELLS_1536
                (result.plates_1536 if big else result.plates_96).append(d.barcode)
                if plan.plate(export_max)[0] >= d.barcode:
                    result.export_plates.append(d.barcode)
                    result.candidates += d.candidates
            now = time.perf_counter()
            if now - last >= 15:
                last = now
                rate = result.inspections / (now - t0)
                eta = (plan.inspections - result.inspections) / max(rate, 1e-9)
                progress(
                    f"fill: {result.inspections:,}/{plan.inspections:,} inspections ({rate:,.0f}/s, about {eta:.0f} s "
                    f"to go); export images in S3 {uploaded.value:,}/{total_objects:,}"
                )

    try:
        await asyncio.gather(*(worker() for _ in range(workers)))
        t1 = time.perf_counter()
        while uploader.is_alive():
            uploader.join(timeout=15)
            progress(f"fill: waiting for the export images: {uploaded.value:,}/{total_objects:,} in S3")
        result.add_time("waiting for export images", time.perf_counter() - t1)
    finally:
        if uploader.is_alive():
            uploader.terminate()
        uploader.join()
    if uploader.exitcode != 0:
        raise RuntimeError(f"the image upload process failed (exit {uploader.exitcode})")
    result.image_objects = int(uploaded.value)
    result.export_plates.sort()
    return result


def label_all(
    repo: Any, decide: Callable[[list[tuple[str, str, datetime]]], tuple[str, str | None]], *, seed: int = 18
) -> Iterator[int]:
    """Curator labels on every open disagreement: the first curator labels all, the second every other one.

    Yields the running count of labels (for progress). The curator mostly sides with the model (70 %).
    """
    _, items = repo.queue(CURATORS[0], 10_000_000)
    done = 0

    def label(item: Any) -> int:
        verdict = item.ml_label if random.Random(seed * 7919 + item.id).random() < 0.7 else item.human_label
        repo.add_label(item.id, CURATORS[0], verdict, "", decide)
        if item.id % 2 == 0:
            repo.add_label(item.id, CURATORS[1], verdict, "", decide)
            return 2
        return 1

    with ThreadPoolExecutor(max_workers=3) as pool:
        for n in pool.map(label, items):
            done += n
            if done % 2000 < n:
                yield done
    yield done
