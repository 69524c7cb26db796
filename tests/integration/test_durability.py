"""Short `make durability`: a fresh stack filled through the loop survives kill -9 of every process at once."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_a_machine_crash_loses_nothing() -> None:
    from axis_simulators.durability import line, run_durability
    from axis_stack import down
    from axis_stack.supervisor import stop_services

    data_dir = Path(tempfile.mkdtemp(prefix="axis-dur-", dir="/tmp"))  # its own stack: the test kills all of it
    lines: list[str] = []
    try:
        before, after, lost = run_durability(data_dir, plates=1, wells=6, say=lines.append)
    finally:
        stop_services(data_dir, say=lambda s: None)
        down(data_dir, quiet=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    detail = "\n".join([*lines, *lost, f"before {before}", f"after {after}"])
    assert before.images >= 24 and before.dataset_objects >= 3 and before.model_versions == 2, detail
    assert before.model_artifacts_ok == 2 and before.rows["image_scores"] >= 24, detail
    assert not lost, detail
    print("\n" + line(before, after, lost))
