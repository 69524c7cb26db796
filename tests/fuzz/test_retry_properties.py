"""Properties of axis_adapters.retry: bounded attempts and waits, transient retried, permanent raised at once."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from axis_adapters.objectstore import ObjectMissing, ObjectStoreUnavailable
from axis_adapters.retry import RetriesExhausted, RetryPolicy, classify, retry_async, retry_call
from fuzz_inputs import FUZZ, count
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.unit

TRANSIENT = [ObjectStoreUnavailable("down"), psycopg.OperationalError("gone"), ConnectionResetError(), TimeoutError()]
PERMANENT = [ObjectMissing("no object"), ValueError("bad"), KeyError("k"), RuntimeError("bug")]


def test_classification_of_the_project_errors() -> None:
    from aiokafka.errors import KafkaConnectionError

    assert all(classify(e) == "transient" for e in [*TRANSIENT, KafkaConnectionError()])
    assert all(classify(e) == "permanent" for e in PERMANENT)


@FUZZ
@given(
    attempts=st.integers(1, 12),
    base=st.floats(0, 5),
    cap=st.floats(0, 30),
    jitter=st.floats(0, 1),
    failures=st.integers(0, 20),
)
def test_transient_failures_are_retried_within_the_bounds(
    attempts: int, base: float, cap: float, jitter: float, failures: int
) -> None:
    count("retry: policies")
    policy = RetryPolicy(attempts=attempts, base_delay_s=base, max_delay_s=cap, jitter=jitter)
    waits: list[float] = []
    calls = [0]

    def flaky() -> str:
        calls[0] += 1
        if calls[0] <= failures:
            raise ObjectStoreUnavailable("object store unreachable")
        return "ok"

    if failures < attempts:
        assert retry_call(flaky, policy=policy, sleep=waits.append) == "ok"
        assert calls[0] == failures + 1
    else:
        with pytest.raises(RetriesExhausted, match=f"after {attempts} attempts") as info:
            retry_call(flaky, policy=policy, sleep=waits.append)
        assert isinstance(info.value.last, ObjectStoreUnavailable) and calls[0] == attempts
    assert len(waits) == min(failures, attempts - 1)
    assert all(0 <= w <= cap * (1 + jitter) + 1e-9 for w in waits)
    assert sum(waits) <= policy.total_budget_s() + 1e-6


@pytest.mark.parametrize("error", PERMANENT, ids=lambda e: type(e).__name__)
def test_permanent_errors_are_raised_at_once(error: Exception) -> None:
    calls = [0]

    def broken() -> None:
        calls[0] += 1
        raise error

    with pytest.raises(type(error)):
        retry_call(broken, policy=RetryPolicy(attempts=5), sleep=lambda s: None)
    assert calls[0] == 1


def test_async_retry_resumes_after_an_outage() -> None:
    state = {"calls": 0}

    async def db_query() -> int:
        state["calls"] += 1
        if state["calls"] < 3:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return 42

    async def no_sleep(_: float) -> None:
        return None

    assert asyncio.run(retry_async(db_query, policy=RetryPolicy(attempts=4), sleep=no_sleep)) == 42
    assert state["calls"] == 3


def test_invalid_policies_are_refused_with_the_rule() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="jitter"):
        RetryPolicy(jitter=2)
