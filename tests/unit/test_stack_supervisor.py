"""Supervisor logic without processes: the service selection, log rotation, restart back-off, services.env."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from axis_stack.supervisor import (
    Child,
    ChildState,
    RotatingLog,
    ServiceSpec,
    parse_selection,
    services_env,
)

pytestmark = pytest.mark.unit


def test_selection_all_none_subset_and_unknown() -> None:
    assert "inference" in parse_selection("all") and "trainer" in parse_selection(None)
    assert parse_selection("none") == []
    assert parse_selection("inference, discrepancy") == ["inference", "discrepancy"]
    with pytest.raises(ValueError, match="unknown services \\['scorer'\\]"):
        parse_selection("inference,scorer")


def test_logs_rotate_past_the_size_and_keep_n_old_files(tmp_path: Path) -> None:
    log = RotatingLog(tmp_path / "svc.log", max_bytes=100, backups=2)
    for i in range(10):
        log.write(f"line {i:02d} ".encode() * 5)  # 40 bytes
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["svc.log", "svc.log.1", "svc.log.2"]
    assert all((tmp_path / n).stat().st_size <= 120 for n in names)
    assert b"line 09" in (tmp_path / "svc.log").read_bytes()


def test_restart_back_off_doubles_to_a_minute_and_resets_after_a_long_run(tmp_path: Path) -> None:
    child = Child("svc", ServiceSpec("json"), ChildState("svc"), {}, RotatingLog(tmp_path / "svc.log"))
    waits = []
    for _ in range(8):
        child.started_at = time.monotonic()  # it died at once
        child.schedule_restart("exited with status 1")
        waits.append(child.backoff)
    assert waits == [2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    child.started_at -= 600  # ran ten minutes before dying
    child.schedule_restart("exited with status 1")
    assert child.backoff == 1.0 and child.st.restarts == 9 and child.st.state == "restarting"


def test_services_env_is_made_once_with_a_random_lims_key(tmp_path: Path) -> None:
    first = services_env(tmp_path)
    again = services_env(tmp_path)
    assert first == again and len(first["AXIS_LIMS__API_KEY"]) >= 24
    assert first["AXIS_INGEST__WATCH_DIR"] == str(tmp_path / "inbox")
    assert (tmp_path / "services.env").stat().st_mode & 0o077 == 0
    assert (
        services_env(tmp_path / "other" if (tmp_path / "other").mkdir() is None else tmp_path)["AXIS_LIMS__API_KEY"]
        != first["AXIS_LIMS__API_KEY"]
    )
