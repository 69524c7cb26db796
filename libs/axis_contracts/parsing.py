"""Decoding raw Kafka messages into events, with errors a person can act on."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import ValidationError

from axis_contracts.catalog import EVENT_TYPES, TOPIC_EVENTS
from axis_contracts.events import Event
from axis_contracts.limits import MAX_EVENT_BYTES

E = TypeVar("E", bound=Event)


class InvalidEvent(ValueError):
    """A message that is not a valid event; ``reason`` says which field and why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MessageTooLarge(InvalidEvent):
    """A message over the size limit of events (``axis_contracts.limits.MAX_EVENT_BYTES``)."""


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem: ``field.path: message``."""
    parts = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if not loc:  # a whole-event rule: its message names the field itself
            parts.append(msg.removeprefix("Value error, "))
            continue
        parts.append(f"{loc}: {msg.removeprefix('Value error, ')}")
    return "; ".join(parts)


def decode_json(raw: bytes | str, *, max_bytes: int | None = MAX_EVENT_BYTES) -> Any:
    """Decode a raw message as JSON; raise InvalidEvent saying why it is not JSON (or is too large)."""
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if max_bytes is not None and size > max_bytes:
        raise MessageTooLarge(f"message is {size} bytes; an event is at most {max_bytes} bytes")
    if isinstance(raw, bytes):
        if len(raw) == 0:
            raise InvalidEvent("empty message")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidEvent(f"message is not UTF-8 JSON: {exc}") from None
    else:
        text = raw
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidEvent(f"message is not valid JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise InvalidEvent("message nests JSON arrays/objects too deeply to be an event") from None


def validate_event(data: Any, model: type[E], *, context: dict[str, Any] | None = None) -> E:
    """Validate decoded JSON as ``model``; raise InvalidEvent naming the field and the problem.

    ``context`` reaches the field rules (e.g. ``{"max_future_skew_s": 600}``, see ``axis_contracts.limits``).
    """
    if not isinstance(data, dict):
        raise InvalidEvent(f"message must be a JSON object, got {type(data).__name__}")
    etype = data.get("event_type")
    if etype is not None and etype != model.__name__:
        raise InvalidEvent(f"event_type: expected {model.__name__!r}, got {str(etype)[:80]!r}")
    try:
        return model.model_validate(data, context=context)
    except ValidationError as exc:
        raise InvalidEvent(describe_validation_error(exc)) from None
    except RecursionError:
        raise InvalidEvent("message nests too deeply to be an event") from None


def parse_event(raw: bytes | str, model: type[E], *, context: dict[str, Any] | None = None) -> E:
    """Validate raw JSON bytes as ``model``; raise InvalidEvent naming the field and the problem."""
    return validate_event(decode_json(raw), model, context=context)


def model_for_topic(topic: str) -> type[Event]:
    """The event class carried by a topic."""
    return TOPIC_EVENTS[topic]


def model_for_type(event_type: str) -> type[Event]:
    """The event class with a given ``event_type``."""
    return EVENT_TYPES[event_type]
