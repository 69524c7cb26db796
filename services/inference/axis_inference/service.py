"""Wiring of the inference service: settings -> adapters -> FastStream subscribers, HTTP, model watcher."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from axis_adapters.db import async_pool
from axis_adapters.health_http import HealthServer
from axis_adapters.kafka import DeadLetterSink, RawRecord, consumer_options, make_broker
from axis_adapters.liveness import ConsumerProgress
from axis_adapters.objectstore import MinioObjectStore, ObjectStore
from axis_adapters.publisher import EventPublisher
from axis_adapters.retry import RetryPolicy, retry_async
from axis_adapters.settings import KafkaSettings
from axis_adapters.subscriber import raw_subscriber
from axis_contracts import CrystalScored, DeadLetter, ImageCaptured, InvalidEvent, ModelPromoted, parse_event, topics

from axis_inference.loader import build_service_scorer, uses_cuda
from axis_inference.metrics import Metrics
from axis_inference.models import ChampionSource, ChampionWatcher, ModelHolder, Scorer, ScorerFactory
from axis_inference.pipeline import BatchProcessor
from axis_inference.scores_repo import PgScoresRepo
from axis_inference.scoring_process import ProcessScorer
from axis_inference.settings import CONSUMER_GROUP, InferenceOptions, InferenceSettings

log = logging.getLogger(__name__)

STARTUP_ATTEMPTS = 20  # tries to reach PostgreSQL and the broker at start (capped exponential back-off)


def publish_to(broker: Any) -> EventPublisher:
    """What the service sends: CrystalScored, and a DeadLetter for each record it cannot score."""
    return EventPublisher(broker, "inference", (CrystalScored, DeadLetter))


def subscribe(
    broker: Any,
    opts: InferenceOptions,
    kafka: KafkaSettings,
    *,
    on_images: Callable[[list[RawRecord]], Awaitable[None]],
    on_promoted: Callable[[list[RawRecord]], Awaitable[None]],
    progress: ConsumerProgress | None,
) -> Any:
    """The service's two subscribers: ImageCaptured in batches in its group (returned), ModelPromoted on every
    instance from the latest offset."""
    options = consumer_options(kafka)
    images = raw_subscriber(
        broker,
        {topics.IMAGE_CAPTURED: ImageCaptured},
        on_images,
        party="inference",
        group_id=CONSUMER_GROUP,
        progress=progress,
        max_records=opts.batch_size,
        batch_timeout_ms=opts.batch_timeout_ms,
        **options,
    )
    raw_subscriber(
        broker,
        {topics.MODEL_PROMOTED: ModelPromoted},
        on_promoted,
        party="inference",
        group_id=None,  # every instance hears every promotion
        batch=False,
        **{**options, "auto_offset_reset": "latest"},
    )
    return images


def default_factory(settings: InferenceSettings) -> ScorerFactory:
    """The production scorer factory: bundles -> one base -> axis_model's GPU path on CUDA, else its CPU fast path
    (in a child process unless AXIS_INFERENCE__SCORE_IN=thread)."""
    opts = settings.inference

    options: dict[str, Any] = {
        "base_path": settings.model.base_path,
        "max_pixels": opts.max_pixels,
        "variant": opts.variant,
        "batch_size": opts.score_chunk,
        "device": opts.device,
        "gpu_variant": opts.gpu_variant,
        "gpu_batch_size": opts.gpu_batch,
    }

    def factory(wanted: Any) -> Scorer:
        if opts.score_in == "process" and not uses_cuda(opts.device):
            return ProcessScorer(wanted, options)
        return build_service_scorer(wanted, **options)

    return factory


def default_source(settings: InferenceSettings) -> ChampionSource:
    """The MLflow model registry of the settings."""
    from axis_adapters.registry import ModelRegistry

    return ModelRegistry(settings.mlflow.tracking_uri)


class InferenceService:
    """The running service; ``run(stop)`` returns after a graceful shutdown once ``stop`` is set."""

    def __init__(
        self,
        settings: InferenceSettings,
        *,
        source: ChampionSource | None = None,
        store: ObjectStore | None = None,
        factory: ScorerFactory | None = None,
    ) -> None:
        self.settings = settings
        opts = settings.inference
        self.source = source or default_source(settings)
        self.store = store or MinioObjectStore(settings.s3)
        self.holder = ModelHolder()
        self.metrics = Metrics()
        names = {"visible": settings.mlflow.visible_model, "uv": settings.mlflow.uv_model}
        unknown = [m for m in opts.modes if m not in names]
        if unknown:
            raise ValueError(f"AXIS_INFERENCE__MODES has unknown modes {unknown}; use visible and/or uv")
        self.watcher = ChampionWatcher(
            source=self.source,
            model_names={m: names[m] for m in opts.modes},
            factory=factory or default_factory(settings),
            holder=self.holder,
            poll_seconds=opts.poll_seconds,
            bootstrap_bundle=Path(opts.bootstrap_bundle) if opts.bootstrap_bundle else None,
            cache_dir=Path(opts.cache_dir) if opts.cache_dir else None,
        )
        # /metrics stays closed without a token (401), unlike the discrepancy and ingest services' open default
        self.http = HealthServer(
            opts.http_host,
            opts.http_port,
            health=self._health,
            metrics=self._metrics,
            metrics_json=self._metrics_json,
            token=opts.metrics_token.get_secret_value() if opts.metrics_token else None,
            require_token=True,
            token_setting="AXIS_INFERENCE__METRICS_TOKEN",
        )
        self.broker: Any = None
        self.images_subscriber: Any = None
        self.publisher: Any = None
        self.progress = ConsumerProgress(stall_after_s=opts.stall_after_s)
        self.processor: BatchProcessor | None = None
        self.consuming = False
        self.started_at = time.time()

    async def _health(self) -> tuple[bool, dict[str, Any]]:
        broker_ok = False
        if self.broker is not None and self.consuming:
            try:
                broker_ok = bool(await self.broker.ping(timeout=2))
            except Exception:
                broker_ok = False
        stalled = self.progress.stalled()
        if self.holder.scorer is None:
            status = "waiting_for_champion"
        elif stalled:
            status = "stalled"
        else:
            status = "ok" if broker_ok else "degraded"
        body = {
            "status": status,
            "stalled": stalled,
            "consumer": self.progress.as_dict(),
            "dead_lettered_by_reason": dict(self.metrics.dead_lettered),
            "models": self.holder.versions(),
            "broker_connected": broker_ok,
            "consuming": self.consuming,
            "model_swaps": self.holder.swaps,
            "last_model_error": self.watcher.last_error,
            "uptime_s": round(time.time() - self.started_at, 1),
        }
        return status == "ok", body

    async def _metrics(self) -> str:
        text = self.metrics.prometheus(self.holder.versions())
        return text + "\n".join(self.progress.prometheus("axis_inference")) + "\n"

    async def _metrics_json(self) -> dict[str, Any]:
        return {**self.metrics.as_dict(self.holder.versions()), "consumer": self.progress.as_dict()}

    async def _watch_lag(self, stop: asyncio.Event) -> None:
        """Refresh the consumer's lag every few seconds (for /health's stall check and /metrics)."""
        while not stop.is_set():
            try:
                await self.progress.refresh(getattr(self.images_subscriber, "consumer", None))
            except Exception as exc:  # a rebalance or a broker restart: try again at the next tick
                log.debug("lag refresh failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.settings.inference.lag_poll_s)

    def _build_broker(self) -> Any:
        opts = self.settings.inference
        broker = make_broker(self.settings.kafka, graceful_timeout=opts.shutdown_timeout_s)

        async def on_images(records: list[RawRecord]) -> None:
            assert self.processor is not None
            await self.processor.handle(records)

        async def on_promoted(records: list[RawRecord]) -> None:
            for rec in records:
                try:
                    event = parse_event(rec.value, ModelPromoted)
                except InvalidEvent as exc:
                    log.warning("ignoring an invalid ModelPromoted: %s", exc.reason)
                    continue
                log.info(
                    "ModelPromoted %s v%s (%s): checking the registry", event.model_name, event.version, event.alias
                )
                self.watcher.trigger()

        self.images_subscriber = subscribe(
            broker, opts, self.settings.kafka, on_images=on_images, on_promoted=on_promoted, progress=self.progress
        )
        self.publisher = publish_to(broker)
        return broker

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; then finish the batch in flight, commit, and close everything."""
        opts = self.settings.inference
        await self.http.start()
        io_pool = ThreadPoolExecutor(max_workers=opts.io_threads, thread_name_prefix="axis-fetch")
        model_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="axis-score")
        pool = None
        watch_task: asyncio.Task[None] | None = None
        try:
            log.info("loading the champion of %s", ", ".join(opts.modes))
            if not await self.watcher.wait_ready(stop):
                return
            # PostgreSQL or the broker may be restarting right now: wait them out (capped back-off), don't crash
            startup = RetryPolicy(
                attempts=STARTUP_ATTEMPTS, base_delay_s=opts.retry_backoff_s, max_delay_s=opts.retry_backoff_max_s
            )
            pool = await retry_async(lambda: async_pool(self.settings.postgres), policy=startup, what="open the pool")
            db_pool = pool

            async def start_broker() -> None:
                self.broker = broker = self._build_broker()
                self.processor = BatchProcessor(
                    store=self.store,
                    repo=PgScoresRepo(db_pool),
                    publisher=self.publisher,
                    dead_letters=DeadLetterSink(
                        self.publisher,
                        CONSUMER_GROUP,
                        store=self.store,
                        keep_bytes=self.settings.kafka.dead_letter_keep_bytes,
                        pool=db_pool,
                    ),
                    holder=self.holder,
                    metrics=self.metrics,
                    allowed_buckets=self.settings.s3.allowed_buckets,
                    max_object_bytes=opts.max_object_bytes,
                    io_executor=io_pool,
                    model_executor=model_pool,
                    consumer=CONSUMER_GROUP,
                    retry_backoff_s=opts.retry_backoff_s,
                    retry_backoff_max_s=opts.retry_backoff_max_s,
                    max_future_skew_s=self.settings.max_future_skew_s,
                )
                try:
                    await broker.start()
                except Exception:
                    self.broker = None
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(broker.stop(), timeout=10)
                    raise

            await retry_async(start_broker, policy=startup, what="start the broker")
            self.consuming = True
            log.info(
                "consuming %s as group %s with models %s", topics.IMAGE_CAPTURED, CONSUMER_GROUP, self.holder.versions()
            )
            watch_task = asyncio.create_task(self.watcher.run(stop))
            lag_task = asyncio.create_task(self._watch_lag(stop))
            await stop.wait()
            lag_task.cancel()
            log.info("stopping: finishing the batch in flight (at most %.0fs)", opts.shutdown_timeout_s)
        finally:
            if watch_task is not None:
                watch_task.cancel()
            if self.broker is not None:
                try:
                    await asyncio.wait_for(self.broker.stop(), timeout=opts.shutdown_timeout_s + 5)
                except TimeoutError:
                    log.error("broker did not stop within %.0fs", opts.shutdown_timeout_s + 5)
            self.consuming = False
            if pool is not None:
                await pool.close()
            await self.holder.close()
            await self.http.stop()
            io_pool.shutdown(wait=False, cancel_futures=True)
            model_pool.shutdown(wait=False, cancel_futures=True)
            self.watcher.close()
            log.info("stopped")
