"""Kafka helpers shared by the services: broker factory, event publishing and the dead-letter sink."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from axis_contracts import DeadLetter, Event, topics

from axis_adapters.settings import KafkaSettings

log = logging.getLogger(__name__)

JSON_HEADERS = {"content-type": "application/json"}


def make_broker(settings: KafkaSettings, **kwargs: Any) -> Any:
    """A FastStream KafkaBroker for the configured bootstrap servers (acks=all, no idempotence: tansu)."""
    from faststream.kafka import KafkaBroker

    return KafkaBroker(settings.bootstrap_servers, acks="all", enable_idempotence=False, **kwargs)


def consumer_options(settings: KafkaSettings) -> dict[str, Any]:
    """Subscriber options every consumer group uses: start from the beginning, short group timeouts."""
    return {
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.session_timeout_ms,
        "heartbeat_interval_ms": settings.heartbeat_interval_ms,
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


class DeadLetterSink:
    """Publishes rejected messages with their reason to the dead-letter topic."""

    def __init__(self, broker: Publisher, consumer: str) -> None:
        self._broker = broker
        self._consumer = consumer
        self.count = 0

    async def reject(self, record: RawRecord, error: Exception | str, *, attempts: int = 1) -> DeadLetter:
        """Dead-letter one record; logs the reason (never the payload's secrets: payloads carry none)."""
        dl = DeadLetter.wrap(
            raw=record.value,
            source_topic=record.topic,
            error=error,
            consumer=self._consumer,
            partition=record.partition,
            offset=record.offset,
            source_key=record.key.decode("utf-8", "replace") if record.key else None,
            attempts=attempts,
        )
        await self._broker.publish(dl.to_bytes(), topic=topics.DEAD_LETTER, key=record.key, headers=JSON_HEADERS)
        self.count += 1
        log.warning(
            "dead-lettered %s[%s]@%s: %s: %s", record.topic, record.partition, record.offset, dl.error_type, dl.error
        )
        return dl


@dataclass
class FakePublisher:
    """Unit-test fake: records what was published."""

    published: list[tuple[str, bytes | None, bytes]]

    def __init__(self) -> None:
        self.published = []

    async def publish(self, message: Any, topic: str, *, key: bytes | None = None, headers: Any = None) -> None:
        self.published.append((topic, key, message if isinstance(message, bytes) else str(message).encode()))

    def on(self, topic: str) -> list[bytes]:
        """Messages published on a topic, in order."""
        return [m for t, _, m in self.published if t == topic]
