"""Kafka helpers shared by the services: broker factory, event publishing and the dead-letter sink."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from axis_contracts import DeadLetter, Event, topics

from axis_adapters.objectstore import make_uri
from axis_adapters.retry import is_transient
from axis_adapters.settings import KafkaSettings

log = logging.getLogger(__name__)

JSON_HEADERS = {"content-type": "application/json"}


def make_broker(settings: KafkaSettings, **kwargs: Any) -> Any:
    """A FastStream KafkaBroker for the configured bootstrap servers (acks=all, no idempotence: tansu)."""
    from faststream.kafka import KafkaBroker

    kwargs.setdefault("max_request_size", settings.max_request_size)
    return KafkaBroker(settings.bootstrap_servers, acks="all", enable_idempotence=False, **kwargs)


def consumer_options(settings: KafkaSettings) -> dict[str, Any]:
    """Subscriber options every consumer group uses: start from the beginning, short group timeouts.

    A partition fetch may hold a record as large as a producer may send (a too-large event is then
    dead-lettered by the consumer instead of being unreadable).
    """
    return {
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
        "max_partition_fetch_bytes": settings.max_request_size,
    }


class Publisher(Protocol):
    """Anything with FastStream's ``publish`` (a KafkaBroker, or a fake in unit tests)."""

    async def publish(self, message: Any, topic: str, *, key: bytes | None = ..., headers: Any = ...) -> Any: ...


async def publish_event(broker: Publisher, event: Event, *, topic: str | None = None) -> None:
    """Publish an event as JSON, keyed by its experiment key, on its topic."""
    key = event.key()
    await broker.publish(
        event.to_bytes(),
        topic=topic or event.TOPIC,
        key=key.encode() if key else None,
        headers=JSON_HEADERS,
    )


@dataclass(frozen=True)
class RawRecord:
    """The parts of a consumed Kafka record needed to dead-letter or replay it."""

    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes

    @classmethod
    def from_consumer_record(cls, rec: Any) -> RawRecord:
        """From an aiokafka ConsumerRecord."""
        return cls(
            topic=rec.topic,
            partition=getattr(rec, "partition", None),
            offset=getattr(rec, "offset", None),
            key=rec.key,
            value=rec.value or b"",
        )


def records_of(message: Any) -> list[RawRecord]:
    """The raw records behind a FastStream KafkaMessage (single message or batch)."""
    raw = message.raw_message
    recs: Sequence[Any] = raw if isinstance(raw, list | tuple) else [raw]
    return [RawRecord.from_consumer_record(r) for r in recs]


DEAD_LETTER_NAMESPACE = uuid.UUID("0b7d3c1e-52a4-4f0e-8f59-3c5e1a9d2b77")
DEAD_LETTER_BUCKET = "axis-dead-letters"


def dead_letter_id(consumer: str, record: RawRecord) -> uuid.UUID:
    """The same record rejected by the same consumer always gets the same dead-letter id (dedupe key)."""
    if record.partition is None or record.offset is None:
        return uuid.uuid4()
    return uuid.uuid5(DEAD_LETTER_NAMESPACE, f"{consumer}|{record.topic}|{record.partition}|{record.offset}")


