"""The discrepancy service rides out a PostgreSQL restart: nothing lost, nothing doubled, nothing dead-lettered."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from axis_adapters.kafka import make_broker, publish_event
from axis_contracts import CrystalScored, ModeScore, UserScored, topics
from axis_core.discrepancy import ml_label
from axis_discrepancy.app import serve
from discrepancy_harness import announce_images, discrepancy_settings, wait_captured
from kafka_probe import create_topics, read_topic

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
PREFIX = f"drc-{RUN}"
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def events(i: int) -> tuple[CrystalScored, UserScored]:
    """An ML score and the user's score of inspection ``i`` (even: disagree when p >= 0.5)."""
    iid = f"{PREFIX}-{i:03d}"
    p = (i * 37 % 100) / 100
    ml = CrystalScored(
        producer="it",
        plate_barcode=f"{PREFIX}-P",
        well=f"A{i % 12 + 1}",
        inspection_id=iid,
        imaged_at=T0 + timedelta(minutes=i),
        scores={
            "visible": ModeScore(
                probability=p,
                threshold=0.5,
                model_name="axis-visible",
                model_version="1",
                image_uri=f"s3://axis-images/{iid}.png",
                image_event_id=uuid.uuid4(),
            )
        },
        fused_probability=p,
        label=ml_label(p, 0.5),
        threshold=0.5,
        model_name="axis-visible",
        model_version="1",
        scored_at=T0 + timedelta(hours=1),
    )
    user = UserScored(
        producer="it",
        inspection_id=iid,
        user_id="it-user",
        score="clear" if i % 2 else "single_crystals",
        scored_at=T0 + timedelta(hours=2),
    )
    return ml, user


def counts(conninfo: str) -> tuple[int, int]:
    """(inspections compared, comparison revisions) of this run."""
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(DISTINCT inspection_id), count(*) FROM comparison_history WHERE inspection_id LIKE %s",
            (PREFIX + "-%",),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


async def until(check: Callable[[], bool], limit_s: float, what: str) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        try:
            if await asyncio.to_thread(check):
                return
        except psycopg.OperationalError:
            pass  # PostgreSQL still coming back
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.5)


async def dead_letters(bootstrap: str) -> list[bytes]:
    return await read_topic(bootstrap, topics.DEAD_LETTER, lambda raw: PREFIX.encode() in raw)


async def test_a_postgres_restart_is_waited_out_and_consuming_resumes(stack: Any) -> None:
    from axis_stack import start_component, stop_component

    settings = discrepancy_settings(
        stack,
        f"rc-{RUN}",
        f"k-{RUN}",
        max_records=50,
        batch_timeout_ms=50,
        retry_max_delay_s=2.0,
        attempt_timeout_s=10.0,
        watchdog_interval_s=0.5,
    )
    opts = settings.discrepancy
    await create_topics(settings.kafka.bootstrap_servers, [opts.crystal_scored_topic, opts.user_scored_topic])
    conninfo = settings.postgres.conninfo()
    images = [events(i)[0] for i in range(70)]
    await announce_images(
        settings,
        [
            (
                uuid.uuid4(),
                m.inspection_id,
                m.plate_barcode,
                m.well,
                f"s3://axis-images/{m.inspection_id}.png",
                m.imaged_at,
            )
            for m in images
        ],
    )
    producer = make_broker(settings.kafka)
    await producer.start()

    async def send(first: int, n: int) -> None:
        for i in range(first, first + n):
            ml, user = events(i)
            await publish_event(producer, ml, topic=opts.crystal_scored_topic)
            await publish_event(producer, user, topic=opts.user_scored_topic)

    stop = asyncio.Event()
    serving = asyncio.create_task(serve(settings, stop))
    try:
        await wait_captured(settings, [m.inspection_id for m in images])
        await send(0, 30)
        await until(lambda: counts(conninfo)[0] >= 30, 90, "the first 30 comparisons")

        await asyncio.to_thread(stop_component, stack.data_dir, "postgres")
        try:
            await send(30, 30)  # arrive while PostgreSQL is down
            await asyncio.sleep(4)
            assert not serving.done(), "the service stopped during the outage"
        finally:
            await asyncio.to_thread(start_component, stack.data_dir, "postgres")
        await send(60, 10)
        await until(lambda: counts(conninfo)[0] >= 70, 120, "comparisons after PostgreSQL came back")
        await asyncio.sleep(1)  # let a redelivered batch land, if any
        assert counts(conninfo) == (70, 70)  # every inspection compared, none twice
        assert not serving.done()
        assert await dead_letters(settings.kafka.bootstrap_servers) == [], "a transient failure was dead-lettered"
    finally:
        stop.set()
        code = await asyncio.wait_for(serving, timeout=60)
        await producer.stop()
    assert code == 0
