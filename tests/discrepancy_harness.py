"""Discrepancy integration harness: 200 known inspections, the service and producer fixtures, probes."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import kafka_probe
import psycopg
import pytest
from axis_adapters.kafka import make_broker, publish_event
from axis_contracts import (
    DEFAULT_SCHEME,
    CrystalScored,
    DiscrepancyFound,
    ImageCaptured,
    ImagingMode,
    ModeScore,
    UserScored,
)
from axis_core.discrepancy import discrepancy_kind, ml_label
from axis_discrepancy.app import RunningService
from axis_discrepancy.settings import DiscrepancyOptions, DiscrepancySettings, LimsOptions
from kafka_probe import wait_committed
from pydantic import SecretStr

RUN = uuid.uuid4().hex[:8]
PREFIX = f"dit-{RUN}"
N = 200
KEY = f"lims-key-{RUN}"
T0 = datetime(2026, 2, 2, 8, 0, tzinfo=UTC)
CLASSES = list(DEFAULT_SCHEME.classes)


class Case:
    """One inspection with its truth, its ML score and the user's score (the truth)."""

    def __init__(self, i: int, rng: random.Random) -> None:
        self.iid = f"{PREFIX}-{i:03d}"
        self.plate = f"{PREFIX}-P{i // 96}"
        self.well = f"{'ABCDEFGH'[(i % 96) // 12]}{i % 12 + 1}"
        self.truth = CLASSES[i % len(CLASSES)]
        self.threshold = 0.3 if i % 5 == 0 else 0.5
        self.p = 0.0 if i % 17 == 0 else round(rng.random(), 3)
        self.image_event = uuid.uuid4()
        self.ml = CrystalScored(
            producer="it",
            plate_barcode=self.plate,
            well=self.well,
            inspection_id=self.iid,
            imaged_at=T0 + timedelta(minutes=i),
            scores={
                "visible": ModeScore(
                    probability=self.p,
                    threshold=self.threshold,
                    model_name="axis-visible",
                    model_version="1",
                    image_uri=f"s3://axis-images/{self.iid}.png",
                    image_event_id=self.image_event,
                )
            },  # fmt: skip
            fused_probability=self.p,
            label=ml_label(self.p, self.threshold),
            threshold=self.threshold,
            model_name="axis-visible",
            model_version="1",
            scored_at=T0 + timedelta(hours=1),
        )
        self.user = UserScored(
            producer="it",
            inspection_id=self.iid,
            user_id=f"u{i % 3}",
            score=self.truth,
            scored_at=T0 + timedelta(hours=2),
        )
        self.kind = discrepancy_kind(ml_label(self.p, self.threshold), DEFAULT_SCHEME.to_label(self.truth))


CASES = [Case(i, random.Random(1000 + i)) for i in range(N)]


def discrepancy_settings(stack: Any, tag: str, key: str, **options: Any) -> DiscrepancySettings:
    """Settings for a service on the embedded stack with its own consumer group and topics named by ``tag``."""
    opts = DiscrepancyOptions(
        group_id=f"axis-discrepancy-{tag}",
        crystal_scored_topic=f"{tag}.crystal-scored",
        user_scored_topic=f"{tag}.user-scored",
        image_captured_topic=f"{tag}.image-captured",
        curator_labelled_topic=None,
        retry_delay_s=0.2,
        **options,
    )
    return DiscrepancySettings(  # type: ignore[call-arg]
        _env_file=str(stack.env_file), discrepancy=opts, lims=LimsOptions(api_key=SecretStr(key))
    )


def captured(settings: DiscrepancySettings, inspection_ids: list[str]) -> int:
    """How many of these inspections the service has learnt from ImageCaptured (its own table)."""
    with psycopg.connect(settings.postgres.conninfo(), autocommit=True, connect_timeout=5) as conn:
        row = conn.execute(
            "SELECT count(*) FROM captured_inspections WHERE inspection_id = ANY(%s)", (inspection_ids,)
        ).fetchone()
    return int(row[0]) if row else 0


