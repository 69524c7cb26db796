"""Curation learns from events only, and its read model is rebuilt from the log into an empty schema.

The discrepancy and curation services run as processes on the embedded stack; scores go in as events (the
robot's and the LIMS's); curators label through the HTTP API. Then curation is stopped, its schema dropped and
made again (as ``make up`` does), curation started: after replaying the topics, its queue with labels, plate
map and dataset candidates equal the ones built live.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from axis_adapters.kafka import make_broker, publish_event
from axis_adapters.settings import KafkaSettings
from axis_contracts import CrystalScored, ModeScore, UserScored
from axis_simulators.chaos_procs import ServiceProc
from axis_stack import StackInfo
from axis_stack.procs import free_port
from axis_stack.schemas import migrate_all

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6].upper()
PLATE = f"RB-{RUN}"
PASSWORD = "rebuild-pass-0123456789"


def _events(n: int) -> list[CrystalScored | UserScored]:
    """n inspections: ML scores, and user scores of which every third disagrees."""
    out: list[CrystalScored | UserScored] = []
    at = datetime.now(UTC) - timedelta(hours=2)
    for i in range(n):
        well = f"{'ABCDEFGH'[i // 12]}{i % 12 + 1}"
        iid = f"{PLATE}-{well}-1"
        p = 0.9 if i % 2 else 0.1
        mode = ModeScore(probability=p, threshold=0.5, model_name="axis-visible", model_version="1",
                         image_uri=f"s3://axis-images/{PLATE}/{well}.png", image_event_id=uuid.uuid4())  # fmt: skip
        label = "crystal" if p >= 0.5 else "other"
        out.append(CrystalScored(producer="it", plate_barcode=PLATE, well=well, inspection_id=iid, imaged_at=at,
                                 scores={"visible": mode}, fused_probability=p, label=label, threshold=0.5,
                                 model_name="axis-visible", model_version="1"))  # fmt: skip
        agree = i % 3 != 0
        score = ("single_crystals" if label == "crystal" else "clear") if agree else (
            "clear" if label == "crystal" else "microcrystals")  # fmt: skip
        out.append(UserScored(producer="it", inspection_id=iid, user_id=f"sci-{i % 2}", score=score,
                              scored_at=at + timedelta(minutes=5)))  # fmt: skip
    return out


async def _publish(bootstrap: str, events: list[CrystalScored | UserScored]) -> None:
    broker = make_broker(KafkaSettings(bootstrap_servers=bootstrap))
    await broker.start()
    try:
        for e in events:
            await publish_event(broker, e)
    finally:
        await broker.stop()


def _wait(what: str, ok: Callable[[], bool], procs: list[ServiceProc], timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            assert not p.exited(), f"{p.name} exited: {p.log.read_text()[-3000:]}"
        if ok():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _snapshot(admin: str, base: str, cookies: httpx.Cookies) -> dict[str, Any]:
    """What curators and the dataset builder see of this plate: queue items + labels, plate map, candidates."""
    with psycopg.connect(admin) as conn:
        items = conn.execute(
            "SELECT id, inspection_id, kind, reason, status, resolved_label, ml_probability, human_label, user_id "
            "FROM curation.discrepancies WHERE plate_barcode = %s ORDER BY id",
            (PLATE,),
        ).fetchall()
        labels = conn.execute(
            "SELECT l.discrepancy_id, l.curator, l.label, l.comment, l.label_event_id FROM curation.curator_labels l "
            "JOIN curation.discrepancies d ON d.id = l.discrepancy_id WHERE d.plate_barcode = %s ORDER BY 1, 5",
            (PLATE,),
        ).fetchall()
        agreements = conn.execute(
            "SELECT inspection_id, agrees, human_label, revision FROM curation.comparisons WHERE plate_barcode = %s "
            "ORDER BY 1",
            (PLATE,),
        ).fetchall()
    plate = httpx.get(f"{base}/v1/plates/{PLATE}", cookies=cookies, timeout=30)
    plate.raise_for_status()
    return {"items": items, "labels": labels, "comparisons": agreements, "plate": plate.json()}


def _curation_env(stack: StackInfo, port: int) -> dict[str, str]:
    return {
        **os.environ,
        **stack.env,
        "AXIS_ENV_FILE": str(stack.env_file),
        "PYTHONUNBUFFERED": "1",
        "AXIS_CURATION__PORT": str(port),
        "AXIS_CURATION__BOOTSTRAP_ADMIN": "false",
        "AXIS_CURATION__BCRYPT_ROUNDS": "4",
    }


def _login(base: str, user: str) -> httpx.Cookies:
    r = httpx.post(f"{base}/v1/login", json={"username": user, "password": PASSWORD}, timeout=30)
    r.raise_for_status()
    return r.cookies


def _create_user(env: dict[str, str], name: str, role: str) -> None:
    import subprocess

    argv = [sys.executable, "-m", "axis_curation", "create-user", name, "--role", role]
    subprocess.run(argv, env={**env, "AXIS_NEW_USER_PASSWORD": PASSWORD}, check=True, capture_output=True, timeout=120)


def test_curation_rebuilds_its_read_model_from_the_log(stack: StackInfo, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _curation_env(stack, port)
    admin = stack.postgres_conninfo()
    discrepancy = ServiceProc("discrepancy", ["-m", "axis_discrepancy"], env, tmp_path / "discrepancy.log")
    curation = ServiceProc("curation", ["-m", "axis_curation", "serve"], env, tmp_path / "curation.log")
    procs = [discrepancy, curation]
    n = 24
    try:
        discrepancy.start()
        curation.start()
        asyncio.run(_publish(stack.kafka_bootstrap, _events(n)))

        def count(sql: str) -> int:
            with psycopg.connect(admin) as conn:
                row = conn.execute(sql, (PLATE,)).fetchone()
            return int(row[0]) if row else 0

        # curation learnt every comparison and every disagreement from the events alone
        def learnt() -> bool:
            return (
                count("SELECT count(*) FROM curation.comparisons WHERE plate_barcode = %s") == n
                and count("SELECT count(*) FROM curation.discrepancies WHERE plate_barcode = %s") == n // 3
                and count("SELECT count(*) FROM curation.inspection_scores WHERE plate_barcode = %s") == n
            )

        _wait("curation's read model", learnt, procs)
        _wait("curation's HTTP", lambda: _up(base), procs)
        for name in ("alice", "bob"):
            _create_user(env, f"{name}-{RUN}", "curator")
        alice, bob = _login(base, f"alice-{RUN}"), _login(base, f"bob-{RUN}")
        with psycopg.connect(admin) as conn:
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM curation.discrepancies WHERE plate_barcode = %s ORDER BY id", (PLATE,))]  # fmt: skip
        assert len(ids) == n // 3
        for i, item in enumerate(ids[:5]):  # two curators resolve some, one labels others, one label is undone
            assert httpx.post(f"{base}/v1/items/{item}/labels", json={"label": "crystal", "comment": f"c{i}"},
                              cookies=alice, timeout=30).status_code == 201  # fmt: skip
            if i % 2 == 0:
                assert httpx.post(f"{base}/v1/items/{item}/labels", json={"label": "crystal"}, cookies=bob,
                                  timeout=30).status_code == 201  # fmt: skip
        undo = httpx.delete(f"{base}/v1/items/{ids[1]}/labels/mine", cookies=alice, timeout=30)
        assert undo.status_code == 200, undo.text
        # every label event is on the broker before the rebuild (the outbox is drained)
        _wait("the label events published", lambda: count(
            "SELECT count(*) FROM curation.label_events WHERE published_at IS NULL AND payload->>'plate_barcode' = %s"
        ) == 0, procs)  # fmt: skip
        live = _snapshot(admin, base, alice)
        assert [r[4] for r in live["items"]].count("resolved") == 3, live["items"]
        assert len(live["labels"]) == 5 + 3 - 1

        curation.stop()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("DROP SCHEMA curation CASCADE")
        migrate_all(admin, stack.role_passwords())  # what `make up` does: the role's empty schema, migrated
        with psycopg.connect(admin) as conn:
            assert conn.execute("SELECT count(*) FROM curation.discrepancies").fetchone() == (0,)
        curation = ServiceProc("curation", ["-m", "axis_curation", "serve"], env, tmp_path / "curation-2.log")
        procs = [discrepancy, curation]
        curation.start()
        _wait("curation's HTTP again", lambda: _up(base), procs)
        _create_user(env, f"alice-{RUN}", "curator")  # accounts are curation's own data, not events
        alice = _login(base, f"alice-{RUN}")

        def replayed() -> bool:
            try:
                return _snapshot(admin, base, alice) == live
            except httpx.HTTPStatusError as exc:  # the plate is not back yet (404) while the replay runs
                assert exc.response.status_code == 404, exc
                return False

        _wait("the replay", replayed, procs, timeout=300)
    finally:
        for p in procs:
            p.stop()


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
