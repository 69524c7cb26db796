"""Outages of PostgreSQL are waited out with back-off; a consumer that cannot go on ends the process with status 1."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from axis_adapters.kafka import RawRecord
from axis_adapters.retry import RetryPolicy
from axis_contracts import topics
from axis_discrepancy import app
from axis_discrepancy.app import RunningService, serve
from axis_discrepancy.service import DiscrepancyService
from axis_discrepancy.settings import DiscrepancyOptions, DiscrepancySettings
from discrepancy_fakes import stub_service
from fakes import FakePublisher

pytestmark = pytest.mark.unit

RECORDS = [RawRecord(topics.USER_SCORED, 0, n, None, f'{{"n": {n}}}'.encode()) for n in range(3)]
FAST = RetryPolicy(attempts=4, base_delay_s=0.0, max_delay_s=0.0)


def make_service(
    outcomes: list[Any], *, attempt_timeout_s: float = 5.0
) -> tuple[DiscrepancyService, FakePublisher, list[int]]:
    """A service whose batch transaction does, per attempt, the next of ``outcomes`` (an exception, a hang, ok)."""
    applied: list[int] = []

    async def process(records: Sequence[RawRecord]) -> None:
        outcome = outcomes.pop(0) if outcomes else "ok"
        if outcome == "hang":
            await asyncio.sleep(3600)
        if isinstance(outcome, BaseException):
            raise outcome
        applied.append(len(records))

    svc, pub = stub_service(process, retry=FAST, attempt_timeout_s=attempt_timeout_s)
    return svc, pub, applied


async def test_a_short_outage_is_waited_out_and_the_batch_applied_once() -> None:
    down = psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    svc, pub, applied = make_service([down, psycopg.OperationalError("connection refused"), down])
    await svc.handle(RECORDS)
    assert applied == [3]  # the whole batch, once, after three failed attempts
    assert pub.published == []  # nothing dead-lettered
    assert svc.failing_since is None


async def test_an_outage_longer_than_the_policy_redelivers_and_dead_letters_nothing() -> None:
    svc, pub, applied = make_service([psycopg.OperationalError("connection refused")] * 10)
    with pytest.raises(psycopg.OperationalError):
        await svc.handle(RECORDS)  # FastStream NACKs: the batch comes again
    assert applied == [] and pub.published == []
    assert svc.failing_since is not None  # the outage is measured for the watchdog


async def test_a_hanging_attempt_is_bounded_and_retried() -> None:
    svc, pub, applied = make_service(["hang"], attempt_timeout_s=0.2)
    await svc.handle(RECORDS)
    assert applied == [3] and pub.published == []


class FakeSubscriber:
    topic_names = ["scores"]

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.running = True
        self.tasks = [task]


class FakeBroker:
    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.subscribers = [FakeSubscriber(task)]
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True


class FakePool:
    async def close(self, **_: Any) -> None:
        return None


def fake_running(task: asyncio.Task[Any]) -> RunningService:
    svc, _, _ = make_service([])
    return RunningService(broker=FakeBroker(task), pool=FakePool(), service=svc)  # type: ignore[arg-type]


async def test_a_consumer_task_that_ended_is_a_problem_an_alive_one_is_not() -> None:
    alive = asyncio.create_task(asyncio.sleep(3600))
    running = fake_running(alive)
    assert running.problem(max_outage_s=60) is None
    alive.cancel()
    await asyncio.sleep(0)
    assert running.problem(max_outage_s=60) is None  # a restart by FastStream may be under way: checked twice
    problem = running.problem(max_outage_s=60)
    assert problem is not None and "cancelled" in problem


async def test_a_long_outage_is_a_problem() -> None:
    alive = asyncio.create_task(asyncio.sleep(3600))
    running = fake_running(alive)
    running.service.failing_since = time.monotonic() - 100
    try:
        problem = running.problem(max_outage_s=30)
        assert problem is not None and "MAX_OUTAGE_S" in problem
    finally:
        alive.cancel()


def settings(**opts: Any) -> DiscrepancySettings:
    return DiscrepancySettings(  # type: ignore[call-arg]
        _env_file=None, discrepancy=DiscrepancyOptions(watchdog_interval_s=0.05, **opts)
    )


async def test_serve_exits_1_with_a_critical_line_when_the_consumer_dies(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    consumer = asyncio.create_task(asyncio.sleep(0.2))  # the consume loop "ends" after 0.2 s
    running = fake_running(consumer)

    async def start(cls: Any, s: Any, **kw: Any) -> RunningService:
        return running

    monkeypatch.setattr(RunningService, "start_retrying", classmethod(start))
    with caplog.at_level(logging.CRITICAL, logger=app.__name__):
        code = await asyncio.wait_for(serve(settings(), asyncio.Event()), timeout=10)
    assert code == 1
    assert any("cannot continue" in r.getMessage() for r in caplog.records)
    assert running.broker.stopped  # type: ignore[attr-defined]


async def test_serve_exits_0_when_asked_to_stop(monkeypatch: pytest.MonkeyPatch) -> None:
    consumer = asyncio.create_task(asyncio.sleep(3600))
    running = fake_running(consumer)

    async def start(cls: Any, s: Any, **kw: Any) -> RunningService:
        return running

    monkeypatch.setattr(RunningService, "start_retrying", classmethod(start))
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(settings(), stop))
    await asyncio.sleep(0.3)
    assert not serving.done()  # healthy: still serving
    stop.set()
    assert await asyncio.wait_for(serving, timeout=10) == 0
    consumer.cancel()


async def test_serve_exits_1_when_it_cannot_start(monkeypatch: pytest.MonkeyPatch) -> None:
    async def start(cls: Any, s: Any, **kw: Any) -> RunningService:
        raise psycopg.OperationalError("connection refused")

    monkeypatch.setattr(RunningService, "start_retrying", classmethod(start))
    assert await asyncio.wait_for(serve(settings(), asyncio.Event()), timeout=10) == 1


async def test_the_outbox_flush_at_start_rides_out_an_outage() -> None:
    svc, _, _ = make_service([])
    results: list[Any] = [psycopg.errors.AdminShutdown("terminating connection"), psycopg.OperationalError("refused")]

    async def outbox(limit: int = 500) -> int:
        if results:
            raise results.pop(0)
        return 2

    svc.publish_pending = outbox  # type: ignore[method-assign]
    assert await svc.flush_outbox() == 2  # published after two failed attempts

    async def down(limit: int = 500) -> int:
        raise psycopg.OperationalError("connection refused")

    svc.publish_pending = down  # type: ignore[method-assign]
    assert await svc.flush_outbox() == 0  # the next batch publishes it; nothing raised into the app
