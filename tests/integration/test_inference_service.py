"""The inference service on the embedded stack: scores in PostgreSQL and on the topic, promotion, bad input, replay."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from axis_adapters.objectstore import MinioObjectStore
from axis_adapters.registry import ModelRegistry
from axis_contracts import CrystalScored, DeadLetter, ImageCaptured, topics
from axis_inference.seeding import drop_jpeg, image_event, make_classifier, register_champions, save_mode_bundles
from axis_inference.service import InferenceService
from axis_inference.settings import InferenceSettings
from axis_model.spec import BaseSpec

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
PLATE = f"IT{RUN}"
N_INSPECTIONS = 25


@pytest.fixture(scope="module")
def env(stack: Any) -> Iterator[dict[str, str]]:
    """Process environment of the stack, with model names and poll interval private to this module."""
    values = {
        **stack.env,
        "AXIS_MLFLOW__VISIBLE_MODEL": f"axis-visible-it-{RUN}",
        "AXIS_MLFLOW__UV_MODEL": f"axis-uv-it-{RUN}",
        "AXIS_INFERENCE__POLL_SECONDS": "1",
        "AXIS_INFERENCE__HTTP_PORT": "0",
        "AXIS_INFERENCE__BATCH_SIZE": "8",
        "AXIS_INFERENCE__BATCH_TIMEOUT_MS": "100",
        "AXIS_INFERENCE__RETRY_BACKOFF_S": "0.1",
        "AXIS_INFERENCE__METRICS_TOKEN": "metrics-token-for-tests",
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in values.items():
            mp.setenv(k, v)
        yield values


@pytest.fixture(scope="module")
def settings(env: dict[str, str]) -> InferenceSettings:
    return InferenceSettings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def registry(settings: InferenceSettings, tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    reg = ModelRegistry(settings.mlflow.tracking_uri)
    bundles = save_mode_bundles(make_classifier(BaseSpec.tiny(), seed=1), tmp_path_factory.mktemp("v1"))
    names = {"visible": settings.mlflow.visible_model, "uv": settings.mlflow.uv_model}
    register_champions(reg, bundles, names)
    return reg


@pytest.fixture(scope="module")
async def service(settings: InferenceSettings, registry: ModelRegistry) -> AsyncIterator[InferenceService]:
    svc = InferenceService(settings)
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    await wait_for(lambda: svc.consuming, 120, "the service consuming", task)
    yield svc
    stop.set()
    await asyncio.wait_for(task, timeout=60)


async def wait_for(cond: Callable[[], bool], seconds: float, what: str, task: Any = None) -> None:
    deadline = time.monotonic() + seconds
    while not cond():
        if task is not None and task.done():
            task.result()
            raise AssertionError(f"service stopped before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


def query(settings: InferenceSettings, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.postgres.conninfo()) as conn:
        return conn.execute(sql, args).fetchall()


async def scores_of(settings: InferenceSettings, prefix: str) -> list[tuple[Any, ...]]:
    sql = (
        "SELECT s.inspection_id, s.imaging_mode, s.probability, s.model_name, s.model_version FROM image_scores s"
        " WHERE s.inspection_id LIKE %s ORDER BY s.inspection_id, s.imaging_mode"
    )
    return await asyncio.to_thread(query, settings, sql, prefix + "%")


async def produce(settings: InferenceSettings, items: list[tuple[bytes | None, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers, enable_idempotence=False)
    await producer.start()
    try:
        for key, value in items:
            await producer.send_and_wait(topics.IMAGE_CAPTURED, value, key=key)
    finally:
        await producer.stop()


async def read_topic(settings: InferenceSettings, topic: str) -> list[Any]:
    """Every record on a topic right now (no consumer group)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka.bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        if not parts:
            await consumer.force_metadata_update()  # type: ignore[no-untyped-call]
            parts = [TopicPartition(topic, p) for p in (consumer.partitions_for_topic(topic) or set())]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        out: list[Any] = []
        while [tp for tp in parts if await consumer.position(tp) < end[tp]]:
            batch = await consumer.getmany(timeout_ms=1000)
            for recs in batch.values():
                out.extend(recs)
        return out
    finally:
        await consumer.stop()


