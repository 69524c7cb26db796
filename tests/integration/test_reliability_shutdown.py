"""SIGTERM to the inference service under load: it finishes the batch in flight, commits, and exits in time."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

if TYPE_CHECKING:
    from axis_stack import StackInfo

pytestmark = pytest.mark.integration
SHUTDOWN_BOUND_S = 10


async def test_sigterm_drains_the_batch_commits_and_exits(stack: StackInfo, tmp_path: Path) -> None:
    from axis_adapters.kafka import make_broker, publish_event
    from axis_adapters.objectstore import MinioObjectStore
    from axis_adapters.settings import ServiceSettings
    from axis_inference.seeding import drop_jpeg, image_event
    from axis_simulators.chaos_procs import ServiceProc, service_env

    run = uuid.uuid4().hex[:6].upper()
    env = service_env(stack.env, tmp_path, run)
    env["AXIS_INFERENCE__SHUTDOWN_TIMEOUT_S"] = str(SHUTDOWN_BOUND_S)
    env["AXIS_INFERENCE__BATCH_SIZE"] = "8"
    settings = ServiceSettings(_env_file=str(stack.env_file))  # type: ignore[call-arg]
    store = MinioObjectStore(settings.s3)
    events = []
    for i in range(120):
        uri = f"s3://axis-images/shutdown/{run}/{i}.jpg"
        await asyncio.to_thread(store.put_bytes, uri, drop_jpeg(60 + i % 100, seed=i), "image/jpeg")
        well = f"{'ABCDEFGH'[i % 8]}{i // 8 % 12 + 1}"
        events.append(
            image_event(plate=f"SD{run}", well=well, inspection=f"SD{run}-{i}", mode=("visible", "uv")[i % 2], uri=uri)
        )
    proc = ServiceProc("inference", ["-m", "axis_inference"], env, tmp_path / "inference.log")
    proc.start()
    broker = make_broker(settings.kafka)
    await broker.start()
    try:
        for e in events:
            await publish_event(broker, e)
    finally:
        await broker.stop()
    conninfo = settings.postgres.conninfo()

    def scored() -> int:
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SELECT count(*) FROM images WHERE plate_barcode = %s", (f"SD{run}",)).fetchone()
        return int(row[0]) if row else 0

    deadline = time.monotonic() + 120
    while await asyncio.to_thread(scored) < 8:  # scoring is under way
        assert time.monotonic() < deadline and not proc.exited(), (tmp_path / "inference.log").read_text()[-3000:]
        await asyncio.sleep(0.05)
    t0 = time.monotonic()
    code = await asyncio.to_thread(proc.terminate, SHUTDOWN_BOUND_S + 10)
    took = time.monotonic() - t0
    log = (tmp_path / "inference.log").read_text()
    assert code == 0, f"exit status {code} after {took:.1f}s:\n{log[-3000:]}"
    assert "stopped" in log.splitlines()[-1] or "stopped" in log[-500:]
    done_before_restart = await asyncio.to_thread(scored)
    # what was committed stays committed; what was not is scored once by the next run, nothing twice
    proc.start()
    deadline = time.monotonic() + 180
    while await asyncio.to_thread(scored) < len(events):
        assert time.monotonic() < deadline and not proc.exited(), log[-2000:]
        await asyncio.sleep(0.5)
    with psycopg.connect(conninfo) as conn:
        dup = conn.execute(
            "SELECT count(*) FROM (SELECT s.image_event_id FROM image_scores s JOIN images i USING (image_event_id) "
            "WHERE i.plate_barcode = %s GROUP BY s.image_event_id, s.model_version HAVING count(*) > 1) d",
            (f"SD{run}",),
        ).fetchone()
    proc.stop()
    assert dup is not None and dup[0] == 0
    assert 8 <= done_before_restart <= len(events)
    print(f"\nshutdown: SIGTERM -> exit 0 in {took:.1f}s (bound {SHUTDOWN_BOUND_S}s), {done_before_restart} committed")
