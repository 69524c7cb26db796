"""The one way a service subscribes: raw records in, typed contract out.

``raw_subscriber(broker, {topic: Model}, handle, party=..., group_id=...)`` registers ``handle(records)`` on a
FastStream ``KafkaBroker``:

- FastStream does not decode or validate the payload (the decoder hands nothing on): ``handle`` gets the raw
  records (``RawRecord``: topic, partition, offset, key, value) and validates each itself, so that one malformed
  record is dead-lettered alone instead of failing the batch (``axis_adapters.consumer``);
- the handler is declared to FastStream with the wire payload, ``list[Model | ...]`` for a batch subscriber
  (``Model`` for a single one), wrapped in pydantic's ``SkipValidation``: FastStream's own AsyncAPI generation
  describes the real subscriber's payload (``axis_cli.apidocs`` builds docs/asyncapi.yaml from it and fails
  when a topic's model, group or consumer differs from the catalog), and nothing is validated twice;
- offsets are committed after ``handle`` returns and NACKed when it raises (the batch comes again);
- ``progress`` (``ConsumerProgress``) is told when a batch starts and ends (``/health``'s stall rule).

``subscriptions(broker)`` reads back what a broker's raw subscribers declare (party, topics, group, models).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Union

from axis_contracts.events import Event

from axis_adapters.kafka import RawRecord, records_of
from axis_adapters.liveness import ConsumerProgress, timestamps_of


@dataclass(frozen=True)
class Subscription:
    """What one raw subscriber consumes: the contract a service's code declares."""

    party: str
    topics: dict[str, type[Event]]
    group_id: str | None
    batch: bool


async def _no_body(message: Any) -> None:
    """FastStream's decoder: nothing (the handler reads and validates the raw records itself)."""
    return None


def raw_subscriber(
    broker: Any,
    topics: Mapping[str, type[Event]],
    handle: Callable[[list[RawRecord]], Awaitable[Any]],
    *,
    party: str,
    group_id: str | None,
    batch: bool = True,
    progress: ConsumerProgress | None = None,
    **options: Any,
) -> Any:
    """Subscribe ``handle`` to ``topics`` (topic -> event model) on ``broker``; returns the FastStream subscriber.

    ``options`` go to ``broker.subscriber`` (``max_records``, ``batch_timeout_ms``, ``consumer_options(...)``).
    """
    from faststream.kafka.annotations import KafkaMessage
    from faststream.middlewares import AckPolicy
    from pydantic import SkipValidation

    if not topics:
        raise ValueError("a subscriber needs at least one topic")
    models = tuple(dict.fromkeys(topics.values()))
    payload: Any = Union[models] if len(models) > 1 else models[0]  # noqa: UP007 (a runtime tuple of models)
    options.setdefault("ack_policy", AckPolicy.NACK_ON_ERROR)
    if batch:
        options["batch"] = True
    subscriber = broker.subscriber(
        *topics,
        group_id=group_id,
        decoder=_no_body,
        title=f"{party}.receive.{'+'.join(m.__name__ for m in models)}",
        **options,
    )

    async def on_records(body: Any, message: Any) -> None:
        records = records_of(message)
        if progress is not None:
            progress.started(records, timestamps_of(message))
        await handle(records)
        if progress is not None:
            progress.finished(records)

    # The declaration FastStream reads (AsyncAPI payload, context injection of the message); set here rather
    # than written in the signature because the models are the caller's.
    wire: Any = list[payload] if batch else payload
    on_records.__annotations__ = {
        "body": SkipValidation[wire],  # type: ignore[misc]
        "message": KafkaMessage,
        "return": None,
    }
    on_records.__name__ = f"on_{party.replace('-', '_')}_records"
    subscriber(on_records)
    subscriber.axis_subscription = Subscription(party, dict(topics), group_id, batch)
    return subscriber


def subscriptions(broker: Any) -> list[Subscription]:
    """The raw subscribers' declarations of ``broker`` (in registration order)."""
    subs = getattr(broker, "subscribers", [])
    return [s.axis_subscription for s in subs if getattr(s, "axis_subscription", None) is not None]
