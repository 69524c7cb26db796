"""The embedded stack: every server round-trips real data, status reports health, down leaves nothing running."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import signal
import tempfile
import uuid
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition
from axis_contracts.topics import ALL_TOPICS, DEAD_LETTER
from axis_stack import StackInfo, apply_migrations, down, restart, stack_info, status, up
from axis_stack.procs import group_members, start_time_of
from axis_stack.state import ENV_KEYS, load_state, parse_env
from minio import Minio
from psycopg import sql

pytestmark = pytest.mark.integration


def _minio(stack: StackInfo) -> Minio:
    return Minio(stack.s3_endpoint, access_key=stack.s3_access_key, secret_key=stack.s3_secret_key, secure=False)


def test_status_reports_all_four_healthy(stack: StackInfo) -> None:
    rows = status(stack.data_dir)
    assert sorted(rows) == ["kafka", "mlflow", "postgres", "s3"]
    assert all(row.healthy for row in rows.values()), rows


def test_env_file_holds_the_connection_settings(stack: StackInfo) -> None:
    env = parse_env(stack.env_file.read_text())
    assert tuple(env) == ENV_KEYS
    assert env == stack.env
    assert env["AXIS_POSTGRES__PASSWORD"] not in {"axis", "axis-dev", "postgres", ""}


async def test_broker_round_trip_with_consumer_group(stack: StackInfo) -> None:
    topic = f"test.stack-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack.kafka_bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        assert set(ALL_TOPICS) <= existing
        await admin.create_topics([NewTopic(name=topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello-axis", key=b"PLATE1:A1:1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.kafka_bootstrap,
        group_id=f"test-group-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    try:
        msg = await consumer.getone()
        await consumer.commit()
        committed = await consumer.committed(TopicPartition(topic, msg.partition))
    finally:
        await consumer.stop()
    assert (msg.key, msg.value) == (b"PLATE1:A1:1", b"hello-axis")
    assert committed == msg.offset + 1


def test_postgres_round_trip_in_migrated_schema(stack: StackInfo) -> None:
    event_id = uuid.uuid4()
    with psycopg.connect(stack.postgres_conninfo()) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM curation.schema_migrations ORDER BY version")]
        conn.execute("INSERT INTO processed_events (consumer, event_id) VALUES (%s, %s)", ("test", event_id))
        conn.commit()
    with psycopg.connect(stack.postgres_conninfo()) as conn:
        row = conn.execute("SELECT consumer FROM processed_events WHERE event_id = %s", (event_id,)).fetchone()
    assert versions[:3] == ["0000_common.sql", "0001_curation.sql", "0002_read_model.sql"]
    assert row == ("test",)


def test_migrations_apply_once_in_order_and_a_failing_one_rolls_back(stack: StackInfo, tmp_path: Path) -> None:
    db = f"migtest_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(stack.postgres_conninfo(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(db)))
    try:
        (tmp_path / "0002_b.sql").write_text("INSERT INTO t (step) VALUES ('b');")
        (tmp_path / "0001_a.sql").write_text("CREATE TABLE t (step text); INSERT INTO t (step) VALUES ('a');")
        assert apply_migrations(stack.postgres_conninfo(db), tmp_path) == ["0001_a.sql", "0002_b.sql"]
        assert apply_migrations(stack.postgres_conninfo(db), tmp_path) == []
        (tmp_path / "0003_bad.sql").write_text("CREATE TABLE u (x int); INSERT INTO nowhere VALUES (1);")
        with pytest.raises(RuntimeError, match="0003_bad.sql"):
            apply_migrations(stack.postgres_conninfo(db), tmp_path)
        with psycopg.connect(stack.postgres_conninfo(db)) as conn:
            steps = [r[0] for r in conn.execute("SELECT step FROM t")]
            versions = [r[0] for r in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
            u_exists = conn.execute("SELECT to_regclass('u')").fetchone()
    finally:
        with psycopg.connect(stack.postgres_conninfo(), autocommit=True) as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(db)))
    assert steps == ["a", "b"]
    assert versions == ["0001_a.sql", "0002_b.sql"]
    assert u_exists == (None,)


def test_s3_round_trip_with_minio_client(stack: StackInfo) -> None:
    client = _minio(stack)
    data = os.urandom(4096)
    client.put_object("axis-images", "test/stack.bin", io.BytesIO(data), len(data))
    resp = client.get_object("axis-images", "test/stack.bin")
    try:
        assert resp.read() == data
    finally:
        resp.close()
        resp.release_conn()
    assert {"axis-images", "axis-datasets", "axis-mlflow"} <= {b.name for b in client.list_buckets()}


def test_object_store_reads_refuse_an_object_over_the_limit_in_one_request(stack: StackInfo) -> None:
    from axis_adapters.objectstore import MinioObjectStore, ObjectMissing
    from axis_adapters.settings import S3Settings
    from pydantic import SecretStr

    store = MinioObjectStore(
        S3Settings(
            endpoint=stack.s3_endpoint, access_key=stack.s3_access_key, secret_key=SecretStr(stack.s3_secret_key)
        )
    )
    prefix = f"s3://axis-images/test/limit-{uuid.uuid4().hex[:8]}"
    big = os.urandom(300 * 1024)  # several read chunks
    store.put_bytes(f"{prefix}/big.bin", big)
    assert store.get_bytes(f"{prefix}/big.bin", max_bytes=len(big)) == big  # exactly at the limit: read whole
    assert store.get_bytes(f"{prefix}/big.bin") == big
    with pytest.raises(ValueError, match="more than the limit"):
        store.get_bytes(f"{prefix}/big.bin", max_bytes=len(big) - 1)
    store.put_bytes(f"{prefix}/empty.bin", b"")
    assert store.get_bytes(f"{prefix}/empty.bin", max_bytes=10) == b""
    with pytest.raises(ObjectMissing):
        store.get_bytes(f"{prefix}/absent.bin", max_bytes=10)


def test_mlflow_run_registered_model_and_champion_alias(stack: StackInfo, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack.mlflow_uri, registry_uri=stack.mlflow_uri)
    exp_id = client.create_experiment(f"test-stack-{uuid.uuid4().hex[:8]}")
    run = client.create_run(exp_id)
    client.log_param(run.info.run_id, "lora_r", "25")
    client.log_metric(run.info.run_id, "recall", 0.96)
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "adapter.txt").write_text("weights")
    client.log_artifacts(run.info.run_id, str(tmp_path / "model"), artifact_path="model")
    client.set_terminated(run.info.run_id)

    name = f"axis-test-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    version = client.create_model_version(name, source=f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", version.version)

    champion = client.get_model_version_by_alias(name, "champion")
    assert champion.version == version.version
    assert client.get_run(run.info.run_id).data.metrics["recall"] == pytest.approx(0.96)
    # The artifact went through the MLflow server into the S3 server.
    keys = [o.object_name for o in _minio(stack).list_objects("axis-mlflow", recursive=True)]
    assert any(k.endswith(f"{run.info.run_id}/artifacts/model/adapter.txt") for k in keys), keys


async def _produce(bootstrap: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(DEAD_LETTER, value, key=b"k")
    finally:
        await producer.stop()


async def _consume_one(bootstrap: str) -> bytes | None:
    consumer = AIOKafkaConsumer(
        DEAD_LETTER,
        bootstrap_servers=bootstrap,
        group_id="lifecycle",
        auto_offset_reset="earliest",
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    try:
        msg = await asyncio.wait_for(consumer.getone(), timeout=60)
        return msg.value
    finally:
        await consumer.stop()


def _stack_processes(data_dir: Path) -> dict[int, int | None]:
    """Every live process of the stack in ``data_dir`` (servers and their children): pid -> start time."""
    state = load_state(data_dir.resolve())
    assert state is not None
    found: dict[int, int | None] = {}
    for rec in state.procs.values():
        found.update({pid: start_time_of(pid) for pid in group_members(rec)})
    return found


async def test_lifecycle_noop_second_up_stale_restart_and_down_leaves_no_process() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="axis-life-", dir="/tmp"))
    seen: dict[int, int | None] = {}
    try:
        # s3 storage: the broker keeps its log in the S3 server, so topics survive a broker restart.
        first = up(data_dir, kafka_storage="s3", quiet=True)
        seen.update(_stack_processes(data_dir))
        assert len(seen) >= 4

        assert up(data_dir, kafka_storage="s3", quiet=True) == first  # second up: a no-op, same settings, same pids

        with psycopg.connect(first.postgres_conninfo(), autocommit=True) as conn:
            conn.execute("INSERT INTO processed_events (consumer, event_id) VALUES ('life', gen_random_uuid())")
        restart(data_dir, "postgres")  # same port, same data
        with psycopg.connect(first.postgres_conninfo()) as conn:
            assert conn.execute("SELECT count(*) FROM processed_events WHERE consumer = 'life'").fetchone() == (1,)

        await _produce(first.kafka_bootstrap, b"kept")
        restart(data_dir, "kafka")
        assert status(data_dir)["kafka"].healthy
        assert await _consume_one(first.kafka_bootstrap) == b"kept"
        seen.update(_stack_processes(data_dir))

        # A dead pid in the state: up restarts that piece (and the broker, whose log was in it), nothing else.
        before = stack_info(data_dir)
        os.kill(before.pids["s3"], signal.SIGKILL)
        assert not status(data_dir)["s3"].healthy
        again = up(data_dir, kafka_storage="s3", quiet=True)
        assert again.env == first.env
        assert (again.pids["postgres"], again.pids["mlflow"]) == (before.pids["postgres"], before.pids["mlflow"])
        assert again.pids["s3"] != before.pids["s3"]
        assert all(s.healthy for s in status(data_dir).values())
        seen.update(_stack_processes(data_dir))
    finally:
        down(data_dir, quiet=True)
        shutil.rmtree(data_dir, ignore_errors=True)
    # Checked by pid (with its start time, so that a reused pid does not count): nothing is left running.
    leftovers = [pid for pid, start in seen.items() if start is not None and start_time_of(pid) == start]
    assert leftovers == []