class DeadLetterSink:
    """Publishes rejected messages with their reason to the dead-letter topic; cannot fail on content.

    - A raw message longer than ``keep_bytes`` is kept here truncated, with its length and SHA-256; with a
      ``store`` the whole message is copied to ``s3://axis-dead-letters/...`` first and ``raw_uri`` names it.
    - A broker refusal caused by the dead letter's content (too large) is permanent: the sink then sends the
      bare dead letter (reason, coordinates, hash, URI, no raw bytes). Only a broker that cannot be reached
      raises (transient: the caller's batch is retried).
    - ``reject_once`` (with a ``pool``) claims each record's coordinates in PostgreSQL in the transaction that
      publishes its dead letter, so a redelivered batch or a restarted consumer does not dead-letter it again.
    """

    def __init__(
        self,
        broker: Publisher,
        consumer: str,
        *,
        store: Any | None = None,
        bucket: str = DEAD_LETTER_BUCKET,
        keep_bytes: int = 65_536,
        pool: Any | None = None,
    ) -> None:
        self._broker = broker
        self._consumer = consumer
        self._store = store
        self._bucket = bucket
        self._keep = keep_bytes
        self._pool = pool
        self._bucket_ready = False
        self.count = 0
        self.by_reason: Counter[str] = Counter()

    async def reject(self, record: RawRecord, error: Exception | str, *, attempts: int = 1) -> DeadLetter:
        """Dead-letter one record; logs the reason (never the payload's secrets: payloads carry none)."""
        raw_uri = await self._keep_whole(record)
        dl = DeadLetter.wrap(
            raw=record.value,
            source_topic=record.topic,
            error=error,
            consumer=self._consumer,
            keep_bytes=self._keep,
            raw_uri=raw_uri,
            event_id=dead_letter_id(self._consumer, record),
            partition=record.partition,
            offset=record.offset,
            source_key=_key_text(record.key),
            attempts=attempts,
        )
        try:
            await self._broker.publish(dl.to_bytes(), topic=topics.DEAD_LETTER, key=record.key, headers=JSON_HEADERS)
        except Exception as exc:
            if is_transient(exc):
                raise
            log.error(
                "dead letter refused by the broker (%s: %s); sending it without the raw message",
                type(exc).__name__,
                exc,
            )
            dl = dl.model_copy(update={"raw_value": "", "raw_encoding": "utf-8", "raw_truncated": True})
            await self._broker.publish(dl.to_bytes(), topic=topics.DEAD_LETTER, key=None, headers=JSON_HEADERS)
        self.count += 1
        self.by_reason[dl.error_type] += 1
        log.warning(
            "dead-lettered %s[%s]@%s: %s: %s",
            record.topic,
            record.partition,
            record.offset,
            dl.error_type,
            dl.error[:500],
        )
        return dl

    async def reject_once(self, rejects: Sequence[tuple[RawRecord, Exception | str]]) -> list[DeadLetter]:
        """Dead-letter each record unless this consumer dead-lettered it before; returns the ones sent now."""
        if not rejects:
            return []
        if self._pool is None:
            return [await self.reject(rec, why) for rec, why in rejects]
        sent = []
        async with self._pool.connection() as conn, conn.transaction():
            fresh = await claim_dead_letters(conn, self._consumer, [r for r, _ in rejects])
            for rec, why in rejects:
                if _coords(rec) is None or _coords(rec) in fresh:
                    sent.append(await self.reject(rec, why))
        return sent

    async def _keep_whole(self, record: RawRecord) -> str | None:
        if self._store is None or len(record.value) <= self._keep:
            return None
        digest = hashlib.sha256(record.value).hexdigest()
        key = f"{self._consumer}/{record.topic}/{record.partition}-{record.offset}-{digest[:16]}.bin"
        uri = make_uri(self._bucket, key)
        if not self._bucket_ready:
            await asyncio.to_thread(self._store.ensure_bucket, self._bucket)
            self._bucket_ready = True
        await asyncio.to_thread(self._store.put_bytes, uri, record.value)
        return uri


def _key_text(key: bytes | None) -> str | None:
    return key[:512].decode("utf-8", "replace") if key else None


def _coords(rec: RawRecord) -> tuple[str, int, int] | None:
    if rec.partition is None or rec.offset is None:
        return None
    return (rec.topic, rec.partition, rec.offset)


async def claim_dead_letters(conn: Any, consumer: str, records: Sequence[RawRecord]) -> set[tuple[str, int, int]]:
    """Claim the records' coordinates for ``consumer``; the ones claimed now (not before) are returned."""
    coords = sorted({c for c in (_coords(r) for r in records) if c is not None})
    if not coords:
        return set()
    cur = await conn.execute(
        "INSERT INTO dead_letter_claims (consumer, topic, partition_no, offset_no) "
        "SELECT %s, t, p, o FROM unnest(%s::text[], %s::int[], %s::bigint[]) AS x(t, p, o) "
        "ON CONFLICT DO NOTHING RETURNING topic, partition_no, offset_no",
        (consumer, [c[0] for c in coords], [c[1] for c in coords], [c[2] for c in coords]),
    )
    return {(str(t), int(p), int(o)) for t, p, o in await cur.fetchall()}
