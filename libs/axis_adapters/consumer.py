"""The batch-handling rule every consumer shares: retry what is transient, isolate and dead-letter what is not.

``IsolatingBatchHandler(process, dead_letters=..., policy=...)`` awaits ``process(records)`` for a whole batch,
each attempt bounded in time and transient failures retried with capped back-off (then re-raised: the caller
NACKs and the batch is redelivered). Any other error isolates the bad record: the batch is retried record by
record and the record that still fails is dead-lettered once (``DeadLetterSink.reject_once``), its neighbours
applied. Nothing is dead-lettered for a transient error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import TypeVar

from axis_adapters.kafka import DeadLetterSink, RawRecord
from axis_adapters.retry import RetriesExhausted, RetryPolicy, retry_async

log = logging.getLogger(__name__)
T = TypeVar("T")


class IsolatingBatchHandler:
    """``await handler(records)``: the shared retry / isolation / dead-letter rule around one ``process``."""

    def __init__(
        self,
        process: Callable[[Sequence[RawRecord]], Awaitable[None]],
        *,
        dead_letters: DeadLetterSink,
        policy: RetryPolicy | None = None,
        attempt_timeout_s: float = 30.0,
        name: str = "consumer",
    ) -> None:
        self._process = process
        self.dead_letters = dead_letters
        self.policy = policy or RetryPolicy(attempts=8, base_delay_s=0.5, max_delay_s=10.0)
        self._attempt_timeout_s = attempt_timeout_s
        self._name = name
        self.failing_since: float | None = None  # monotonic start of the current run of transient failures

    async def __call__(self, records: Sequence[RawRecord]) -> None:
        n = len(records)
        try:
            await self.retrying(lambda: self._process(records), f"batch of {n}")
        except Exception as exc:
            if self.policy.is_transient(exc):
                log.warning("%s: batch of %d not processed (%r); it will be redelivered", self._name, n, exc)
                raise
            log.exception("%s: batch of %d failed; retrying record by record", self._name, n)
            for rec in records:
                try:
                    await self.retrying(partial(self._process, [rec]), f"record {rec.topic}@{rec.offset}")
                except Exception as one:
                    if self.policy.is_transient(one):
                        raise
                    await self.dead_letters.reject_once([(rec, one)])  # once, across redeliveries too

    async def retrying(self, fn: Callable[[], Awaitable[T]], what: str) -> T:
        """``fn()``, each attempt bounded in time; transient failures retried per the policy."""

        async def attempt() -> T:
            try:
                async with asyncio.timeout(self._attempt_timeout_s):
                    return await fn()
            except Exception as exc:
                if self.policy.is_transient(exc) and self.failing_since is None:
                    self.failing_since = time.monotonic()
                raise

        try:
            result = await retry_async(attempt, policy=self.policy, what=f"{self._name} {what}")
        except RetriesExhausted as exc:
            raise exc.last from exc
        self.failing_since = None
        return result
