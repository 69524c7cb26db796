"""How the discrepancy service treats failures: transient ones redeliver the batch, others isolate the bad record."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
import pytest
from axis_adapters.kafka import RawRecord
from axis_adapters.retry import RetryPolicy
from axis_contracts import DeadLetter, topics
from axis_discrepancy.service import DiscrepancyService
from discrepancy_fakes import stub_service
from fakes import FakePublisher

pytestmark = pytest.mark.unit


def make_service(fail: Any) -> tuple[DiscrepancyService, FakePublisher, list[list[bytes]]]:
    applied: list[list[bytes]] = []

    async def process(records: Sequence[RawRecord]) -> None:
        fail(records)
        applied.append([r.value for r in records])

    svc, pub = stub_service(process, retry=RetryPolicy(attempts=8, base_delay_s=0.0, max_delay_s=0.0))
    return svc, pub, applied


RECORDS = [RawRecord(topics.USER_SCORED, 0, n, None, f'{{"n": {n}}}'.encode()) for n in range(3)]


async def test_transient_error_propagates_and_dead_letters_nothing() -> None:
    def fail(records: Sequence[RawRecord]) -> None:
        raise psycopg.OperationalError("connection refused")

    svc, pub, applied = make_service(fail)
    with pytest.raises(psycopg.OperationalError):
        await svc.handle(RECORDS)
    assert pub.published == [] and applied == []


async def test_permanent_error_isolates_the_bad_record() -> None:
    def fail(records: Sequence[RawRecord]) -> None:
        if any(b'"n": 1' in r.value for r in records):
            raise psycopg.errors.NumericValueOutOfRange("value out of range for type integer")

    svc, pub, applied = make_service(fail)
    await svc.handle(RECORDS)
    assert applied == [[b'{"n": 0}'], [b'{"n": 2}']]  # the good records of the batch went through
    [raw] = pub.on(topics.DEAD_LETTER)
    dl = DeadLetter.model_validate_json(raw)
    assert (dl.raw_value, dl.offset, dl.error_type) == ('{"n": 1}', 1, "NumericValueOutOfRange")
    assert "out of range" in dl.error
