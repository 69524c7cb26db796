"""`make up` runs every service supervised: healthy, restarted after kill -9 without lost or doubled effects, and
`make down` leaves no process. The model comes in through `axis_cli register` (a local bundle, promoted)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from axis_stack import StackInfo

pytestmark = pytest.mark.integration
SERVICES = ["inference", "discrepancy", "lims-gateway", "curation", "trainer", "promote-watch"]


def _until(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


def _rows(data_dir: Path) -> dict[str, object]:
    from axis_stack.supervisor import service_rows

    return {r.name: r for r in service_rows(data_dir)}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").exists() and " Z " not in Path(f"/proc/{pid}/stat").read_text()


async def test_services_are_supervised_restarted_and_stopped(
    stack: StackInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from axis_adapters.settings import ServiceSettings
    from axis_simulators.chaos_procs import make_bootstrap_bundle
    from axis_simulators.hostile import Client
    from axis_simulators.hostile_corpus import Corpus
    from axis_stack.supervisor import read_state, start_services, stop_services

    run = uuid.uuid4().hex[:6].upper()
    # this run's own registered models, so other tests' champions are not touched
    monkeypatch.setenv("AXIS_MLFLOW__VISIBLE_MODEL", f"sup-visible-{run}")
    monkeypatch.setenv("AXIS_MLFLOW__UV_MODEL", f"sup-uv-{run}")
    monkeypatch.setenv("AXIS_INFERENCE__POLL_SECONDS", "2")
    data_dir = stack.data_dir
    assert start_services(data_dir, SERVICES, say=lambda s: None)
    try:
        assert not start_services(data_dir, SERVICES, say=lambda s: None)  # a second `up` is a no-op
        _until(
            lambda: (
                _rows(data_dir).get("inference") is not None
                and _rows(data_dir)["inference"].health == "waiting_for_champion"
            ),
            180,
            "inference waiting",
        )  # type: ignore[attr-defined]
        bundle = make_bootstrap_bundle(tmp_path / "bundle")
        env = {**os.environ, "AXIS_ENV_FILE": str(stack.env_file)}
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "axis_cli", "register", str(bundle), "--promote", "--by", "test", "--reason", "t"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stdout + out.stderr
        _until(
            lambda: all(r.health == "ok" for r in _rows(data_dir).values()),  # type: ignore[attr-defined]
            180,
            "every service healthy",
        )
        settings = ServiceSettings(_env_file=str(stack.env_file))  # type: ignore[call-arg]
        client = Client(settings)
        await client.start()
        corpus = Corpus(run)
        try:
            first = [corpus.good_image() for _ in range(10)]
            await asyncio.to_thread(client.upload, first)
            for case in first:
                await client.send(case)
            ids = [c.event_id for c in first if c.event_id]
            await asyncio.to_thread(_until, lambda: len(client.scored(ids)) == 10, 120, "first images scored")
            old_pid = read_state(data_dir)["services"]["inference"]["pid"]
            os.kill(old_pid, signal.SIGKILL)
            more = [corpus.good_image() for _ in range(10)]
            await asyncio.to_thread(client.upload, more)
            for case in more:
                await client.send(case)
            ids += [c.event_id for c in more if c.event_id]
            await asyncio.to_thread(_until, lambda: len(client.scored(ids)) == 20, 240, "images after the restart")
            st = read_state(data_dir)["services"]["inference"]
            assert st["pid"] != old_pid and st["restarts"] >= 1 and st["last_exit"] == -9, st
            scored = client.scored(ids)
            assert sorted(scored.values()) == [1] * 20, scored  # none lost, none scored twice
        finally:
            await client.stop()
        pids = [s["pid"] for s in read_state(data_dir)["services"].values() if s["pid"]]
    finally:
        stop_services(data_dir, say=lambda s: None)
    assert pids and not any(_pid_alive(p) for p in pids)
    assert all(s["state"] == "stopped" for s in read_state(data_dir)["services"].values())
    assert (data_dir / "logs" / "inference.log").read_text().count("starting inference") >= 2
