"""The hostile run's outside client (a plain aiokafka producer, S3, PostgreSQL) and its checks of the outputs.

Every verdict of ``axis_simulators.hostile`` comes from here, through the outputs only: rows in PostgreSQL, the
dead-letter topic (by the coordinates of each bad record), HTTP answers, canaries and each consumer's /health.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from axis_contracts import topics

from axis_simulators.hostile_corpus import Case

# the consumer group that owns each topic the hostile client writes to (its dead letter is the one checked)
OWNER = {topics.IMAGE_CAPTURED: "axis-inference", topics.USER_SCORED: "axis-discrepancy"}


@dataclass
class HostileReport:
    """What the run sent and found."""

    bad: int = 0
    classes: int = 0
    good: int = 0
    applied: int = 0
    rejected_once: int = 0
    stalls: int = 0
    http_5xx: int = 0
    problems: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Every good applied once, every bad rejected once, no stall, no 5xx."""
        return (
            self.applied == self.good
            and self.rejected_once == self.bad
            and self.stalls == 0
            and self.http_5xx == 0
            and not self.problems
        )

    def line(self) -> str:
        """The summary line the issue asks for."""
        return (
            f"hostile: {self.bad} bad inputs ({self.classes} classes), {self.good} good interleaved: "
            f"{self.applied} applied, {self.rejected_once} rejected once each, {self.stalls} stalls, "
            f"{self.http_5xx} 5xx"
        )


class Client:
    """The outside client: a plain aiokafka producer, an S3 client, HTTP, and PostgreSQL for the checks."""

    def __init__(self, settings: Any) -> None:
        from axis_adapters.objectstore import MinioObjectStore

        self.settings = settings
        self.store = MinioObjectStore(settings.s3)
        self.conninfo = settings.postgres.conninfo()
        self.producer: Any = None

    async def start(self) -> None:
        from aiokafka import AIOKafkaProducer

        # larger than any consumer limit: the broker takes it, the consumers must cope
        self.producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka.bootstrap_servers,
            acks="all",
            enable_idempotence=False,
            max_request_size=16 * 1024 * 1024,
        )
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()

    async def send(self, case: Case) -> None:
        assert case.topic is not None
        meta = await self.producer.send_and_wait(case.topic, case.value, key=case.key)
        case.partition, case.offset = meta.partition, meta.offset

    def upload(self, cases: list[Case]) -> None:
        for c in cases:
            for uri, data in c.objects.items():
                self.store.put_bytes(uri, data)

    def scored(self, event_ids: list[str]) -> Counter[str]:
        """Image scores per image event id."""
        return self._count(
            "SELECT image_event_id::text, count(*) FROM image_scores WHERE image_event_id = ANY(%s::uuid[]) GROUP BY 1",
            event_ids,
        )

    def applied(self, event_ids: list[str]) -> Counter[str]:
        """Stored user scores per event id (the table's key: at most one each)."""
        return self._count(
            "SELECT event_id::text, count(*) FROM user_scores WHERE event_id = ANY(%s::uuid[]) GROUP BY 1", event_ids
        )

    def _count(self, sql: str, ids: list[str]) -> Counter[str]:
        import psycopg

        with psycopg.connect(self.conninfo) as conn:
            return Counter({str(k): int(n) for k, n in conn.execute(sql, (ids,)).fetchall()})


