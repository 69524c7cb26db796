"""ConsumerProgress: lag per partition, the oldest unprocessed age and when a consumer counts as stalled."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from axis_adapters.kafka import RawRecord
from axis_adapters.liveness import ConsumerProgress

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class FakeConsumer:
    def __init__(self, highwater: dict[TP, int], committed: dict[TP, int]) -> None:
        self.hw, self.comm = highwater, committed

    def assignment(self) -> set[TP]:
        return set(self.hw)

    def highwater(self, tp: TP) -> int:
        return self.hw[tp]

    async def committed(self, tp: TP) -> int | None:
        return self.comm.get(tp)


def rec(partition: int, offset: int) -> RawRecord:
    return RawRecord("t", partition, offset, None, b"{}")


async def test_lag_counts_from_the_committed_offset_then_from_what_was_processed() -> None:
    clock = Clock()
    progress = ConsumerProgress(stall_after_s=60, clock=clock, wall=lambda: 2000.0)
    consumer = FakeConsumer({TP("t", 0): 10, TP("t", 1): 5}, {TP("t", 0): 4, TP("t", 1): 5})
    await progress.refresh(consumer)
    assert progress.lag() == {("t", 0): 6, ("t", 1): 0}
    progress.started([rec(0, 4), rec(0, 5)], [1_990_000, 1_995_000])
    assert progress.oldest_unprocessed_age_s() == 10.0
    progress.finished([rec(0, 4), rec(0, 5)])
    assert progress.lag() == {("t", 0): 4, ("t", 1): 0} and progress.oldest_unprocessed_age_s() == 0.0


async def test_stalled_only_when_events_wait_and_nothing_finished_for_the_window() -> None:
    clock = Clock()
    progress = ConsumerProgress(stall_after_s=60, clock=clock)
    idle = FakeConsumer({TP("t", 0): 3}, {TP("t", 0): 3})
    await progress.refresh(idle)
    clock.t += 600
    assert progress.stalled() is None  # nothing waits: idle is fine
    idle.hw[TP("t", 0)] = 8  # five events arrive and nothing finishes
    await progress.refresh(idle)
    clock.t += 30
    assert progress.stalled() is None  # within the window
    clock.t += 40
    why = progress.stalled()
    assert why is not None and "5 events wait" in why
    progress.started([rec(0, 3)])
    progress.finished([rec(0, 3)])
    assert progress.stalled() is None and progress.lag()[("t", 0)] == 4
    lines = "\n".join(progress.prometheus("axis_x"))
    assert 'axis_x_consumer_lag{topic="t",partition="0"} 4' in lines and "axis_x_stalled 0" in lines
