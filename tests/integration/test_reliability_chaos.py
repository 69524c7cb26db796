"""CI-sized chaos: 200 image events while inference, discrepancy, the broker and PostgreSQL are killed/restarted."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from axis_stack import StackInfo

pytestmark = pytest.mark.integration


async def test_nothing_is_lost_or_doubled_across_five_restarts(stack: StackInfo) -> None:
    import asyncio

    from axis_simulators.chaos import DEFAULT_SCHEDULE, run_chaos
    from axis_stack import up

    # the broker must keep its topics across its own restart: switch the test stack to tansu's s3 storage
    await asyncio.to_thread(up, stack.data_dir, kafka_storage="s3", quiet=True)
    lines: list[str] = []
    report = await run_chaos(stack.data_dir, events=200, rate=8, timeout_s=150, say=lines.append)
    c = report.counts
    detail = "\n".join(lines + c.problems[:20])
    assert len(report.restarts) == len(DEFAULT_SCHEDULE) >= 3, detail
    assert {r.split(" ")[0].split(":")[1] for r in report.restarts} >= {"inference", "discrepancy", "kafka", "postgres"}
    assert c.sent >= 200 and c.scored == c.sent and c.lost == 0, detail
    assert c.duplicated == 0 and c.fused == c.sent // 2, detail
    assert c.compared == c.inspections and c.queue_items == c.disagreements, detail
    assert c.dead_lettered == 0 and not report.crashes, detail
    print("\n" + report.line())
