"""CI-sized hostile-input run: ~110 bad inputs of every class through the real broker and HTTP, services as processes.

The full run (three copies of the corpus, inference killed -9 half-way) is ``make hostile``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from axis_stack import StackInfo

pytestmark = pytest.mark.integration


async def test_bad_inputs_are_rejected_once_each_and_good_ones_applied_once(stack: StackInfo) -> None:
    from axis_simulators.hostile import run_hostile

    lines: list[str] = []
    report = await run_hostile(stack.data_dir, scale=1, kill_midway=False, timeout_s=240, say=lines.append)
    detail = "\n".join(lines + report.problems[:40])
    assert report.bad >= 100 and report.classes >= 12, detail
    assert report.good >= 50 and report.applied == report.good, detail
    assert report.rejected_once == report.bad, detail
    assert report.stalls == 0 and report.http_5xx == 0, detail
    assert not report.problems, detail
    print("\n" + report.line())