def check_outputs(
    report: HostileReport,
    client: Client,
    letters: list[Any],
    good_images: list[Case],
    dups: list[Case],
    canaries: list[Case],
    good_users: list[Case],
    statuses: list[tuple[Case, int, str]],
    bad_cases: list[Case],
) -> None:
    by_coord: dict[tuple[Any, Any, Any], list[Any]] = {}
    for d in letters:
        by_coord.setdefault((d.source_topic, d.partition, d.offset), []).append(d)
    # good: applied exactly once, never dead-lettered
    images = good_images + canaries
    scored = client.scored([c.event_id for c in images if c.event_id])
    user_ids = [c.event_id for c in good_users if c.event_id]
    http_good = [(c, code) for c, code, _ in statuses if c.expect == "apply"]
    applied = client.applied(user_ids + [c.event_id for c, _ in http_good if c.event_id])
    distinct_http = {c.event_id for c, _ in http_good}
    report.good = len(images) + len(user_ids) + len(distinct_http)
    report.applied = sum(1 for c in images if scored.get(c.event_id or "") == 1)
    report.applied += sum(1 for e in user_ids if applied.get(e) == 1)
    report.applied += sum(1 for e in distinct_http if e and applied.get(e) == 1)
    for c in images:
        if scored.get(c.event_id or "") != 1:
            report.problems.append(f"good image {c.event_id} scored {scored.get(c.event_id or '', 0)} times")
    for c in [*images, *dups, *good_users]:
        if by_coord.get((c.topic, c.partition, c.offset)):
            report.problems.append(f"good record {c.topic}[{c.partition}]@{c.offset} was dead-lettered")
    for c, code in http_good:
        if code != 202:
            report.problems.append(f"good HTTP score {c.event_id} answered {code}")
    # bad: dead-lettered exactly once with its own reason, or refused with the expected 4xx
    kafka_bad_ok = 0
    for c in bad_cases:
        every = by_coord.get((c.topic, c.partition, c.offset), [])
        # the topic's own consumer dead-letters it once with its reason; another service that also reads the
        # topic (discrepancy reads ImageCaptured) may dead-letter it too, but at most once
        owner = OWNER.get(c.topic or "")
        mine = [d for d in every if d.consumer == owner]
        extra = Counter(d.consumer for d in every if d.consumer != owner)
        text = " ".join(f"{d.error_type} {d.error}" for d in mine).lower()
        if any(n > 1 for n in extra.values()):
            report.problems.append(f"{c.klass}: {c.topic}[{c.partition}]@{c.offset} dead-lettered {dict(extra)}")
        elif len(mine) != 1:
            report.problems.append(f"{c.klass}: {c.topic}[{c.partition}]@{c.offset} dead-lettered {len(mine)} times")
        elif c.reason.lower() not in text:
            report.problems.append(f"{c.klass}: expected reason {c.reason!r}, got {text[:200]!r}")
        elif len(c.value) > 65_536 and not _whole_copy_ok(client, mine[0], c.value):
            report.problems.append(f"{c.klass}: the whole {len(c.value)}-byte message is not in the object store")
        else:
            kafka_bad_ok += 1
    refusals = [(c, code, text) for c, code, text in statuses if c.expect == "refuse"]
    http_ok = 0
    for c, code, text in refusals:
        if str(code) == c.reason:
            http_ok += 1
        else:
            report.problems.append(f"HTTP {c.klass}: expected {c.reason}, got {code}: {text[:200]}")
    report.http_5xx = sum(1 for _, code, _ in statuses if code >= 500)
    report.bad = len(bad_cases) + len(refusals)
    report.classes = len({c.klass for c in bad_cases} | {c.klass for c, _, _ in refusals})
    report.rejected_once = kafka_bad_ok + http_ok


def any_scored(client: Client, ids: list[str]) -> bool:
    return len(client.scored(ids)) > 0


def _whole_copy_ok(client: Client, letter: Any, value: bytes) -> bool:
    if not (letter.raw_truncated and letter.raw_uri and letter.raw_sha256 == hashlib.sha256(value).hexdigest()):
        return False
    return hashlib.sha256(client.store.get_bytes(letter.raw_uri)).hexdigest() == letter.raw_sha256


async def check_moving(
    report: HostileReport, http: Any, health_urls: list[str], canaries: list[Case], users: list[Case], client: Client
) -> int:
    """Stalls: partitions whose canaries were not applied, plus each consumer whose /health is not ok with lag 0."""
    stalls = 0
    scored = client.scored([c.event_id for c in canaries if c.event_id])
    applied = client.applied([c.event_id for c in users if c.event_id])
    for name, cases, done in (("images", canaries, scored), ("user scores", users, applied)):
        parts = {c.partition for c in cases}
        stuck = {c.partition for c in cases if done.get(c.event_id or "") != 1}
        stalls += len(stuck)
        if stuck:
            report.problems.append(
                f"{name}: partitions {sorted(map(str, stuck))} did not move (of {sorted(map(str, parts))})"
            )
    for url in health_urls:
        body: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while True:  # the lag is read every second: wait for it to reach 0
            r = await http.get(f"{url}/health")
            body = r.json()
            if r.status_code == 200 and body.get("status") == "ok" and body["consumer"]["lag_total"] == 0:
                break
            if time.monotonic() > deadline:
                report.problems.append(f"{url}/health after the run: {json.dumps(body)[:400]}")
                stalls += 1
                break
            await asyncio.sleep(1)
    return stalls