def put_images(settings: InferenceSettings, prefix: str, n: int, seed: int) -> list[ImageCaptured]:
    store = MinioObjectStore(settings.s3)
    events = []
    for i in range(n):
        for j, mode in enumerate(("visible", "uv")):
            uri = f"s3://{settings.s3.images_bucket}/it/{RUN}/{prefix}{i}/{mode}.jpg"
            store.put_bytes(uri, drop_jpeg(40 + 7 * i + 100 * j, seed=seed + i), "image/jpeg")
            well = f"{'ABCDEFGH'[i % 8]}{i // 8 + 1}"
            events.append(image_event(plate=PLATE, well=well, inspection=f"{prefix}{i}", mode=mode, uri=uri))
    return events


async def test_service_scores_promotes_rejects_and_dedupes(
    service: InferenceService, settings: InferenceSettings, registry: ModelRegistry, tmp_path: Path
) -> None:
    # 50 events: visible and UV of 25 inspections
    events = await asyncio.to_thread(put_images, settings, f"{RUN}-a-", N_INSPECTIONS, 0)
    await produce(settings, [(e.key().encode(), e.to_bytes()) for e in events])
    await wait_for_scores(settings, f"{RUN}-a-", 50)
    rows = await scores_of(settings, f"{RUN}-a-")
    assert len(rows) == 50 and {r[4] for r in rows} == {"1"}
    fused = await asyncio.to_thread(
        query,
        settings,
        "SELECT inspection_id, fused_probability, mode_scores FROM inspection_scores WHERE inspection_id LIKE %s",
        f"{RUN}-a-%",
    )
    assert len(fused) == N_INSPECTIONS
    per_image = {(r[0], r[1]): r[2] for r in rows}
    for iid, prob, modes in fused:
        assert set(modes) == {"visible", "uv"}
        assert prob == pytest.approx(max(per_image[(iid, "visible")], per_image[(iid, "uv")]))
    published = await scored_events(settings, f"{RUN}-a-")
    assert set(published) == {f"{RUN}-a-{i}" for i in range(N_INSPECTIONS)}
    for last in published.values():
        assert set(last.scores) == {"visible", "uv"}
        assert {s.model_version for s in last.scores.values()} == {"1"}

    # promote version 2 in MLflow: picked up by polling, no restart
    bundles = await asyncio.to_thread(save_mode_bundles, make_classifier(BaseSpec.tiny(), seed=2), tmp_path)
    names = {"visible": settings.mlflow.visible_model, "uv": settings.mlflow.uv_model}
    await asyncio.to_thread(register_champions, registry, bundles, names)
    await wait_for(lambda: set(service.holder.versions().values()) == {f"{n}:2" for n in names.values()}, 90, "v2")
    later = await asyncio.to_thread(put_images, settings, f"{RUN}-b-", 3, 100)
    await produce(settings, [(e.key().encode(), e.to_bytes()) for e in later])
    await wait_for_scores(settings, f"{RUN}-b-", 6)
    assert {r[4] for r in await scores_of(settings, f"{RUN}-b-")} == {"2"}
    assert {s.model_version for s in (await scored_events(settings, f"{RUN}-b-")).values()} == {"2"}

    # 5 bad events -> 5 dead letters with reasons; the service keeps going
    store = MinioObjectStore(settings.s3)
    bucket = settings.s3.images_bucket
    trunc_uri = f"s3://{bucket}/it/{RUN}/bad/truncated.jpg"
    await asyncio.to_thread(store.put_bytes, trunc_uri, drop_jpeg(100)[:300])
    base = image_event(plate=PLATE, well="H12", inspection=f"{RUN}-bad", mode="visible", uri=trunc_uri)
    bad = [
        b"{this is not json",
        json.dumps({**json.loads(base.to_bytes()), "imaging_mode": "infrared"}).encode(),
        base.model_copy(update={"image_uri": f"s3://{bucket}/it/{RUN}/bad/missing.jpg"}).to_bytes(),
        base.model_copy(update={"image_uri": "s3://not-allowed-bucket/x.jpg", "event_id": uuid.uuid4()}).to_bytes(),
        base.model_copy(update={"event_id": uuid.uuid4()}).to_bytes(),
    ]
    await produce(settings, [(f"{PLATE}:bad:{i}".encode(), v) for i, v in enumerate(bad)])
    dead: list[DeadLetter] = []

    async def collect_dead() -> bool:
        nonlocal dead
        recs = await read_topic(settings, topics.DEAD_LETTER)
        dead = [DeadLetter.model_validate_json(r.value) for r in recs]
        dead = [d for d in dead if (d.source_key or "").startswith(f"{PLATE}:bad:")]
        return len(dead) >= 5

    deadline = time.monotonic() + 60
    while not await collect_dead():
        assert time.monotonic() < deadline, f"only {len(dead)} dead letters"
        await asyncio.sleep(0.5)
    reasons = {d.source_key: d.error.lower() for d in dead}
    assert len(dead) == 5
    assert "json" in reasons[f"{PLATE}:bad:0"]
    assert "imaging_mode" in reasons[f"{PLATE}:bad:1"]
    assert "no object" in reasons[f"{PLATE}:bad:2"]
    assert "allowed buckets" in reasons[f"{PLATE}:bad:3"]
    assert "truncated" in reasons[f"{PLATE}:bad:4"] or "undecodable" in reasons[f"{PLATE}:bad:4"]

    # replaying the first 50 events creates no second score
    skipped = service.metrics.duplicates_skipped
    await produce(settings, [(e.key().encode(), e.to_bytes()) for e in events])
    await wait_for(lambda: service.metrics.duplicates_skipped >= skipped + 50, 60, "the replay")
    assert len(await scores_of(settings, f"{RUN}-a-")) == 50

    async with httpx.AsyncClient() as client:
        health = (await client.get(f"http://127.0.0.1:{service.http.port}/health")).json()
        metrics = (
            await client.get(
                f"http://127.0.0.1:{service.http.port}/metrics?format=json",
                headers={"Authorization": "Bearer metrics-token-for-tests"},
            )
        ).json()
    assert health["status"] == "ok" and health["broker_connected"] is True
    assert health["models"]["visible"].endswith(":2") and health["models"]["uv"].endswith(":2")
    # the first load, then the promotion: one swap, or two when a poll fell between the two modes' alias moves
    assert health["model_swaps"] in (2, 3)
    assert metrics["images_scored"] >= 56 and metrics["dead_lettered"] >= 5


