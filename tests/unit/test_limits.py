"""The contracts' limits and the dead-letter path that cannot fail on content (issue: one bad message...)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, MessageSizeTooLargeError
from axis_adapters.kafka import DeadLetterSink, RawRecord, dead_letter_id
from axis_adapters.retry import classify
from axis_cli.dlq import original_bytes
from axis_contracts import DeadLetter, ImageCaptured, InvalidEvent, UserScored, parse_event, topics
from axis_contracts.limits import MAX_EVENT_BYTES
from fakes import FakePublisher, InMemoryObjectStore

pytestmark = pytest.mark.unit
NOW = datetime.now(UTC).replace(microsecond=0)


def image(**over: Any) -> bytes:
    ev = {
        "producer": "robot",
        "plate_barcode": "PL1",
        "well": "A1",
        "inspection_id": "i1",
        "imaged_at": (NOW - timedelta(hours=1)).isoformat(),
        "imaging_mode": "visible",
        "image_uri": "s3://axis-images/a.png",
    }
    ev.update(over)
    return json.dumps(ev).encode()


def reason(raw: bytes, model: Any = ImageCaptured, **ctx: Any) -> str:
    with pytest.raises(InvalidEvent) as info:
        parse_event(raw, model, context=ctx or None)
    return info.value.reason


@pytest.mark.parametrize("field", ["inspection_id", "image_uri", "imager_id", "producer"])
@pytest.mark.parametrize("char", ["\x00", "\x1b", "\x7f", "\u0085"])
def test_control_characters_are_refused_naming_the_field(field: str, char: str) -> None:
    base = json.loads(image())
    value = str(base.get(field, "imager-1"))
    why = reason(image(**{field: value[:1] + char + value[1:]}))  # inside: edges are stripped as whitespace
    assert why.startswith(field) and ("control characters" in why or "pattern" in why), why


def test_user_score_with_nul_in_user_id_is_refused() -> None:
    raw = json.dumps(
        {
            "producer": "lims",
            "inspection_id": "i1",
            "user_id": "ann\x00",
            "score": "clear",
            "scored_at": NOW.isoformat(),
        }
    ).encode()
    assert "user_id: must not contain control characters (found U+0000 at position 3)" in reason(raw, UserScored)


@pytest.mark.parametrize("when", [1764000000, "1764000000", 1764000000.25])
def test_epoch_times_are_refused(when: object) -> None:
    assert "epoch numbers are refused" in reason(image(imaged_at=when))


def test_far_future_and_prehistoric_times_are_refused_and_the_skew_is_configurable() -> None:
    assert "lies in the future" in reason(image(imaged_at="9999-12-31T00:00:00Z"))
    assert "before 2000-01-01" in reason(image(imaged_at="1999-12-31T00:00:00Z"))
    now = datetime.now(UTC)
    soon = (now + timedelta(minutes=5)).isoformat()
    assert parse_event(image(imaged_at=soon), ImageCaptured).imaged_at > now  # within the default 10 minutes
    assert "lies in the future" in reason(image(imaged_at=soon), max_future_skew_s=60)


def test_messages_over_the_size_limit_are_refused_before_parsing() -> None:
    raw = b"{" + b" " * MAX_EVENT_BYTES + b"}"
    assert f"an event is at most {MAX_EVENT_BYTES} bytes" in reason(raw)


def test_broker_errors_caused_by_the_message_are_permanent_the_rest_transient() -> None:
    assert classify(MessageSizeTooLargeError()) == "permanent"
    assert classify(KafkaConnectionError()) == "transient"
    assert classify(KafkaTimeoutError()) == "transient"


def test_a_schema_that_does_not_fit_is_retried_bad_data_is_not() -> None:
    # a missing column fails every record alike: retried (and /health stalls), never dead-lettered one by one
    assert classify(psycopg.errors.UndefinedColumn("column x does not exist")) == "transient"
    assert classify(psycopg.errors.InsufficientPrivilege("permission denied")) == "transient"
    assert classify(psycopg.errors.InvalidTextRepresentation("invalid input syntax")) == "permanent"
    assert classify(psycopg.errors.UniqueViolation("duplicate key")) == "permanent"


class RefusingBroker(FakePublisher):
    """Refuses any message over ``limit`` bytes as the real producer does."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    async def publish(self, message: Any, topic: str, *, key: bytes | None = None, headers: Any = None) -> None:
        if len(message) > self.limit:
            raise MessageSizeTooLargeError()
        await super().publish(message, topic, key=key, headers=headers)


async def test_a_large_message_is_dead_lettered_truncated_with_a_whole_copy_and_replays_whole() -> None:
    store = InMemoryObjectStore()
    broker = RefusingBroker(limit=200_000)
    sink = DeadLetterSink(broker, "axis-inference", store=store, keep_bytes=1024)
    raw = b'{"x": "' + "é".encode() * 2_500_000 + b'"}'
    rec = RawRecord(topics.IMAGE_CAPTURED, 2, 77, b"PL1:A1:1", raw)
    dl = await sink.reject(rec, InvalidEvent("message is too large"))
    [sent] = [DeadLetter.model_validate_json(m) for m in broker.on(topics.DEAD_LETTER)]
    assert sent.raw_truncated and sent.raw_length == len(raw) and len(sent.raw_bytes()) <= 1024
    assert sent.raw_sha256 == hashlib.sha256(raw).hexdigest() and sent.raw_uri is not None
    assert sent.event_id == dl.event_id == dead_letter_id("axis-inference", rec)
    assert original_bytes(sent, store.get_bytes) == raw
    with pytest.raises(ValueError, match="nothing whole to replay"):
        original_bytes(sent, None)


async def test_a_dead_letter_the_broker_still_refuses_is_sent_without_its_raw_bytes() -> None:
    broker = RefusingBroker(limit=3000)
    sink = DeadLetterSink(broker, "axis-discrepancy", keep_bytes=65_536)  # no store: nothing to copy to
    rec = RawRecord(topics.USER_SCORED, 0, 5, None, b"y" * 10_000)
    await sink.reject(rec, InvalidEvent("bad"))
    [sent] = [DeadLetter.model_validate_json(m) for m in broker.on(topics.DEAD_LETTER)]
    assert sent.raw_value == "" and sent.raw_truncated and sent.raw_length == 10_000 and sent.error == "bad"
