"""Bounded exponential back-off for transient failures; permanent failures are raised at once.

Transient means "worth trying again": PostgreSQL gone or restarting (``axis_adapters.db.is_transient``), the
object store unreachable (``ObjectStoreUnavailable``), a broker error, a connection error or a timeout.
Everything else (a missing object, a bad event, a bug) is permanent: retrying would fail the same way, so the
caller should dead-letter it with its reason.

    policy = RetryPolicy(attempts=6, base_delay_s=0.2, max_delay_s=5)
    data = retry_call(lambda: store.get_bytes(uri), policy=policy)          # sync
    rows = await retry_async(lambda: repo.load(ids), policy=policy)          # async
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from axis_adapters.db import is_transient as db_is_transient
from axis_adapters.objectstore import ObjectStoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")
Kind = Literal["transient", "permanent"]


# Broker errors caused by the message itself: sending it again fails the same way, so they are permanent for
# that record (the caller dead-letters it, or a smaller form of it). Every other broker error is about the
# broker or the network and is transient.
_KAFKA_CONTENT_ERRORS = (
    "MessageSizeTooLargeError",
    "RecordTooLargeError",
    "InvalidTopicError",
    "CorruptRecordError",
    "UnsupportedForMessageFormatError",
    "InvalidRecordError",
)


def classify(exc: BaseException) -> Kind:
    """``transient`` for errors worth retrying (database, object store, broker, network), else ``permanent``.

    The one rule every service uses (issue: one bad message must never stop scoring): a broker error caused by
    the message's content (too large, invalid topic) is permanent, an unreachable broker is transient.
    """
    if isinstance(exc, ObjectStoreUnavailable | ConnectionError | TimeoutError) or db_is_transient(exc):
        return "transient"
    try:
        from aiokafka.errors import KafkaError
    except ImportError:  # pragma: no cover - aiokafka is a project dependency
        return "permanent"
    if not isinstance(exc, KafkaError):
        return "permanent"
    return "permanent" if type(exc).__name__ in _KAFKA_CONTENT_ERRORS else "transient"


def is_transient(exc: BaseException) -> bool:
    """True when ``classify(exc)`` says transient."""
    return classify(exc) == "transient"


@dataclass(frozen=True)
class RetryPolicy:
    """At most ``attempts`` calls; the n-th wait is ``min(max_delay_s, base_delay_s * 2**n)`` with +-``jitter``."""

    attempts: int = 5
    base_delay_s: float = 0.2
    max_delay_s: float = 10.0
    jitter: float = 0.1
    is_transient: Callable[[BaseException], bool] = field(default=is_transient)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("delays must not be negative")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must lie in [0, 1], got {self.jitter}")

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits between attempts (``attempts - 1`` of them), each at most ``max_delay_s * (1 + jitter)``."""
        rng = rng or random.Random()
        for n in range(self.attempts - 1):
            base = min(self.max_delay_s, self.base_delay_s * 2**n)
            yield max(0.0, base * (1 + self.jitter * (2 * rng.random() - 1)))

    def total_budget_s(self) -> float:
        """Upper bound of the time spent waiting before giving up."""
        waits = (min(self.max_delay_s, self.base_delay_s * 2**n) for n in range(self.attempts - 1))
        return sum(waits) * (1 + self.jitter)


class RetriesExhausted(RuntimeError):
    """A transient error outlasted the policy; ``last`` is the final error, ``attempts`` how many calls were made."""

    def __init__(self, what: str, attempts: int, last: BaseException) -> None:
        super().__init__(f"{what}: still failing after {attempts} attempts: {type(last).__name__}: {last}")
        self.attempts = attempts
        self.last = last


def retry_call(
    fn: Callable[[], T],
    *,
    policy: RetryPolicy | None = None,
    what: str = "call",
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Call ``fn`` until it succeeds; retry transient errors per ``policy``; raise permanent ones at once."""
    policy = policy or RetryPolicy()
    delays = policy.delays()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except Exception as exc:
            if not policy.is_transient(exc):
                raise
            delay = next(delays, None)
            if delay is None:
                raise RetriesExhausted(what, attempt, exc) from exc
            _note(what, attempt, exc, delay, on_retry)
            sleep(delay)


async def retry_async(
    fn: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy | None = None,
    what: str = "call",
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """Async twin of :func:`retry_call`: awaits ``fn()`` and ``sleep`` between transient failures."""
    policy = policy or RetryPolicy()
    delays = policy.delays()
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except Exception as exc:
            if not policy.is_transient(exc):
                raise
            delay = next(delays, None)
            if delay is None:
                raise RetriesExhausted(what, attempt, exc) from exc
            _note(what, attempt, exc, delay, on_retry)
            await sleep(delay)


def _note(
    what: str, attempt: int, exc: BaseException, delay: float, hook: Callable[[int, BaseException, float], None] | None
) -> None:
    log.warning("%s failed (attempt %d, %s: %s); retrying in %.2fs", what, attempt, type(exc).__name__, exc, delay)
    if hook is not None:
        hook(attempt, exc, delay)
