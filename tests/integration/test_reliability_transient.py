"""Transient outages (object store, PostgreSQL) are ridden out; a permanent fault is dead-lettered and replayable."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
import pytest

if TYPE_CHECKING:
    from axis_stack import StackInfo

pytestmark = pytest.mark.integration


class CuttableProxy:
    """TCP proxy 127.0.0.1:port -> target; ``cut()`` refuses and drops connections until ``restore()``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.transport.abort()
        await self._server.wait_closed()
        self._server = None

    async def restore(self) -> None:
        await self.start()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(Exception):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


@pytest.fixture
async def service(stack: StackInfo, tmp_path: Path) -> AsyncIterator[tuple[Any, CuttableProxy, dict[str, str]]]:
    from axis_inference.service import InferenceService
    from axis_inference.settings import InferenceSettings
    from axis_simulators.chaos_procs import service_env

    host, port = stack.s3_endpoint.split(":")
    proxy = CuttableProxy(host, int(port))
    await proxy.start()
    env = service_env(stack.env, tmp_path, uuid.uuid4().hex[:6])
    env["AXIS_S3__ENDPOINT"] = f"127.0.0.1:{proxy.port}"
    env["AXIS_INFERENCE__RETRY_BACKOFF_MAX_S"] = "1"
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            if k.startswith("AXIS_"):
                mp.setenv(k, v)
        svc = InferenceService(InferenceSettings(_env_file=None))  # type: ignore[call-arg]
    stop = asyncio.Event()
    task = asyncio.create_task(svc.run(stop))
    await until(lambda: svc.consuming, 120, "the inference service consuming", task)
    yield svc, proxy, env
    stop.set()
    await asyncio.wait_for(task, timeout=60)
    with contextlib.suppress(Exception):
        await proxy.cut()


async def until(cond: Callable[[], Any], seconds: float, what: str, task: Any = None) -> None:
    deadline = time.monotonic() + seconds
    while not (await cond() if asyncio.iscoroutinefunction(cond) else cond()):
        if task is not None and task.done():
            task.result()
            raise AssertionError(f"service stopped before {what}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)


async def send(stack: StackInfo, plate: str, start: int, n: int, *, upload: bool = True) -> list[Any]:
    from axis_adapters.kafka import make_broker, publish_event
    from axis_adapters.objectstore import MinioObjectStore
    from axis_adapters.settings import ServiceSettings
    from axis_inference.seeding import drop_jpeg, image_event

    settings = ServiceSettings(_env_file=str(stack.env_file))  # type: ignore[call-arg]
    store = MinioObjectStore(settings.s3)  # direct, not through the proxy
    events = []
    for i in range(start, start + n):
        uri = f"s3://axis-images/transient/{plate}/{i}.jpg"
        if upload:
            await asyncio.to_thread(store.put_bytes, uri, drop_jpeg(50 + i % 150, seed=i), "image/jpeg")
        well = f"{'ABCDEFGH'[i % 8]}{i // 8 % 12 + 1}"
        events.append(image_event(plate=plate, well=well, inspection=f"{plate}-{i}", mode="visible", uri=uri))
    broker = make_broker(settings.kafka)
    await broker.start()
    try:
        for e in events:
            await publish_event(broker, e)
    finally:
        await broker.stop()
    return events


def scored(stack: StackInfo, plate: str) -> int:
    with psycopg.connect(stack.postgres_conninfo(), connect_timeout=3) as conn:
        row = conn.execute("SELECT count(*) FROM images WHERE plate_barcode = %s", (plate,)).fetchone()
    return int(row[0]) if row else 0


async def dead_letters(stack: StackInfo, plate: str) -> list[Any]:
    from axis_cli.dlq import read_all

    return [
        e for e in await read_all(stack.kafka_bootstrap) if e.letter and (e.letter.source_key or "").startswith(plate)
    ]


async def test_outages_are_retried_and_nothing_transient_is_dead_lettered(
    stack: StackInfo, service: tuple[Any, CuttableProxy, dict[str, str]]
) -> None:
    from axis_stack import start_component, stop_component

    svc, proxy, _ = service
    plate = f"TR{uuid.uuid4().hex[:6].upper()}"
    await send(stack, plate, 0, 10)
    await until(lambda: scored(stack, plate) >= 10, 120, "the first 10 scores")

    # object store unreachable for ~5 s while 10 events arrive
    failures = svc.metrics.batch_failures
    await proxy.cut()
    await send(stack, plate, 10, 10)
    await until(lambda: svc.metrics.batch_failures > failures, 60, "a failed (retried) batch")
    await asyncio.sleep(4)
    assert scored(stack, plate) == 10, "nothing can be scored while the object store is away"
    await proxy.restore()
    await until(lambda: scored(stack, plate) >= 20, 120, "scores after the object store came back")

    # PostgreSQL down for ~5 s while 10 events arrive
    await asyncio.to_thread(stop_component, stack.data_dir, "postgres")
    try:
        await send(stack, plate, 20, 10)
        await asyncio.sleep(5)
    finally:
        await asyncio.to_thread(start_component, stack.data_dir, "postgres")
    await until(lambda: scored(stack, plate) >= 30, 180, "scores after PostgreSQL came back")
    assert svc.metrics.batch_failures >= failures + 2
    assert await dead_letters(stack, plate) == [], "a transient failure was dead-lettered"


async def test_a_missing_object_is_dead_lettered_then_replayed_after_the_fix(
    stack: StackInfo, service: tuple[Any, CuttableProxy, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    from axis_adapters.objectstore import MinioObjectStore
    from axis_adapters.settings import ServiceSettings
    from axis_cli.dlq import main as dlq
    from axis_inference.seeding import drop_jpeg

    plate = f"DL{uuid.uuid4().hex[:6].upper()}"
    (event,) = await send(stack, plate, 0, 1, upload=False)
    found: list[Any] = []

    async def letter_arrived() -> bool:
        found[:] = await dead_letters(stack, plate)
        return bool(found)

    await until(letter_arrived, 60, "the dead letter")
    letter = found[0].letter
    assert letter.error_type == "ObjectMissing" and "no object" in letter.error and event.image_uri in letter.error
    assert scored(stack, plate) == 0

    bootstrap = ["--bootstrap", stack.kafka_bootstrap]
    assert await asyncio.to_thread(dlq, [*bootstrap, "list", "--grep", plate]) == 0
    assert found[0].ref in capsys.readouterr().out
    assert await asyncio.to_thread(dlq, [*bootstrap, "show", found[0].ref]) == 0
    assert event.image_uri in capsys.readouterr().out

    # the fix: the image is uploaded; the replay is scored exactly once
    settings = ServiceSettings(_env_file=str(stack.env_file))  # type: ignore[call-arg]
    await asyncio.to_thread(MinioObjectStore(settings.s3).put_bytes, event.image_uri, drop_jpeg(90), "image/jpeg")
    assert await asyncio.to_thread(dlq, [*bootstrap, "replay", found[0].ref]) == 0
    await until(lambda: scored(stack, plate) == 1, 60, "the replayed event scored")
    assert len(await dead_letters(stack, plate)) == 1, "the replay succeeded: no second dead letter"
