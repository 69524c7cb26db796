"""In-memory fakes of the adapters' ports, for unit tests only (production code never imports them)."""

from fakes.auth import InMemoryAccountStore
from fakes.kafka import FakePublisher
from fakes.objectstore import InMemoryObjectStore
from fakes.promotion import InMemoryPromotionStore
from fakes.registry import InMemoryRegistry
from fakes.scores import InMemoryScoresRepo

__all__ = [
    "FakePublisher",
    "InMemoryAccountStore",
    "InMemoryObjectStore",
    "InMemoryPromotionStore",
    "InMemoryRegistry",
    "InMemoryScoresRepo",
]
