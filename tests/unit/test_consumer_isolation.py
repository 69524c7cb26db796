"""The shared batch rule (axis_adapters.consumer): a permanent failure isolates the bad record, record by record or
by halves, dead-letters it alone and keeps what its neighbours returned; a transient one dead-letters nothing."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from axis_adapters.consumer import IsolatingBatchHandler
from axis_adapters.kafka import DeadLetterSink, RawRecord
from axis_adapters.retry import RetryPolicy
from axis_contracts import DeadLetter, topics
from fakes import FakePublisher

pytestmark = pytest.mark.unit


def _records(n: int) -> list[RawRecord]:
    return [RawRecord(topic="t", partition=0, offset=i, key=None, value=f"r{i}".encode()) for i in range(n)]


class Poisoned:
    """process(): the sum of the offsets, ValueError when a poisoned offset is in the part."""

    def __init__(self, bad: set[int], transient: bool = False) -> None:
        self.bad, self.transient, self.calls = bad, transient, []  # type: ignore[var-annotated]

    async def __call__(self, records: Sequence[RawRecord]) -> int:
        offsets = [r.offset for r in records]
        self.calls.append(offsets)
        if self.bad & set(offsets):  # type: ignore[arg-type]
            raise (ConnectionError if self.transient else ValueError)(f"bad record in {offsets}")
        return sum(o for o in offsets if o is not None)


def _handler(process: Poisoned, isolate: str, sink: DeadLetterSink) -> IsolatingBatchHandler[int]:
    return IsolatingBatchHandler(
        process,
        dead_letters=sink,
        policy=RetryPolicy(attempts=1),
        isolate=isolate,  # type: ignore[arg-type]
        combine=sum,
        rejected=lambda rec, exc, sent: -100 * len(sent),
    )


@pytest.mark.parametrize(("isolate", "calls"), [("bisect", 9), ("each", 17)])
async def test_one_bad_record_of_sixteen_is_dead_lettered_alone_and_its_neighbours_kept(
    isolate: str, calls: int
) -> None:
    pub = FakePublisher()
    process = Poisoned({11})
    result = await _handler(process, isolate, DeadLetterSink(pub, "c"))(_records(16))
    (dl,) = [DeadLetter.model_validate_json(m) for m in pub.on(topics.DEAD_LETTER)]
    assert dl.offset == 11 and "bad record in [11]" in dl.error
    assert result == sum(range(16)) - 11 - 100  # every neighbour's part kept, the rejected one counted
    assert len(process.calls) == calls  # bisect: 1 + 2 + 2 + 2 + 2 attempts; each: 1 + 16


async def test_a_transient_failure_is_raised_and_nothing_is_dead_lettered() -> None:
    pub = FakePublisher()
    process = Poisoned({3}, transient=True)
    with pytest.raises(ConnectionError):
        await _handler(process, "bisect", DeadLetterSink(pub, "c"))(_records(8))
    assert pub.on(topics.DEAD_LETTER) == [] and process.calls == [list(range(8))]


async def test_without_combine_the_result_is_none_and_failures_are_reported() -> None:
    pub = FakePublisher()
    seen: list[list[int | None]] = []
    handler = IsolatingBatchHandler(
        Poisoned({0, 5}),
        dead_letters=DeadLetterSink(pub, "c"),
        policy=RetryPolicy(attempts=1),
        on_failure=lambda recs, exc: seen.append([r.offset for r in recs]),
    )
    assert await handler(_records(6)) is None
    assert [DeadLetter.model_validate_json(m).offset for m in pub.on(topics.DEAD_LETTER)] == [0, 5]
    assert seen == [[0, 1, 2, 3, 4, 5], [0], [5]]
