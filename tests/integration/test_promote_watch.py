"""An admin moves `champion` in MLflow (as the UI does, through the client): the promote-watch service records it
(via=mlflow, with the gate's verdict), ModelPromoted is published once, inference serves the new version; moving
the alias back is recorded as a rollback and shown by `axis audit --model`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from axis_stack import StackInfo

pytestmark = pytest.mark.integration
SERVICES = ["inference", "promote-watch"]


def _until(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(1)


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "axis_cli", *args], env=env, capture_output=True, text=True, timeout=300
    )


def _promotions(conninfo: str, model: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        return conn.execute(
            "SELECT version, previous_version, via, kind, promoted_by, gate, published_at IS NOT NULL "
            "FROM model_promotions WHERE model_name = %s ORDER BY id",
            (model,),
        ).fetchall()


def _serving_version(conninfo: str, event_id: str) -> str | None:
    import psycopg

    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT model_version FROM image_scores WHERE image_event_id = %s::uuid", (event_id,)
        ).fetchone()
    return None if row is None else str(row[0])


async def _promoted_events(bootstrap: str, model: str) -> list[dict[str, Any]]:
    from axis_contracts import topics
    from kafka_probe import read_topic

    raw = await read_topic(bootstrap, topics.MODEL_PROMOTED, lambda b: model.encode() in b)
    return [json.loads(b) for b in raw]


async def test_alias_moved_in_mlflow_is_audited_announced_once_served_and_rolled_back(
    stack: StackInfo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from axis_adapters.registry import CHAMPION, ModelRegistry
    from axis_adapters.settings import ServiceSettings
    from axis_simulators.chaos_procs import make_bootstrap_bundle
    from axis_simulators.hostile import Client
    from axis_simulators.hostile_corpus import Corpus
    from axis_stack.supervisor import start_services, stop_services

    run = uuid.uuid4().hex[:6].upper()
    vis, uv = f"watch-visible-{run}", f"watch-uv-{run}"
    monkeypatch.setenv("AXIS_MLFLOW__VISIBLE_MODEL", vis)
    monkeypatch.setenv("AXIS_MLFLOW__UV_MODEL", uv)
    monkeypatch.setenv("AXIS_INFERENCE__POLL_SECONDS", "2")
    monkeypatch.setenv("AXIS_PROMOTE_WATCH__POLL_S", "1")
    monkeypatch.setenv("AXIS_PROMOTE_WATCH__SETTLE_S", "2")
    env = {**os.environ, "AXIS_ENV_FILE": str(stack.env_file)}
    settings = ServiceSettings(_env_file=str(stack.env_file))  # type: ignore[call-arg]
    conninfo = settings.postgres.conninfo()
    bootstrap = settings.kafka.bootstrap_servers
    registry = ModelRegistry(stack.mlflow_uri)
    data_dir = stack.data_dir
    bundle = make_bootstrap_bundle(tmp_path / "bundle")
    assert start_services(data_dir, SERVICES, say=lambda s: None)
    client = Client(settings)
    await client.start()
    corpus = Corpus(run)

    async def score_one() -> str | None:
        case = corpus.good_image()
        await asyncio.to_thread(client.upload, [case])
        await client.send(case)
        assert case.event_id
        eid = case.event_id
        return await asyncio.to_thread(_until, lambda: _serving_version(conninfo, eid), 120, "image scored")

    async def served(version: str) -> None:
        for _ in range(20):  # inference polls the alias itself: the swap follows within a few seconds
            if await score_one() == version:
                return
            await asyncio.sleep(1)
        raise AssertionError(f"inference never served v{version}")

    try:
        # v1 via the CLI (register --promote), v2 registered as challenger
        out = await asyncio.to_thread(_cli, env, "register", str(bundle), "--promote", "--by", "test", "--reason", "t")
        assert out.returncode == 0, out.stdout + out.stderr
        out = await asyncio.to_thread(_cli, env, "register", str(bundle))
        assert out.returncode == 0, out.stdout + out.stderr
        await served("1")
        await asyncio.sleep(4)  # longer than the watcher's settle time: the CLI promotion must not be recorded twice
        assert [r[2] for r in _promotions(conninfo, vis)] == ["cli"]

        # the admin moves the alias in MLflow, as the UI does
        registry.client.set_registered_model_alias(vis, CHAMPION, "2")
        rows = await asyncio.to_thread(
            _until, lambda: len(_promotions(conninfo, vis)) == 2 and _promotions(conninfo, vis)[-1][6], 60, "row"
        )
        rows = _promotions(conninfo, vis)
        version, previous, via, kind, by, gate, published = rows[-1]
        assert (version, previous, via, kind, by, published) == ("2", "1", "mlflow", "promotion", "mlflow", True)
        assert gate["verdict"] == "unavailable" and "test_predictions.jsonl" in " ".join(gate["notes"])
        await served("2")
        events = [e for e in await _promoted_events(bootstrap, vis) if e["version"] == "2"]
        assert len(events) == 1 and events[0]["previous_version"] == "1", events

        # rollback: the alias back to v1
        registry.client.set_registered_model_alias(vis, CHAMPION, "1")
        await asyncio.to_thread(_until, lambda: len(_promotions(conninfo, vis)) == 3, 60, "rollback row")
        version, previous, via, kind, *_ = _promotions(conninfo, vis)[-1]
        assert (version, previous, via, kind) == ("1", "2", "mlflow", "rollback")
        await served("1")
        await asyncio.sleep(4)
        assert len(_promotions(conninfo, vis)) == 3  # nothing recorded twice
        events = await _promoted_events(bootstrap, vis)
        assert [(e["version"], e["previous_version"]) for e in events] == [("1", None), ("2", "1"), ("1", "2")]
        out = await asyncio.to_thread(_cli, env, "audit", "--model", vis)
        assert out.returncode == 0, out.stderr
        print(out.stdout)
        assert "v2 -> v1  rollback via mlflow" in out.stdout and "v1 -> v2  promotion via mlflow" in out.stdout
    finally:
        await client.stop()
        stop_services(data_dir, say=lambda s: None)
