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
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from axis_adapters.kafka import make_broker, publish_event
from axis_contracts import CrystalScored, ModeScore, UserScored, topics
from axis_core.discrepancy import ml_label
from axis_discrepancy.app import serve
from axis_discrepancy.settings import DiscrepancyOptions, DiscrepancySettings, LimsOptions
from kafka_probe import read_topic
from pydantic import SecretStr

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

    opts = DiscrepancyOptions(
        group_id=f"axis-discrepancy-rc-{RUN}",
        crystal_scored_topic=f"rc-{RUN}.crystal-scored",
        user_scored_topic=f"rc-{RUN}.user-scored",
        max_records=50,
        batch_timeout_ms=50,
        retry_delay_s=0.2,
        retry_max_delay_s=2.0,
        attempt_timeout_s=10.0,
        watchdog_interval_s=0.5,
    )
    settings = DiscrepancySettings(  # type: ignore[call-arg]
        _env_file=str(stack.env_file), discrepancy=opts, lims=LimsOptions(api_key=SecretStr(f"k-{RUN}"))
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka.bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, 3, 1) for t in (opts.crystal_scored_topic, opts.user_scored_topic)])
    finally:
        await admin.close()
    conninfo = settings.postgres.conninfo()
    with psycopg.connect(conninfo, autocommit=True) as conn:  # the images: a user score may come before its ML score
        conn.cursor().executemany(
            "INSERT INTO images (image_event_id, inspection_id, plate_barcode, plate_type, well, drop_no, "
            "imaging_mode, image_uri, imager_id, imaged_at) VALUES (%s, %s, %s, '96', %s, 1, 'visible', %s, 'it', %s)",
            [
                (
                    uuid.uuid4(),
                    ml.inspection_id,
                    ml.plate_barcode,
                    ml.well,
                    f"s3://axis-images/{ml.inspection_id}.png",
                    ml.imaged_at,
                )
                for ml, _ in (events(i) for i in range(70))
            ],  # fmt: skip
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
