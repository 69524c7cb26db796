"""Fuzz suite plumbing: print how many hostile cases each area tried (terminal summary + test-output/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fuzz_inputs import CASES

SUMMARY = Path(__file__).resolve().parents[2] / "test-output" / "fuzz-summary.txt"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    """Echo the cases tried per area and write them to test-output/fuzz-summary.txt."""
    if not CASES:
        return
    lines = [f"{area}: {n} cases" for area, n in sorted(CASES.items())]
    lines.append(f"total: {sum(CASES.values())} fuzz cases tried")
    terminalreporter.section("fuzz cases tried")
    for line in lines:
        terminalreporter.write_line(line)
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text("\n".join(lines) + "\n")


def pytest_configure(config: Any) -> None:
    """Dead-letter warnings are the expected outcome here: keep them out of the output."""
    import logging

    for name in ("axis_adapters.kafka", "axis_inference", "axis_discrepancy", "axis_trainer"):
        logging.getLogger(name).setLevel(logging.ERROR)
