"""The embedded stack keeps its data: objects, topics with their messages and committed offsets, and PostgreSQL
rows survive `down`/`up`, kill -9 of the S3 server, kill -9 of the broker, and kill -9 of every process at once."""

from __future__ import annotations

import io
import os
import shutil
import signal
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition
from axis_stack import StackInfo, down, stack_info, status, up
from axis_stack.components import S3_SERVER_ENV
from axis_stack.procs import group_members
from axis_stack.state import load_state
from botocore.config import Config
from botocore.exceptions import ClientError
from minio import Minio

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def durable() -> Iterator[Path]:
    """A fresh data dir with the stack up in its defaults (no storage option given), stopped and removed after."""
    data_dir = Path(tempfile.mkdtemp(prefix="axis-dur-", dir="/tmp"))  # short: PostgreSQL's socket lives in it
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(S3_SERVER_ENV, raising=False)
        up(data_dir, quiet=True)
    try:
        yield data_dir
    finally:
        down(data_dir, quiet=True)
        shutil.rmtree(data_dir, ignore_errors=True)


def _minio(info: StackInfo) -> Minio:
    return Minio(info.s3_endpoint, access_key=info.s3_access_key, secret_key=info.s3_secret_key, secure=False)


def _boto(info: StackInfo):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=f"http://{info.s3_endpoint}",
        aws_access_key_id=info.s3_access_key,
        aws_secret_access_key=info.s3_secret_key,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )


def _status_of(put) -> int:  # type: ignore[no-untyped-def]
    try:
        put()
        return 200
    except ClientError as exc:
        return int(exc.response["ResponseMetadata"]["HTTPStatusCode"])


def test_a_new_data_dir_keeps_objects_on_disk_and_the_broker_log_in_them(durable: Path) -> None:
    state = load_state(durable)
    assert state is not None
    assert (state.s3_server, state.kafka_storage) == ("localbucket", "s3")
    assert (durable / "s3" / "axis-dead-letters").is_dir()
    assert (durable / "s3" / "axis-tansu" / "clusters").is_dir()  # the provisioned topics


def test_the_s3_server_honours_the_conditional_writes_the_broker_uses(durable: Path) -> None:
    s3 = _boto(stack_info(durable))
    key = f"test/cond-{uuid.uuid4().hex}"
    put = s3.put_object
    assert _status_of(lambda: put(Bucket="axis-images", Key=key, Body=b"v1", IfNoneMatch="*")) == 200
    assert _status_of(lambda: put(Bucket="axis-images", Key=key, Body=b"v2", IfNoneMatch="*")) == 412
    etag = s3.head_object(Bucket="axis-images", Key=key)["ETag"]
    assert _status_of(lambda: put(Bucket="axis-images", Key=key, Body=b"v3", IfMatch=etag)) == 200
    assert _status_of(lambda: put(Bucket="axis-images", Key=key, Body=b"v4", IfMatch=etag)) == 412
    assert s3.get_object(Bucket="axis-images", Key=key)["Body"].read() == b"v3"
    assert _status_of(lambda: put(Bucket="axis-images", Key=f"{key}-absent", Body=b"x", IfMatch=etag)) == 404

    # Six writers update from the same version at once: exactly one wins, the others must re-read.
    etag = s3.head_object(Bucket="axis-images", Key=key)["ETag"]
    codes: list[int] = []
    clients = [_boto(stack_info(durable)) for _ in range(6)]

    def writer(client, n: int) -> None:  # type: ignore[no-untyped-def]
        codes.append(_status_of(lambda: client.put_object(Bucket="axis-images", Key=key, Body=b"w", IfMatch=etag)))

    threads = [threading.Thread(target=writer, args=(c, n)) for n, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 412, 412, 412, 412, 412]


async def _produce(bootstrap: str, topic: str, values: list[bytes]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, partition=0)
    finally:
        await producer.stop()


async def _consume_and_commit(bootstrap: str, topic: str, group: str, n: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    try:
        got: list[bytes] = []
        while len(got) < n:
            batch = await consumer.getmany(timeout_ms=10_000, max_records=n - len(got))
            assert batch, "no message within 10 s"
            got += [r.value for records in batch.values() for r in records if r.value is not None]
        await consumer.commit()
        return got
    finally:
        await consumer.stop()


async def _kept(bootstrap: str, topic: str, group: str) -> tuple[list[bytes], int | None]:
    """Every message of the topic (read without a group) and the committed offset of ``group``."""
    tp = TopicPartition(topic, 0)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await reader.start()
    try:
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        end = (await reader.end_offsets([tp]))[tp]
        got: list[bytes] = []
        while await reader.position(tp) < end:
            batch = await reader.getmany(tp, timeout_ms=10_000)
            got += [r.value for r in batch.get(tp, []) if r.value is not None]
    finally:
        await reader.stop()
    # The group's committed offset, fetched without joining the group (nothing is consumed or committed).
    member = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await member.start()
    try:
        committed = await member.committed(tp)
    finally:
        await member.stop()
    return got, committed


def _crash(data_dir: Path) -> int:
    """kill -9 every process of the stack at the same moment, as a machine crash would; return how many."""
    state = load_state(data_dir)
    assert state is not None
    pids = {pid for rec in state.procs.values() for pid in group_members(rec)}
    killed = 0
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
            killed += 1
        except ProcessLookupError:  # a short-lived child (a PostgreSQL backend) that ended meanwhile
            pass
    return killed


async def test_object_topic_offsets_and_rows_survive_down_up_kill9_and_a_crash(durable: Path) -> None:
    info = stack_info(durable)
    blob = os.urandom(6 * MIB)  # above the 5 MiB part size: a multipart upload
    _minio(info).put_object("axis-images", "test/durable.bin", io.BytesIO(blob), len(blob), part_size=5 * MIB)
    topic, group = f"test.durable-{uuid.uuid4().hex[:8]}", "durable-group"
    values = [b"m0", b"m1", b"m2"]
    await _produce(info.kafka_bootstrap, topic, values)
    assert await _consume_and_commit(info.kafka_bootstrap, topic, group, 2) == [b"m0", b"m1"]
    event_id = uuid.uuid4()
    with psycopg.connect(info.postgres_conninfo()) as conn:
        conn.execute("INSERT INTO processed_events (consumer, event_id) VALUES ('durable', %s)", (event_id,))

    async def assert_kept(after: str) -> None:
        now = up(durable, quiet=True)
        assert all(s.healthy for s in status(durable).values()), after
        resp = _minio(now).get_object("axis-images", "test/durable.bin")
        try:
            assert resp.read() == blob, f"object changed after {after}"
        finally:
            resp.close()
            resp.release_conn()
        assert await _kept(now.kafka_bootstrap, topic, group) == (values, 2), after
        with psycopg.connect(now.postgres_conninfo()) as conn:
            row = conn.execute("SELECT consumer FROM processed_events WHERE event_id = %s", (event_id,)).fetchone()
        assert row == ("durable",), after

    down(durable, quiet=True)
    await assert_kept("down and up")

    for server in ("s3", "kafka"):
        pid = stack_info(durable).pids[server]
        os.kill(pid, signal.SIGKILL)
        await assert_kept(f"kill -9 of {server} and up")
        assert stack_info(durable).pids[server] != pid

    before = stack_info(durable).pids
    assert _crash(durable) >= 4
    assert not any(s.healthy for s in status(durable).values())
    await assert_kept("kill -9 of every process at once and up")
    assert all(stack_info(durable).pids[name] != pid for name, pid in before.items())
