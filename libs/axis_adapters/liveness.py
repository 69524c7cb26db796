"""Consumer liveness: per-partition lag, age of the oldest unprocessed event, and stall detection.

A consumer that is connected but makes no progress while events wait for it is not healthy, whatever its
broker connection says. ``ConsumerProgress`` is fed by the handler (``started`` / ``finished`` per batch) and
by a poll of the consumer's high watermarks (``refresh``); ``stalled()`` says why the consumer counts as stuck:
events are waiting (lag > 0) and no batch has finished for ``stall_after_s`` seconds.

    progress = ConsumerProgress(stall_after_s=120)
    progress.started(records); ...; progress.finished(records)
    await progress.refresh(subscriber.consumer)       # every few seconds
    progress.stalled()                               # None, or a sentence for /health
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from axis_adapters.kafka import RawRecord

TopicPartition = tuple[str, int]


@dataclass
class ConsumerProgress:
    """What one consumer group member has processed, and how far behind it is."""

    stall_after_s: float = 120.0
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time
    next_offset: dict[TopicPartition, int] = field(default_factory=dict)  # first offset not yet processed
    highwater: dict[TopicPartition, int] = field(default_factory=dict)
    in_flight_since_ms: int | None = None  # Kafka timestamp of the oldest record of the batch in flight
    last_progress: float = field(default=0.0)
    waiting_since: float | None = None  # when events started to wait (lag went above 0), None while none wait
    batches_done: int = 0

    def __post_init__(self) -> None:
        self.last_progress = self.clock()

    def started(self, records: Sequence[RawRecord], timestamps_ms: Sequence[int | None] = ()) -> None:
        """A batch is being processed (its records' Kafka timestamps date the oldest unprocessed event)."""
        stamps = [t for t in timestamps_ms if t is not None and t > 0]
        self.in_flight_since_ms = min(stamps) if stamps else None
        for r in records:
            if r.partition is not None and r.offset is not None:
                self.next_offset.setdefault((r.topic, r.partition), r.offset)

    def finished(self, records: Sequence[RawRecord]) -> None:
        """The batch is done (committed or handed to the broker's commit): progress."""
        for r in records:
            if r.partition is not None and r.offset is not None:
                tp = (r.topic, r.partition)
                self.next_offset[tp] = max(self.next_offset.get(tp, 0), r.offset + 1)
        self.in_flight_since_ms = None
        self.last_progress = self.clock()
        self.batches_done += 1
        self._note_waiting()

    async def refresh(self, consumer: Any) -> None:
        """Read the high watermarks (and, for partitions not processed yet, the committed offsets)."""
        if consumer is None:
            return
        for tp in list(consumer.assignment()):
            key = (tp.topic, tp.partition)
            hw = consumer.highwater(tp)
            if hw is not None:
                self.highwater[key] = int(hw)
            if key not in self.next_offset:
                committed = await consumer.committed(tp)
                if committed is not None:
                    self.next_offset[key] = int(committed)
        self._note_waiting()

    def _note_waiting(self) -> None:
        waiting = sum(self.lag().values()) > 0
        if not waiting:
            self.waiting_since = None
        elif self.waiting_since is None:
            self.waiting_since = self.clock()

    def lag(self) -> dict[TopicPartition, int]:
        """Events waiting per partition (high watermark minus the first unprocessed offset)."""
        return {tp: max(0, hw - self.next_offset.get(tp, 0)) for tp, hw in self.highwater.items()}

    def oldest_unprocessed_age_s(self) -> float:
        """Age of the oldest event in the batch in flight (0 when idle)."""
        if self.in_flight_since_ms is None:
            return 0.0
        return max(0.0, self.wall() - self.in_flight_since_ms / 1000.0)

    def idle_s(self) -> float:
        """Seconds since the last batch finished."""
        return self.clock() - self.last_progress

    def stalled(self) -> str | None:
        """Why the consumer counts as stuck (events wait and nothing finished for a while), else None.

        The window starts at the later of the last finished batch and the moment events started to wait, so a
        consumer that was idle for an hour is not "stalled" the moment new events arrive.
        """
        waiting = sum(self.lag().values())
        if waiting == 0 or self.waiting_since is None:
            return None
        idle = self.clock() - max(self.last_progress, self.waiting_since)
        if idle > self.stall_after_s:
            return (
                f"no progress for {idle:.0f}s while {waiting} events wait "
                f"(more than the {self.stall_after_s:g}s allowed)"
            )
        return None

    def as_dict(self) -> dict[str, Any]:
        """JSON view for /health and /metrics."""
        return {
            "lag": {f"{t}[{p}]": n for (t, p), n in sorted(self.lag().items())},
            "lag_total": sum(self.lag().values()),
            "oldest_unprocessed_age_s": round(self.oldest_unprocessed_age_s(), 1),
            "seconds_since_progress": round(self.idle_s(), 1),
            "stalled": self.stalled(),
        }

    def prometheus(self, prefix: str) -> list[str]:
        """Prometheus lines: lag per partition, oldest unprocessed age, seconds since progress."""
        lines = [f"# TYPE {prefix}_consumer_lag gauge"]
        lines += [
            f'{prefix}_consumer_lag{{topic="{t}",partition="{p}"}} {n}' for (t, p), n in sorted(self.lag().items())
        ]
        lines += [
            f"# TYPE {prefix}_oldest_unprocessed_age_seconds gauge",
            f"{prefix}_oldest_unprocessed_age_seconds {self.oldest_unprocessed_age_s():.1f}",
            f"# TYPE {prefix}_seconds_since_progress gauge",
            f"{prefix}_seconds_since_progress {self.idle_s():.1f}",
            f"# TYPE {prefix}_stalled gauge",
            f"{prefix}_stalled {1 if self.stalled() else 0}",
        ]
        return lines


def consumer_gone(broker: Any) -> str | None:
    """Why a FastStream broker's subscribers no longer consume (stopped, or every consumer task ended), or None."""
    for sub in broker.subscribers:
        name = ",".join(getattr(sub, "topic_names", []) or ["?"])
        if not sub.running:
            return f"the subscriber of {name} stopped"
        tasks: list[Any] = list(getattr(sub, "tasks", []))
        if tasks and all(t.done() for t in tasks):
            last = tasks[-1]
            how = "was cancelled" if last.cancelled() else f"ended ({last.exception()!r})"
            return f"the consumer task of {name} {how} and was not restarted"
    return None


def timestamps_of(message: Any) -> list[int | None]:
    """Kafka timestamps (ms) of the records behind a FastStream KafkaMessage."""
    raw = message.raw_message
    recs = raw if isinstance(raw, list | tuple) else [raw]
    return [getattr(r, "timestamp", None) for r in recs]
