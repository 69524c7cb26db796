"""A LIMS written with confluent-kafka (librdkafka), not aiokafka, against the embedded broker and the real
discrepancy service: it consumes CrystalScored in its own consumer group, answers with UserScored, and the
disagreements come back as comparisons and DiscrepancyFound events (docs/lims.md, "Tested clients")."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from axis_adapters.kafka import make_broker, publish_event
from axis_contracts import DEFAULT_SCHEME, CrystalScored, DiscrepancyFound, ModeScore, UserScored, topics
from axis_core.discrepancy import discrepancy_kind, ml_label
from axis_discrepancy.app import RunningService
from axis_discrepancy.settings import DiscrepancySettings
from discrepancy_harness import discrepancy_settings, query
from kafka_probe import create_topics, read_topic, wait_committed, wait_until

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
PLATE = f"CFK-{RUN}"
GROUP = f"lims-{RUN}"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
THRESHOLD = 0.5
# well -> (the model's crystal probability, the class the scientist enters): agreements and both disagreements
CASES: dict[str, tuple[float, str]] = {
    "A1": (0.93, "single_crystals"),
    "A2": (0.88, "precipitate"),
    "A3": (0.07, "clear"),
    "A4": (0.12, "microcrystals"),
    "A5": (0.71, "phase_separation"),
    "A6": (0.64, "Single Crystals"),  # the LIMS's own spelling: matched ignoring case and spaces
}


def inspection(well: str) -> str:
    return f"{PLATE}-{well}-d1"


def scored(well: str) -> CrystalScored:
    p = CASES[well][0]
    mode = ModeScore(
        probability=p,
        threshold=THRESHOLD,
        model_name="axis-visible",
        model_version="1",
        image_uri=f"s3://axis-images/{PLATE}/{well}.png",
        image_event_id=uuid.uuid4(),
    )
    return CrystalScored(
        producer="axis-inference",
        plate_barcode=PLATE,
        well=well,
        inspection_id=inspection(well),
        imaged_at=T0,
        scores={"visible": mode},
        fused_probability=p,
        label=ml_label(p, THRESHOLD),
        threshold=THRESHOLD,
        model_name="axis-visible",
        model_version="1",
        scored_at=T0 + timedelta(minutes=5),
    )


@pytest.fixture(scope="module")
def settings(stack: Any) -> DiscrepancySettings:
    return discrepancy_settings(stack, f"cfk-{RUN}", f"lims-key-{RUN}", max_records=100, batch_timeout_ms=50)


@pytest.fixture(scope="module")
async def service(settings: DiscrepancySettings) -> AsyncIterator[RunningService]:
    opts = settings.discrepancy
    await create_topics(settings.kafka.bootstrap_servers, [opts.crystal_scored_topic, opts.user_scored_topic])
    running = await RunningService.start(settings)
    yield running
    await running.stop()


@dataclass
class LimsRun:
    """What the confluent-kafka LIMS saw and did."""

    consumed: dict[str, Any] = field(default_factory=dict)  # inspection -> (key, headers, CrystalScored)
    delivered: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # inspection -> (key, partition)
    errors: list[str] = field(default_factory=list)


def run_lims(bootstrap: str, settings: DiscrepancySettings, limit_s: float = 90) -> LimsRun:
    """The LIMS: consume CrystalScored in group GROUP, produce one UserScored per inspection, commit the offsets."""
    from confluent_kafka import Consumer, Producer

    opts, kafka = settings.discrepancy, settings.kafka
    out = LimsRun()
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": GROUP,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": kafka.session_timeout_ms,
            "heartbeat.interval.ms": kafka.heartbeat_interval_ms,
        }
    )
    # murmur2_random: the partitioner of the Java client and of aiokafka (AXIS's own producers)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "partitioner": "murmur2_random"})

    def delivered(err: Any, msg: Any) -> None:
        if err is not None:
            out.errors.append(f"delivery failed: {err}")
        else:
            out.delivered[UserScored.model_validate_json(msg.value()).inspection_id or "?"] = (
                msg.key(),
                msg.partition(),
            )

    try:
        consumer.subscribe([opts.crystal_scored_topic])
        deadline = time.monotonic() + limit_s
        while len(out.consumed) < len(CASES) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                out.errors.append(f"consume: {msg.error()}")
                continue
            event = CrystalScored.model_validate_json(msg.value())
            if event.plate_barcode != PLATE or event.inspection_id in out.consumed:
                continue
            out.consumed[event.inspection_id] = (msg.key(), dict(msg.headers() or []), event)
            user = UserScored(
                producer="lims",
                inspection_id=event.inspection_id,
                plate_barcode=event.plate_barcode,
                well=event.well,
                drop=event.drop,
                user_id=f"scientist-{event.well}",
                score=CASES[event.well][1],
                scored_at=T0 + timedelta(hours=1),
            )
            producer.produce(
                opts.user_scored_topic,
                value=user.to_bytes(),
                key=(user.key() or "").encode(),
                headers=[("content-type", b"application/json")],
                on_delivery=delivered,
            )
            producer.poll(0)
        if producer.flush(30) != 0:
            out.errors.append("the producer did not deliver everything within 30 s")
        consumer.commit(asynchronous=False)  # offsets after the answers are delivered: at least once
    finally:
        consumer.close()
    return out


async def test_a_confluent_kafka_lims_gets_scores_and_its_scores_are_compared(
    service: RunningService, settings: DiscrepancySettings
) -> None:
    opts, bootstrap = settings.discrepancy, settings.kafka.bootstrap_servers
    publisher = make_broker(settings.kafka)
    await publisher.start()
    try:  # the inference service's side: CrystalScored exactly as it publishes them
        for well in CASES:
            await publish_event(publisher, scored(well), topic=opts.crystal_scored_topic)
    finally:
        await publisher.stop()
    # the discrepancy service has seen the ML scores (so it knows the inspections) before any user score arrives
    await wait_committed(bootstrap, opts.group_id, [opts.crystal_scored_topic])

    lims = await asyncio.to_thread(run_lims, bootstrap, settings)
    assert lims.errors == []
    assert set(lims.consumed) == {inspection(w) for w in CASES}
    for iid, (key, headers, event) in lims.consumed.items():
        assert key == event.key().encode() == f"{PLATE}:{event.well}:1".encode(), iid
        assert headers.get("content-type") == b"application/json"
        assert event.label == ml_label(CASES[event.well][0], THRESHOLD)
    # the group's offsets, committed by librdkafka, are what the project's own client (aiokafka) reads back
    await wait_committed(bootstrap, GROUP, [opts.crystal_scored_topic], limit_s=30)
    # with murmur2_random, a LIMS's key lands on the partition the project's producers (aiokafka) choose for it
    from aiokafka.partitioner import DefaultPartitioner

    for iid, (key, partition) in lims.delivered.items():
        assert partition == DefaultPartitioner()(key, [0, 1, 2], [0, 1, 2]), iid

    like = f"{PLATE}-%"
    await wait_until(
        lambda: (
            query(settings, "SELECT count(*) FROM comparisons WHERE inspection_id LIKE %s", like)[0][0] == len(CASES)
        ),
        "a comparison per inspection",
    )
    rows = query(
        settings,
        "SELECT inspection_id, agrees, kind, human_class, user_id, ml_probability FROM comparisons "
        "WHERE inspection_id LIKE %s",
        like,
    )
    expected = {
        inspection(w): discrepancy_kind(ml_label(p, THRESHOLD), DEFAULT_SCHEME.to_label(DEFAULT_SCHEME.normalise(s)))
        for w, (p, s) in CASES.items()
    }
    got = {r[0]: r[1:] for r in rows}
    for w, (p, s) in CASES.items():
        kind = expected[inspection(w)]
        agrees, got_kind, human_class, user, prob = got[inspection(w)]
        assert (agrees, got_kind) == (kind is None, kind.value if kind else None), w
        assert (human_class, user, prob) == (DEFAULT_SCHEME.normalise(s), f"scientist-{w}", p)
    disagreements = {i: k for i, k in expected.items() if k is not None}
    assert len(disagreements) == 3 and len(expected) - len(disagreements) == 3

    await wait_until(
        lambda: (
            query(
                settings,
                "SELECT count(*) FROM discrepancies WHERE inspection_id LIKE %s AND published_at IS NULL",
                like,
            )[0][0]
            == 0
        ),
        "the outbox flushed",
    )
    found = [
        DiscrepancyFound.model_validate_json(raw)
        for raw in await read_topic(bootstrap, topics.DISCREPANCY_FOUND, lambda raw: PLATE.encode() in raw)
    ]
    assert sorted((f.inspection_id, f.kind) for f in found) == sorted(disagreements.items())
    assert {f.user_id for f in found} == {f"scientist-{i.split('-')[-2]}" for i in disagreements}
