"""Stopping a started process also stops its children, and a reused pid is never taken for ours."""

from __future__ import annotations

from pathlib import Path

import pytest
from axis_stack.procs import ProcRecord, group_members, is_alive, spawn, start_time_of, stop_group, wait_until

pytestmark = pytest.mark.unit


def test_stop_group_leaves_no_child_running(tmp_path: Path) -> None:
    rec = spawn(["sh", "-c", "sleep 60 & sleep 60 & wait"], log_path=tmp_path / "x.log")
    wait_until(lambda: len(group_members(rec)) == 3, timeout=10, what="children")
    members = {pid: start_time_of(pid) for pid in group_members(rec)}
    stop_group(rec, timeout=5)
    assert not is_alive(rec)
    assert [pid for pid, start in members.items() if start_time_of(pid) == start] == []


def test_a_record_with_another_start_time_is_not_alive(tmp_path: Path) -> None:
    rec = spawn(["sleep", "30"], log_path=tmp_path / "y.log")
    try:
        assert is_alive(rec)
        assert not is_alive(ProcRecord(rec.pid, rec.start_time + 1))
    finally:
        stop_group(rec)
