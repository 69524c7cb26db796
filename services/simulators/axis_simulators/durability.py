"""Durability run: fill a fresh stack through the loop, crash every process at once, start again, count again.

``python -m axis_simulators.durability`` (``make durability``): ``axis_stack up`` with every service
supervised, registers and promotes a model bundle (``axis_cli register``), has the robot image a few plates,
answers every inspection with a user score, exports a dataset (``axis_curation export``), then counts — images
(objects and rows), dataset objects, registered model versions whose artifacts download, messages on every
topic (end offsets), committed consumer offsets, rows of the main tables — ``kill -9``s every process of the
stack and its services at the same moment (a machine crash), runs ``axis_stack up`` again, counts again, waits
for the champion to be loaded and scores new images with it. It prints last

``durability: before I images / D datasets / V model versions / M messages; after a hard restart the same; 0 lost``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SERVICES = ["inference", "discrepancy", "lims-gateway", "curation"]
TABLES = ("images", "image_scores", "inspection_scores", "user_scores", "comparisons", "datasets", "processed_events")


@dataclass
class Counts:
    """What the stack holds."""

    images: int = 0
    image_rows: int = 0
    dataset_objects: int = 0
    model_versions: int = 0
    model_artifacts_ok: int = 0
    messages: int = 0
    committed: dict[str, int] = field(default_factory=dict)
    rows: dict[str, int] = field(default_factory=dict)

    def lost_against(self, before: Counts) -> list[str]:
        """What is smaller now than before (nothing may be)."""
        out = []
        for name in ("images", "image_rows", "dataset_objects", "model_versions", "model_artifacts_ok", "messages"):
            if getattr(self, name) < getattr(before, name):
                out.append(f"{name}: {getattr(before, name)} -> {getattr(self, name)}")
        for group, n in before.committed.items():
            if self.committed.get(group, 0) < n:
                out.append(f"committed offsets of {group}: {n} -> {self.committed.get(group, 0)}")
        for table, n in before.rows.items():
            if self.rows.get(table, 0) < n:
                out.append(f"rows of {table}: {n} -> {self.rows.get(table, 0)}")
        return out


def _env(data_dir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "AXIS_ENV_FILE": str(data_dir / "stack.env"), **(extra or {})}


def _run(argv: list[str], env: dict[str, str], timeout: float = 600) -> str:
    out = subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({out.returncode}):\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return out.stdout


def count(data_dir: Path, models: list[str], prefix: str) -> Counts:
    """Count what the stack in ``data_dir`` holds for this run."""
    import psycopg
    from axis_adapters.objectstore import MinioObjectStore
    from axis_adapters.registry import ModelRegistry
    from axis_adapters.settings import ServiceSettings
    from psycopg import sql

    settings = ServiceSettings(_env_file=str(data_dir / "stack.env"))  # type: ignore[call-arg]
    store = MinioObjectStore(settings.s3)
    c = Counts()
    c.images = len(store.list_keys(settings.s3.images_bucket, ""))
    c.dataset_objects = len(store.list_keys(settings.s3.datasets_bucket, ""))
    with psycopg.connect(settings.postgres.conninfo()) as conn:
        for table in TABLES:
            query = sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            c.rows[table] = int(conn.execute(query).fetchone()[0])  # type: ignore[index]
        c.image_rows = c.rows["images"]
    registry = ModelRegistry(settings.mlflow.tracking_uri)
    work = Path(tempfile.mkdtemp(prefix="axis-durability-dl-"))
    try:
        for name in models:
            for v in registry.latest_versions(name):
                c.model_versions += 1
                try:
                    dest = registry.download_bundle(name, v.version, work / f"{name}-{v.version}")
                except Exception as exc:  # the registry row is there, its artifact is not: that is a loss
                    print(f"durability: {name} v{v.version}: artifact not downloadable: {exc}", flush=True)
                    continue
                if (Path(dest) / "bundle.json").exists():
                    c.model_artifacts_ok += 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    c.messages, c.committed = asyncio.run(_offsets(settings.kafka.bootstrap_servers))
    return c


async def _offsets(bootstrap: str) -> tuple[int, dict[str, int]]:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from axis_contracts import topics
    from axis_contracts.topics import ALL_TOPICS

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()
        parts = [TopicPartition(t, p) for t in ALL_TOPICS for p in (consumer.partitions_for_topic(t) or ())]
        # the high watermark of a fetch response, not ListOffsets: Tansu's s3:// storage answers ListOffsets
        # wrongly (1 after 15 records on a partition, measured) while its fetch high watermark is right
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        for _ in range(10):
            await consumer.getmany(*parts, timeout_ms=500, max_records=1)
            if all(consumer.highwater(tp) is not None for tp in parts):
                break
        ends = {tp: consumer.highwater(tp) or 0 for tp in parts}
    finally:
        await consumer.stop()
    committed: dict[str, int] = {}
    groups = {
        "axis-inference": [p for p in parts if p.topic == topics.IMAGE_CAPTURED],
        "axis-discrepancy": [p for p in parts if p.topic in (topics.CRYSTAL_SCORED, topics.USER_SCORED)],
    }
    for group, tps in groups.items():
        # the group's committed offsets, read as the services read them (a member that never joins the group)
        member = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
        await member.start()
        try:
            total = 0
            for tp in tps:
                total += max(0, await member.committed(tp) or 0)
            committed[group] = total
        finally:
            await member.stop()
    return sum(ends.values()), committed


def crash(data_dir: Path) -> list[int]:
    """kill -9 every process of the stack and its services at the same moment; returns the pids."""
    from axis_stack.state import load_state
    from axis_stack.supervisor import read_state, supervisor_record

    pids: list[int] = []
    state = load_state(data_dir)
    if state is not None:
        pids += [rec.pid for rec in state.procs.values()]
    sup = supervisor_record(data_dir)
    if sup is not None:
        pids.append(sup.pid)
    pids += [int(s["pid"]) for s in read_state(data_dir).get("services", {}).values() if s.get("pid")]
    groups = set()
    for pid in pids:
        try:
            groups.add(os.getpgid(pid))
        except ProcessLookupError:
            pass
    for g in groups:  # every process group at once: servers' children (postgres workers) included
        try:
            os.killpg(g, signal.SIGKILL)
        except ProcessLookupError:
            pass
    time.sleep(2)
    return pids


def run_durability(
    data_dir: Path, *, plates: int = 2, wells: int = 24, say: Any = print
) -> tuple[Counts, Counts, list[str]]:
    """The whole run; returns the counts before and after and what was lost."""
    from axis_stack import up
    from axis_stack.supervisor import start_services, stop_services

    from axis_simulators.chaos_procs import make_bootstrap_bundle

    run = uuid.uuid4().hex[:6].upper()
    models = [f"dur-visible-{run}", f"dur-uv-{run}"]
    extra = {
        "AXIS_MLFLOW__VISIBLE_MODEL": models[0],
        "AXIS_MLFLOW__UV_MODEL": models[1],
        "AXIS_INFERENCE__POLL_SECONDS": "2",
    }
    env = _env(data_dir, extra)  # the supervisor hands it to the services
    say(f"durability: run {run}: stack and services up in {data_dir}")
    up(data_dir, quiet=True)
    start_services(data_dir, SERVICES, say=say, env=env)
    bundle = make_bootstrap_bundle(data_dir / f"bundle-{run}")
    _run(["-m", "axis_cli", "register", str(bundle), "--promote", "--by", "durability", "--reason", "run"], env)
    say("durability: model registered and promoted; the robot images the plates")
    _wait_health(data_dir, "inference", lambda b: bool(b.get("models")), 240)
    prefix = f"DUR{run}"
    robot = [
        "-m",
        "axis_simulators",
        "robot",
        "--plates",
        str(plates),
        "--wells",
        str(wells),
        "--inspections",
        "2",
        "--barcode-prefix",
        prefix,
        "--run-id",
        f"dur-{run}",
        "--domain",
        "B",
    ]
    _run(robot, env)
    expected = plates * wells * 2 * 2
    _wait_sql(data_dir, SCORED_SQL, prefix, expected, 300, "every image scored")
    _answer_all(data_dir, prefix)
    _wait_sql(data_dir, COMPARED_SQL, prefix, plates * wells * 2, 300, "every inspection compared")
    _run(["-m", "axis_curation", "export", "--name", f"dur-{run.lower()}", "--no-publish"], env)
    say("durability: dataset exported; counting, then kill -9 of every process at once")
    before = count(data_dir, models, prefix)
    pids = crash(data_dir)
    say(f"durability: killed {len(pids)} processes; starting again")
    up(data_dir, quiet=True)
    start_services(data_dir, SERVICES, say=say, env=env)
    after = count(data_dir, models, prefix)
    lost = after.lost_against(before)
    try:
        _wait_health(data_dir, "inference", lambda b: bool(b.get("models")), 240)
    except TimeoutError as exc:
        lost.append(f"the champion could not be loaded after the restart: {exc}")
    else:
        say("durability: scoring new images with the champion after the restart")
        _run([*robot[:-4], "--run-id", f"dur-{run}-after", "--domain", "B", "--seed", "7"], env)
        try:
            _wait_sql(data_dir, SCORED_SQL, prefix, 2 * expected, 300, "new images scored after the restart")
        except TimeoutError as exc:
            lost.append(str(exc))
    stop_services(data_dir, say=lambda s: None)
    return before, after, lost


def _answer_all(data_dir: Path, prefix: str) -> None:
    """A user score per inspection, agreeing with the model (so the export has candidates)."""
    import psycopg
    from axis_adapters.kafka import make_broker, publish_event
    from axis_adapters.settings import ServiceSettings
    from axis_contracts import UserScored

    settings = ServiceSettings(_env_file=str(data_dir / "stack.env"))  # type: ignore[call-arg]
    with psycopg.connect(settings.postgres.conninfo()) as conn:
        rows = conn.execute(
            "SELECT inspection_id, label, imaged_at FROM inspection_scores WHERE plate_barcode LIKE %s",
            (prefix + "%",),
        ).fetchall()

    async def send() -> None:
        broker = make_broker(settings.kafka)
        await broker.start()
        try:
            for iid, label, imaged_at in rows:
                score = "single_crystals" if label == "crystal" else "clear"
                ev = UserScored(
                    producer="durability", inspection_id=iid, user_id="dur", score=score, scored_at=imaged_at
                )
                await publish_event(broker, ev)
        finally:
            await broker.stop()

    asyncio.run(send())


SCORED_SQL = "SELECT count(*) FROM image_scores s JOIN images i USING (image_event_id) WHERE i.plate_barcode LIKE %s"
COMPARED_SQL = "SELECT count(*) FROM comparisons WHERE plate_barcode LIKE %s"


def _wait_sql(data_dir: Path, sql: str, prefix: str, want: int, timeout: float, what: str) -> None:
    import psycopg
    from axis_adapters.settings import ServiceSettings

    settings = ServiceSettings(_env_file=str(data_dir / "stack.env"))  # type: ignore[call-arg]
    deadline = time.monotonic() + timeout
    n = -1
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(settings.postgres.conninfo(), connect_timeout=5) as conn:
                n = int(conn.execute(sql, (prefix + "%",)).fetchone()[0])  # type: ignore[index]
        except psycopg.OperationalError:
            n = -1
        if n >= want:
            return
        time.sleep(2)
    raise TimeoutError(f"timed out waiting for {what}: {n} of {want}")


def _wait_health(data_dir: Path, service: str, ok: Any, timeout: float) -> None:
    from axis_stack.supervisor import probe_health, read_state

    deadline = time.monotonic() + timeout
    body: dict[str, Any] = {}
    while time.monotonic() < deadline:
        port = read_state(data_dir).get("services", {}).get(service, {}).get("port")
        body = probe_health(port)
        if ok(body):
            return
        time.sleep(2)
    raise TimeoutError(f"{service} /health not ready: {json.dumps(body)[:300]}")


def line(before: Counts, after: Counts, lost: list[str]) -> str:
    """The summary line."""
    same = (
        "the same"
        if not lost
        else (
            f"{after.images} images / {after.dataset_objects} datasets / {after.model_versions} model versions / "
            f"{after.messages} messages"
        )
    )
    return (
        f"durability: before {before.images} images / {before.dataset_objects} datasets / {before.model_versions} "
        f"model versions / {before.messages} messages; after a hard restart {same}; {len(lost)} lost"
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m axis_simulators.durability``: fresh data dir, the run, the verdict, everything stopped."""
    from axis_stack import down
    from axis_stack.supervisor import stop_services

    p = argparse.ArgumentParser(prog="python -m axis_simulators.durability", description=__doc__.splitlines()[0])
    p.add_argument("--plates", type=int, default=2)
    p.add_argument("--wells", type=int, default=24)
    p.add_argument("--keep", action="store_true", help="leave the data dir in place")
    a = p.parse_args(argv)
    data_dir = Path(tempfile.mkdtemp(prefix="axis-dur-", dir="/tmp"))
    try:
        before, after, lost = run_durability(
            data_dir, plates=a.plates, wells=a.wells, say=lambda s: print(s, flush=True)
        )
    finally:
        stop_services(data_dir, say=lambda s: None)
        down(data_dir, quiet=True)
        if not a.keep:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(f"durability: before {json.dumps(before.__dict__)}")
    print(f"durability: after  {json.dumps(after.__dict__)}")
    for item in lost:
        print(f"durability: lost: {item}")
    print(line(before, after, lost), flush=True)
    return 0 if not lost else 1


if __name__ == "__main__":
    sys.exit(main())
