"""The batch-handling rule every consumer shares: retry what is transient, isolate and dead-letter what is not.

``IsolatingBatchHandler(process, dead_letters=..., policy=...)`` awaits ``process(records)`` for a whole batch,
each attempt bounded in time (``attempt_timeout_s``; None: unbounded) and transient failures retried with capped
back-off (then re-raised: the caller NACKs and the batch is redelivered). Any other error isolates the bad record
and dead-letters it once (``DeadLetterSink.reject_once``), its neighbours applied:

- ``isolate="each"`` retries the batch record by record (cheap records: the discrepancy service, curation);
- ``isolate="bisect"`` retries each half, then each half of a failing half, until the failing record stands
  alone (expensive records: a scoring batch of 16 images with one poisoned image costs ~4 re-scores of halves,
  not 16 single-image batches).

What ``process`` returns for each part is kept; ``combine`` folds the parts into the batch's result and
``rejected(record, error, sent)`` stands for a dead-lettered record's part (without them the result is None).
``on_failure(records, error)`` is told of every permanent failure of a part (metrics, logs). Nothing is
dead-lettered for a transient error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, Literal, TypeVar

from axis_contracts import DeadLetter

from axis_adapters.kafka import DeadLetterSink, RawRecord
from axis_adapters.retry import RetriesExhausted, RetryPolicy, retry_async

log = logging.getLogger(__name__)
T = TypeVar("T")
R = TypeVar("R")


class IsolatingBatchHandler(Generic[R]):
    """``await handler(records)``: the shared retry / isolation / dead-letter rule around one ``process``."""

    def __init__(
        self,
        process: Callable[[Sequence[RawRecord]], Awaitable[R]],
        *,
        dead_letters: DeadLetterSink,
        policy: RetryPolicy | None = None,
        attempt_timeout_s: float | None = 30.0,
        name: str = "consumer",
        isolate: Literal["each", "bisect"] = "each",
        combine: Callable[[Sequence[R]], R] | None = None,
        rejected: Callable[[RawRecord, BaseException, Sequence[DeadLetter]], R] | None = None,
        on_failure: Callable[[Sequence[RawRecord], BaseException], None] | None = None,
    ) -> None:
        self._process = process
        self.dead_letters = dead_letters
        self.policy = policy or RetryPolicy(attempts=8, base_delay_s=0.5, max_delay_s=10.0)
        self._attempt_timeout_s = attempt_timeout_s
        self._name = name
        self._isolate = isolate
        self._combine = combine
        self._rejected = rejected
        self._on_failure = on_failure
        self.failing_since: float | None = None  # monotonic start of the current run of transient failures

    async def __call__(self, records: Sequence[RawRecord]) -> R | None:
        return await self._part(records, top=True)

    async def _part(self, records: Sequence[RawRecord], *, top: bool = False) -> R | None:
        n = len(records)
        what = f"batch of {n}" if n > 1 else f"record {records[0].topic}[{records[0].partition}]@{records[0].offset}"
        try:
            return await self.retrying(lambda: self._process(records), what)
        except Exception as exc:
            if self.policy.is_transient(exc):
                if top:
                    log.warning("%s: %s not processed (%r); it will be redelivered", self._name, what, exc)
                raise
            if self._on_failure is not None:
                self._on_failure(records, exc)
            if n == 1:
                log.error("%s: %s failed: %s: %s; dead-lettered", self._name, what, type(exc).__name__, exc)
                sent = await self.dead_letters.reject_once([(records[0], exc)])  # once, across redeliveries too
                return None if self._rejected is None else self._rejected(records[0], exc, sent)
            how = "halves" if self._isolate == "bisect" else "record by record"
            log.warning("%s: %s failed (%s: %s); retrying %s", self._name, what, type(exc).__name__, exc, how)
        if self._isolate == "bisect":
            parts: list[Sequence[RawRecord]] = [records[: n // 2], records[n // 2 :]]
        else:
            parts = [[rec] for rec in records]
        results = [await self._part(part) for part in parts]
        if self._combine is None:
            return None
        return self._combine([r for r in results if r is not None])

    async def retrying(self, fn: Callable[[], Awaitable[T]], what: str) -> T:
        """``fn()``, each attempt bounded in time; transient failures retried per the policy."""

        async def attempt() -> T:
            try:
                bound: Any = (
                    asyncio.timeout(self._attempt_timeout_s)
                    if self._attempt_timeout_s is not None
                    else contextlib.nullcontext()
                )
                async with bound:
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
