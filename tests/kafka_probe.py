"""Helpers integration tests share to observe the real broker and wait for asynchronous effects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def wait_until(check: Callable[[], bool], what: str, limit_s: float = 60, every_s: float = 0.2) -> None:
    """Poll ``check`` until it is true; fail naming ``what`` after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every_s)


async def read_topic(bootstrap: str, topic: str, keep: Callable[[bytes], bool]) -> list[bytes]:
    """Every record of a topic (from the start) that ``keep`` accepts; reads until 2 s pass with nothing new."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[bytes] = []
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < 2.0:
            batch = await consumer.getmany(timeout_ms=300)
            if any(batch.values()):
                quiet_since = time.monotonic()
            out.extend(r.value for recs in batch.values() for r in recs if r.value is not None and keep(r.value))
    finally:
        await consumer.stop()
    return out


async def wait_committed(
    bootstrap: str, group_id: str, topics: Sequence[str], partitions: int = 3, limit_s: float = 60
) -> None:
    """Until ``group_id`` has committed every offset of ``topics`` (all records sent so far handled)."""
    # a consumer in the group that never subscribes: it only reads the group's committed offsets
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False)
    await probe.start()
    try:
        deadline = time.monotonic() + limit_s
        parts = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        while True:
            ends = await probe.end_offsets(parts)
            committed = {tp: (await probe.committed(tp)) or 0 for tp in parts}
            if all(committed[tp] >= end for tp, end in ends.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"group {group_id} did not catch up: {committed} vs {ends}")
            await asyncio.sleep(0.3)
    finally:
        await probe.stop()


async def create_topics(bootstrap: str, names: Sequence[str], partitions: int = 3) -> None:
    """Create topics (replication 1) before a consumer group subscribes to them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in names])
    finally:
        await admin.close()