async def wait_captured(settings: DiscrepancySettings, inspection_ids: list[str], limit_s: float = 90) -> None:
    """Until the running service has consumed these announcements (a score sent before would find no
    inspection: the topics are read independently)."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while captured(settings, inspection_ids) < len(set(inspection_ids)):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the service did not learn {len(inspection_ids)} inspections in {limit_s} s")
        await asyncio.sleep(0.3)


async def announce_images(settings: DiscrepancySettings, rows: list[tuple[Any, ...]]) -> None:
    """ImageCaptured for (event id, inspection, plate, well, uri, imaged_at) on the service's image topic, as the
    imaging robots do: a user score may then precede its ML score (the service learns the inspection exists)."""
    topic = settings.discrepancy.image_captured_topic
    assert topic is not None
    await kafka_probe.create_topics(settings.kafka.bootstrap_servers, [topic])
    broker = make_broker(settings.kafka)
    await broker.start()
    try:
        for event_id, iid, plate, well, uri, imaged_at in rows:
            ev = ImageCaptured(
                event_id=event_id, producer="it-robot", plate_barcode=plate, well=well, inspection_id=iid,
                imaged_at=imaged_at, imaging_mode=ImagingMode.VISIBLE, image_uri=uri,
            )  # fmt: skip
            await publish_event(broker, ev, topic=topic)
    finally:
        await broker.stop()


@pytest.fixture(scope="module")
def settings(stack: Any) -> DiscrepancySettings:
    return discrepancy_settings(stack, f"it-{RUN}", KEY, max_records=300, batch_timeout_ms=50)


@pytest.fixture(scope="module")
async def service(settings: DiscrepancySettings) -> AsyncIterator[RunningService]:
    opts = settings.discrepancy
    topics_ = [opts.crystal_scored_topic, opts.user_scored_topic]
    await kafka_probe.create_topics(settings.kafka.bootstrap_servers, topics_)
    await announce_images(
        settings,
        [(c.image_event, c.iid, c.plate, c.well, f"s3://axis-images/{c.iid}.png", c.ml.imaged_at) for c in CASES],
    )
    running = await RunningService.start(settings)
    await wait_captured(settings, [c.iid for c in CASES])
    yield running
    await running.stop()


@pytest.fixture(scope="module")
async def producer(settings: DiscrepancySettings) -> AsyncIterator[Any]:
    broker = make_broker(settings.kafka)
    await broker.start()
    yield broker
    await broker.stop()


@pytest.fixture(scope="module")
def send(producer: Any, settings: DiscrepancySettings) -> Callable[[list[CrystalScored | UserScored]], Awaitable[None]]:
    opts = settings.discrepancy

    async def _send(events: list[CrystalScored | UserScored]) -> None:
        for ev in events:
            topic = opts.crystal_scored_topic if isinstance(ev, CrystalScored) else opts.user_scored_topic
            await publish_event(producer, ev, topic=topic)

    return _send


async def send_raw(producer: Any, topic: str, payload: dict[str, Any]) -> None:
    await producer.publish(json.dumps(payload).encode(), topic=topic, headers={"content-type": "application/json"})


def query(settings: DiscrepancySettings, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(settings.postgres.conninfo(), autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


async def wait_consumed(settings: DiscrepancySettings, limit_s: float = 60) -> None:
    """Until the service's group has committed every offset of its two topics (all sent events handled)."""
    opts = settings.discrepancy
    topics_ = (opts.crystal_scored_topic, opts.user_scored_topic)
    await wait_committed(settings.kafka.bootstrap_servers, opts.group_id, topics_, limit_s=limit_s)


async def read_topic(settings: DiscrepancySettings, topic: str, keep: Callable[[bytes], bool]) -> list[bytes]:
    """Every record of a topic that ``keep`` accepts (see kafka_probe.read_topic)."""
    return await kafka_probe.read_topic(settings.kafka.bootstrap_servers, topic, keep)


def found_events(raw: list[bytes]) -> list[DiscrepancyFound]:
    return [DiscrepancyFound.model_validate_json(v) for v in raw]


def snapshot(settings: DiscrepancySettings) -> dict[str, list[tuple[Any, ...]]]:
    like = PREFIX + "-%"
    return {
        "comparisons": query(
            settings,
            "SELECT inspection_id, agrees, kind, revision, user_event_id, ml_event_id "
            "FROM comparisons WHERE inspection_id LIKE %s ORDER BY 1",
            like,
        ),  # fmt: skip
        "history": query(
            settings,
            "SELECT inspection_id, revision, agrees FROM comparison_history WHERE inspection_id LIKE %s ORDER BY 1, 2",
            like,
        ),  # fmt: skip
        "items": query(
            settings,
            "SELECT id, inspection_id, kind, status FROM discrepancies WHERE inspection_id LIKE %s ORDER BY 1",
            like,
        ),  # fmt: skip
        "user_scores": query(settings, "SELECT event_id FROM user_scores WHERE inspection_id LIKE %s ORDER BY 1", like),
        "ml": query(settings, "SELECT event_id FROM ml_score_history WHERE inspection_id LIKE %s ORDER BY 1", like),
    }


def is_ours(raw: bytes) -> bool:
    return PREFIX.encode() in raw
