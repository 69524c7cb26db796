"""One micro-batch of ImageCaptured records: parse, dedupe, fetch, preprocess, score, store, publish.

The batch is scored in groups of one imaging mode (``overlap_groups``): while a group's forward passes run (in
the scoring process, ``axis_inference.scoring_process``), the fetch threads fetch and decode the next group.

Delivery rules (offsets are committed by FastStream only when ``handle`` returns):

- a permanent per-record problem (schema, bucket, missing/oversized object, undecodable image, mode without a
  model) goes to the dead-letter topic with the reason; the rest of the batch carries on;
- a transient problem (PostgreSQL, object store or broker unreachable; ``axis_adapters.retry.classify``, the
  one rule of every service) raises after a back-off, so the whole batch is redelivered;
- any other failure of a batch isolates the record behind it: the batch is split in halves, each processed on
  its own, down to the single record that still fails, which is dead-lettered with its own error. The good
  records of the batch (of every partition) are scored and committed, so one bad record never stalls a
  partition, nor the others that share its batch;
- each bad record is dead-lettered once: its coordinates are claimed in PostgreSQL with the dead letter, so a
  redelivered batch or a restarted service does not send it again;
- scores, fused scores and ``processed_events`` are written in one transaction that commits only after the
  CrystalScored events were acknowledged by the broker. A redelivered event that is in ``processed_events``
  is skipped (no second score, no republish). If the commit itself fails after publishing, the redelivery
  republishes the same CrystalScored with the same ``event_id`` (derived from its content), so downstream
  consumers dedupe it.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
from axis_adapters.consumer import IsolatingBatchHandler
from axis_adapters.kafka import DeadLetterSink, Publisher, RawRecord, publish_event
from axis_adapters.objectstore import ForbiddenBucket, ObjectMissing, ObjectStore, parse_uri
from axis_adapters.retry import RetryPolicy, is_transient
from axis_contracts import CrystalScored, DeadLetter, ImageCaptured, InvalidEvent, ModeScore, parse_event
from axis_core.fusion import ModeProbability, fuse
from axis_model.preprocess import ImageRejected

from axis_inference.metrics import Metrics
from axis_inference.models import ModelHolder, Scorer
from axis_inference.scores_repo import ImageScore, ScoresRepo

log = logging.getLogger(__name__)

CRYSTAL_SCORED_NAMESPACE = uuid.UUID("6f1f4a52-5d0e-4c1e-9d8a-7a3c2b1e0f11")
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    InvalidEvent,
    ForbiddenBucket,
    ObjectMissing,
    ImageRejected,
    PermissionError,
    ValueError,
)


class ModeWithoutModel(ValueError):
    """An image of a mode the service has no model for."""


class ModelsNotLoaded(RuntimeError):
    """A batch arrived before any model was loaded (the batch is redelivered, never dead-lettered)."""


def scored_event_id(inspection_id: str, scores: dict[str, ModeScore]) -> uuid.UUID:
    """Deterministic CrystalScored id: the same inspection state always gets the same id."""
    parts = [f"{m}={s.image_event_id}@{s.model_name}:{s.model_version}" for m, s in sorted(scores.items())]
    return uuid.uuid5(CRYSTAL_SCORED_NAMESPACE, inspection_id + "|" + ";".join(parts))


def fuse_batch(
    stored: dict[str, dict[str, Any]], scores: Sequence[ImageScore], *, producer: str
) -> list[CrystalScored]:
    """Merge new per-image scores into the stored mode scores; one CrystalScored per inspection touched."""
    state: dict[str, dict[str, ModeScore]] = {
        iid: {m: ModeScore.model_validate(js) for m, js in modes.items()} for iid, modes in stored.items()
    }
    latest: dict[str, ImageScore] = {}
    for s in scores:
        e = s.event
        state.setdefault(e.inspection_id, {})[str(e.imaging_mode)] = ModeScore(
            probability=s.probability,
            threshold=s.threshold,
            model_name=s.model_name,
            model_version=s.model_version,
            image_uri=e.image_uri,
            image_event_id=e.event_id,
        )
        latest[e.inspection_id] = s
    out: list[CrystalScored] = []
    for iid, s in latest.items():
        modes = state[iid]
        fused = fuse({m: ModeProbability(ms.probability, ms.threshold) for m, ms in modes.items()})
        best = modes[fused.mode]
        e = s.event
        out.append(
            CrystalScored(
                event_id=scored_event_id(iid, modes),
                producer=producer,
                plate_barcode=e.plate_barcode,
                plate_type=e.plate_type,
                well=e.well,
                drop=e.drop,
                inspection_id=iid,
                imaged_at=e.imaged_at,
                scores=modes,  # type: ignore[arg-type]
                fused_probability=fused.probability,
                label=fused.label,
                threshold=fused.threshold,
                model_name=best.model_name,
                model_version=best.model_version,
                scored_at=s.scored_at,
            )
        )
    return out


OVERLAP_GROUP = 8  # images fetched while the group before them is scored (the CPU path's forward pass at 224 px)


def overlap_groups(
    ready: Sequence[tuple[RawRecord, ImageCaptured]], size: int = OVERLAP_GROUP
) -> list[list[tuple[RawRecord, ImageCaptured]]]:
    """The batch's records by imaging mode (first-seen order, record order kept within a mode), in groups of at
    most ``size``: each group is one scoring call whose forward passes are full, overlapped with the next fetch."""
    by_mode: dict[str, list[tuple[RawRecord, ImageCaptured]]] = {}
    for item in ready:
        by_mode.setdefault(str(item[1].imaging_mode), []).append(item)
    return [items[i : i + size] for items in by_mode.values() for i in range(0, len(items), size)]


@dataclass
class BatchResult:
    """What one batch did."""

    scored: int
    duplicates: int
    dead_lettered: int
    published: list[CrystalScored]

    @classmethod
    def combined(cls, parts: Sequence[BatchResult]) -> BatchResult:
        """The parts of an isolated batch as one result."""
        return cls(
            scored=sum(p.scored for p in parts),
            duplicates=sum(p.duplicates for p in parts),
            dead_lettered=sum(p.dead_lettered for p in parts),
            published=[e for p in parts for e in p.published],
        )


def is_redelivery_error(exc: BaseException) -> bool:
    """What the inference consumer does not isolate: transient errors (the shared rule) and models not loaded."""
    return isinstance(exc, ModelsNotLoaded) or is_transient(exc)


class BatchProcessor:
    """Scores micro-batches with the current models; safe to call from one handler at a time."""

    def __init__(
        self,
        *,
        store: ObjectStore,
        repo: ScoresRepo,
        publisher: Publisher,
        dead_letters: DeadLetterSink,
        holder: ModelHolder,
        metrics: Metrics,
        allowed_buckets: list[str],
        max_object_bytes: int,
        io_executor: Executor | None,
        model_executor: Executor | None,
        consumer: str = "axis-inference",
        retry_backoff_s: float = 0.5,
        retry_backoff_max_s: float = 15.0,
        max_future_skew_s: float | None = None,
    ) -> None:
        self._store = store
        self._repo = repo
        self._publisher = publisher
        self._dead = dead_letters
        self._holder = holder
        self.metrics = metrics
        self._allowed = list(allowed_buckets)
        self._max_bytes = max_object_bytes
        self._io = io_executor
        self._model = model_executor
        self.consumer = consumer
        self._backoff = retry_backoff_s
        self._backoff_max = retry_backoff_max_s
        self._context = {"max_future_skew_s": max_future_skew_s}
        self._transient_failures = 0
        # the shared rule, bisecting: one attempt per part here (handle() backs off, the batch is redelivered),
        # no time bound (a batch of large images on a CPU may take long; the consumer's liveness watches it)
        self._isolating: IsolatingBatchHandler[BatchResult] = IsolatingBatchHandler(
            self.process,
            dead_letters=dead_letters,
            policy=RetryPolicy(attempts=1, is_transient=is_redelivery_error),
            attempt_timeout_s=None,
            name="inference",
            isolate="bisect",
            combine=BatchResult.combined,
            rejected=self._rejected,
            on_failure=self._failed,
        )

    async def handle(self, records: Sequence[RawRecord]) -> BatchResult | None:
        """Process a batch; raise (after a back-off) to have it redelivered; isolate and dead-letter bad records."""
        if not records:
            return None
        try:
            result = await self._process_isolating(records)
        except Exception as exc:
            self.metrics.batch_failures += 1
            self._transient_failures += 1
            delay = min(self._backoff_max, self._backoff * 2 ** (self._transient_failures - 1))
            log.warning("transient failure (%s: %s); batch redelivered in %.1fs", type(exc).__name__, exc, delay)
            await asyncio.sleep(delay)
            raise
        self._transient_failures = 0
        return result

    async def _process_isolating(self, records: Sequence[RawRecord]) -> BatchResult:
        """``process`` under the shared rule: on a permanent failure, bisect until the failing record stands alone
        and dead-letter it once. Raises only transient errors (and ModelsNotLoaded): then nothing of the failing
        part is committed, and what other parts committed is skipped on redelivery (``processed_events``)."""
        result = await self._isolating(records)
        return result if result is not None else BatchResult(scored=0, duplicates=0, dead_lettered=0, published=[])

    def _failed(self, records: Sequence[RawRecord], exc: BaseException) -> None:
        self.metrics.batch_failures += 1

    def _rejected(self, record: RawRecord, exc: BaseException, sent: Sequence[DeadLetter]) -> BatchResult:
        self._count(sent)
        return BatchResult(scored=0, duplicates=0, dead_lettered=len(sent), published=[])

    def _count(self, sent: Sequence[DeadLetter]) -> None:
        for dl in sent:
            self.metrics.dead_lettered[dl.error_type] += 1

    def _fetch_and_prepare(self, scorer: Scorer, event: ImageCaptured) -> np.ndarray:
        parse_uri(event.image_uri, self._allowed)
        data = self._store.get_bytes(event.image_uri, max_bytes=self._max_bytes)
        return scorer.prepare(str(event.imaging_mode), data)

    async def _in(self, executor: Executor | None, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)

    def _fetch_group(self, scorer: Scorer, group: Sequence[tuple[RawRecord, ImageCaptured]]) -> Any:
        """Fetch + prepare a group's images in the fetch threads (started now): a future of their outcomes."""
        return asyncio.gather(
            *(self._in(self._io, self._fetch_and_prepare, scorer, e) for _, e in group), return_exceptions=True
        )

    async def process(self, records: Sequence[RawRecord]) -> BatchResult:
        """Score one batch; raises on transient errors (nothing committed), dead-letters bad records."""
        t0 = time.monotonic()
        rejects: list[tuple[RawRecord, BaseException]] = []
        parsed: list[tuple[RawRecord, ImageCaptured]] = []
        seen: set[uuid.UUID] = set()
        duplicates = 0
        for rec in records:
            try:
                event = parse_event(rec.value, ImageCaptured, context=self._context)
            except InvalidEvent as exc:
                rejects.append((rec, exc))
                continue
            if event.event_id in seen:
                duplicates += 1
                continue
            seen.add(event.event_id)
            parsed.append((rec, event))
        done = await self._repo.processed(self.consumer, [e.event_id for _, e in parsed])
        t_check = time.monotonic()
        self.metrics.observe_stage("check", t_check - t0)
        duplicates += len(done)
        todo = [(r, e) for r, e in parsed if e.event_id not in done]
        published: list[CrystalScored] = []
        scored = 0
        async with self._holder.lock:  # the models cannot change in the middle of a batch
            scorer = self._holder.scorer
            if scorer is None:
                raise ModelsNotLoaded("no models loaded yet: the subscriber must not run before they are")
            ready: list[tuple[RawRecord, ImageCaptured]] = []
            for rec, event in todo:
                if str(event.imaging_mode) not in scorer.refs:
                    modes = ", ".join(sorted(scorer.refs))
                    rejects.append(
                        (
                            rec,
                            ModeWithoutModel(
                                f"no model loaded for imaging mode {event.imaging_mode} (loaded: {modes})"
                            ),
                        )
                    )
                else:
                    ready.append((rec, event))
            # fetch + decode group i+1 in the fetch threads while group i is scored (in the scoring process,
            # which owns the cores: the fetches wait mostly on the object store); groups are of one mode each
            groups = overlap_groups(ready)
            pending = self._fetch_group(scorer, groups[0]) if groups else None
            prob_of: dict[uuid.UUID, float] = {}
            fetch_s = model_s = 0.0
            for i, group in enumerate(groups):
                t_wait = time.monotonic()
                assert pending is not None
                outcomes = await pending
                fetch_s += time.monotonic() - t_wait
                pending = self._fetch_group(scorer, groups[i + 1]) if i + 1 < len(groups) else None
                items: list[tuple[str, np.ndarray]] = []
                group_events: list[ImageCaptured] = []
                for (rec, event), out in zip(group, outcomes, strict=True):
                    if isinstance(out, BaseException):
                        if isinstance(out, PERMANENT_ERRORS) and not is_transient(out):
                            rejects.append((rec, out))
                            continue
                        raise out
                    items.append((str(event.imaging_mode), out))
                    group_events.append(event)
                if items:
                    t_score = time.monotonic()
                    got = await self._in(self._model, scorer.score, items)
                    model_s += time.monotonic() - t_score
                    prob_of.update((e.event_id, p) for e, p in zip(group_events, got, strict=True))
            self.metrics.observe_stage("fetch", fetch_s)
            good = [e for _, e in ready if e.event_id in prob_of]  # record order again (event ids are unique here)
            probs = [prob_of[e.event_id] for e in good]
            if good:
                self.metrics.observe_stage("model", model_s)
                t_model = time.monotonic()
                now = datetime.now(UTC)
                scores = []
                for event, p in zip(good, probs, strict=True):
                    ref = scorer.refs[str(event.imaging_mode)]
                    assert ref.threshold is not None
                    scores.append(
                        ImageScore(event, float(min(1.0, max(0.0, p))), ref.threshold, ref.name, ref.version, now)
                    )
                async with self._repo.transaction() as tx:
                    new = await tx.add_scores(scores)
                    stored = await tx.lock_inspections([s.event.inspection_id for s in scores])
                    published = fuse_batch(stored, scores, producer=self.consumer)
                    for fused in published:
                        await tx.put_inspection(fused)
                    await tx.mark_processed(self.consumer, [s.event.event_id for s in scores])
                    # one at a time: sending them together measured slower against the embedded broker (Tansu)
                    for fused in published:
                        await publish_event(self._publisher, fused)
                scored = len(new)
                self.metrics.observe_stage("commit", time.monotonic() - t_model)
        t_dead = time.monotonic()
        # after the commit (a failed commit must not leave doubled dead letters), each record claimed once
        sent = await self._dead.reject_once(
            [(rec, why if isinstance(why, Exception) else str(why)) for rec, why in rejects]
        )
        self._count(sent)
        self.metrics.observe_stage("dead_letters", time.monotonic() - t_dead)
        self.metrics.duplicates_skipped += duplicates
        self.metrics.scored_events_published += len(published)
        self.metrics.observe_batch(len(records), scored, time.monotonic() - t0)
        return BatchResult(scored=scored, duplicates=duplicates, dead_lettered=len(sent), published=published)
