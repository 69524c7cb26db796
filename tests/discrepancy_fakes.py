"""A discrepancy service with its database transaction replaced, for unit tests of batching and retries."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from axis_adapters.kafka import RawRecord
from axis_contracts import DEFAULT_SCHEME, topics
from axis_discrepancy.service import DiscrepancyService
from fakes import FakePublisher


def stub_service(
    process: Callable[[Sequence[RawRecord]], Awaitable[None]], **options: Any
) -> tuple[DiscrepancyService, FakePublisher]:
    """The service with ``process`` as its batch transaction, an empty outbox and a FakePublisher."""
    pub = FakePublisher()
    svc = DiscrepancyService(
        pool=None,  # type: ignore[arg-type]
        publisher=pub,
        scheme=DEFAULT_SCHEME,
        crystal_topic=topics.CRYSTAL_SCORED,
        user_topic=topics.USER_SCORED,
        **options,
    )

    async def no_outbox(limit: int = 500) -> int:
        return 0

    svc._process = process  # type: ignore[method-assign]
    svc.publish_pending = no_outbox  # type: ignore[method-assign]
    return svc, pub
