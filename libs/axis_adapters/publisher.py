"""The one way a service publishes: a typed FastStream publisher per event it sends.

``EventPublisher(broker, party, [Model, ...])`` (or ``{topic: Model}`` where a topic is configurable) registers
``broker.publisher(topic, schema=Model, ...)`` for each event a service sends, before the broker starts, and is
what the service hands to ``publish_event`` and ``DeadLetterSink`` (it has the broker's
``publish(message, topic=..., key=..., headers=...)``):

- FastStream's own AsyncAPI generation describes each send operation with the model's JSON Schema
  (``axis_cli.apidocs`` builds docs/asyncapi.yaml from the services' publishers and fails when a service sends an
  event the catalog does not say it sends, or the other way round);
- a send to a topic the service did not declare is refused (``UndeclaredTopic``) instead of reaching the broker:
  what the document says a service sends is all it can send.

``publications(broker)`` reads back what a broker's event publishers declare (party, models).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from axis_contracts.events import Event


class UndeclaredTopic(ValueError):
    """A service tried to publish on a topic it did not declare (a programming error, not a broker failure)."""


@dataclass(frozen=True)
class Publication:
    """What one service's EventPublisher sends: the contract its code declares."""

    party: str
    topics: dict[str, type[Event]]


class EventPublisher:
    """A service's typed publishers, one per event model it sends, over one FastStream ``KafkaBroker``."""

    def __init__(self, broker: Any, party: str, sends: Mapping[str, type[Event]] | Iterable[type[Event]]) -> None:
        self.broker = broker
        self.party = party
        by_topic = dict(sends) if isinstance(sends, Mapping) else {m.TOPIC: m for m in dict.fromkeys(sends)}
        if not by_topic:
            raise ValueError("a publisher needs at least one event model")
        self._publishers: dict[str, Any] = {
            topic: broker.publisher(topic, schema=model, title=f"{party}.send.{model.__name__}")
            for topic, model in by_topic.items()
        }
        self.publication = Publication(party, by_topic)
        registered = getattr(broker, "axis_publications", None)
        if registered is None:
            registered = []
            broker.axis_publications = registered
        registered.append(self.publication)

    @property
    def topics(self) -> list[str]:
        """The topics this service may publish on."""
        return list(self._publishers)

    async def publish(self, message: Any, topic: str = "", **options: Any) -> Any:
        """Send ``message`` on ``topic`` through that topic's typed publisher (``options``: key, headers, ...)."""
        publisher = self._publishers.get(topic)
        if publisher is None:
            raise UndeclaredTopic(f"{self.party} publishes only on {', '.join(self._publishers)}; not on {topic!r}")
        return await publisher.publish(message, **options)


def publications(broker: Any) -> list[Publication]:
    """The event publishers' declarations of ``broker`` (in registration order)."""
    return list(getattr(broker, "axis_publications", []))