async def wait_for_scores(settings: InferenceSettings, prefix: str, n: int) -> None:
    deadline = time.monotonic() + 120
    while len(await scores_of(settings, prefix)) < n:
        assert time.monotonic() < deadline, f"timed out waiting for {n} scores of {prefix}"
        await asyncio.sleep(0.5)


async def scored_events(settings: InferenceSettings, prefix: str) -> dict[str, CrystalScored]:
    """The last CrystalScored of every inspection with this prefix."""
    last: dict[str, CrystalScored] = {}
    for rec in await read_topic(settings, topics.CRYSTAL_SCORED):
        event = CrystalScored.model_validate_json(rec.value)
        if event.inspection_id.startswith(prefix):
            last[event.inspection_id] = event
    return last


async def test_sigterm_stops_the_service_process_gracefully(
    env: dict[str, str], registry: ModelRegistry, service: InferenceService
) -> None:
    import signal
    import sys

    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "axis_inference",
        env={**os.environ, "AXIS_INFERENCE__SHUTDOWN_TIMEOUT_S": "20"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(120):
            while not any("consuming imaging.image-captured.v1" in line for line in lines):
                line = (await proc.stdout.readline()).decode()
                assert line, "service exited early:\n" + "".join(lines[-20:])
                lines.append(line)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(60):
            rest = (await proc.stdout.read()).decode()
            code = await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, rest[-2000:]
    assert "stopping: finishing the batch in flight" in rest and "stopped" in rest
