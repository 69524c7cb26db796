"""A publisher that records what was published (for unit tests of handlers and services)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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
