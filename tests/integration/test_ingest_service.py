"""Ingest on the embedded stack: files written slowly into an imager's folder tree -> scored once each; a restart
publishes nothing again. ``python -m axis_ingest`` and ``python -m axis_inference`` run as processes."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest
from axis_adapters.settings import ServiceSettings
from axis_contracts import topics
from axis_inference.seeding import drop_jpeg
from axis_simulators.chaos_procs import ServiceProc, service_env
from kafka_probe import read_topic

if TYPE_CHECKING:
    from axis_stack import StackInfo

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6].upper()
IMAGER = f"ingest-it-{RUN}"
PA, PB = f"IA{RUN}", f"IB{RUN}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _write(root: Path, rel: str, data: bytes, *, chunks: int = 1, pause_s: float = 0.0) -> None:
    """Write a file the way a slow imager does: in pieces, with pauses."""
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    step = max(1, len(data) // chunks)
    with open(path, "wb") as fh:
        for i in range(0, len(data), step):
            fh.write(data[i : i + step])
            fh.flush()
            if pause_s:
                time.sleep(pause_s)


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(data)


async def _until(what: str, check: Callable[[], Any], procs: list[ServiceProc], within_s: float) -> Any:
    deadline = time.monotonic() + within_s
    while True:
        for p in procs:
            if p.exited():
                tail = p.log.read_text(errors="replace").splitlines()[-20:]
                raise AssertionError(
                    f"{p.name} exited with {p.returncode()} while waiting for {what}:\n" + "\n".join(tail)
                )
        try:
            got = await asyncio.to_thread(check)
        except (httpx.HTTPError, psycopg.OperationalError):
            got = None
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.5)


async def test_ingest_scores_each_mappable_file_once_reports_the_rest_and_a_restart_publishes_nothing(
    stack: StackInfo, tmp_path: Path
) -> None:
    settings = ServiceSettings(_env_file=str(stack.env_file))  # type: ignore[call-arg]
    root = tmp_path / "imager"
    root.mkdir()
    ingest_port, inference_port = _free_port(), _free_port()
    env = {
        **service_env(stack.env, tmp_path, RUN),
        "AXIS_INFERENCE__HTTP_PORT": str(inference_port),
        "AXIS_INGEST__WATCH_DIR": str(root),
        "AXIS_INGEST__IMAGER_ID": IMAGER,
        "AXIS_INGEST__HTTP_PORT": str(ingest_port),
        "AXIS_INGEST__SETTLE_S": "1",
        "AXIS_INGEST__POLL_INTERVAL_S": "0.5",
    }
    health_url = f"http://127.0.0.1:{ingest_port}/health"

    def health() -> dict[str, Any]:
        return dict(httpx.get(health_url, timeout=5).json())

    def query(sql: str, *args: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(settings.postgres.conninfo()) as conn:
            return conn.execute(sql, args).fetchall()

    images = {}  # path -> bytes of every file that must be published
    for well in ("A1", "A2", "A3"):  # present before the service starts: the backfill
        for k, mode in enumerate(("vis", "uv")):
            rel = f"{PA}/1001/{well}_1_{mode}.jpg"
            images[rel] = drop_jpeg(40 + 30 * k, seed=len(images) + 100)  # distinct bytes each
            _write(root, rel, images[rel])
    inference = ServiceProc("inference", ["-m", "axis_inference"], env, tmp_path / "inference.log")
    ingest = ServiceProc("ingest", ["-m", "axis_ingest"], env, tmp_path / "ingest.log")
    procs = [inference, ingest]
    inference.start()
    ingest.start()
    try:
        await _until("ingest /health", lambda: health().get("status") == "ok", procs, 90)
        watching = health()["watching"]  # a local folder: inotify (with rare full rescans) where the kernel has it
        assert watching["mode"] == "inotify" or "unavailable" in watching["detail"], watching

        # while it runs: slow writes in nested folders, a half-written file, a rename, bad names
        partial_rel = f"{PB}/1002/C1_1_vis.jpg"
        partial = drop_jpeg(120, seed=7)
        _write(root, partial_rel, partial[: len(partial) // 2])
        for well in ("B1", "B2", "B3"):
            rel = f"{PB}/1002/{well}_1_vis.jpg"
            images[rel] = drop_jpeg(90, seed=len(images) + 100)
            await asyncio.to_thread(_write, root, rel, images[rel], chunks=4, pause_s=0.3)
        bad = {
            f"{PB}/1002/Z9_1_vis.jpg": "not a well of a 96-well plate",
            f"{PB}/1002/C3_1_infrared.jpg": "imaging mode 'infrared' is not a known mode token",
            f"{PB}/readme.txt": "extension .txt is not an image type",
            f"{PB}/C4_1_vis.jpg": "1 folder level(s) below the watched folder",
        }
        for rel in bad:
            _write(root, rel, drop_jpeg(70, seed=3) if rel.endswith(".jpg") else b"imaging notes\n")
        renamed = f"{PB}/1002/C2_1_uv.jpg"
        images[renamed] = drop_jpeg(20, seed=11)
        _write(root, renamed + ".part", images[renamed], chunks=3, pause_s=0.3)
        os.rename(root / (renamed + ".part"), root / renamed)
        await asyncio.sleep(3)  # several looks at the half-written file: it must wait, not be published cut short
        h = health()
        assert h["counts"]["pending"] >= 1 and h["counts"]["unreadable"] == 0
        await asyncio.to_thread(_append, root / partial_rel, partial[len(partial) // 2 :])
        images[partial_rel] = partial
        await _until("the first files published", lambda: health()["counts"]["published"] >= 6, procs, 60)
        first = f"{PA}/1001/A1_1_vis.jpg"
        _write(root, f"{PB}/1003/D1_1_vis.jpg", images[first])  # a byte-identical copy under another name

        expected = len(images)
        done = await _until(
            "every file decided",
            lambda: (
                (c := health()["counts"])["published"] == expected
                and c["duplicate"] == 1
                and c["unmappable"] == len(bad)
                and c["pending"] == 0
                and health()
            ),
            procs,
            60,
        )
        reasons = {u["path"]: u["reason"] for u in done["unmappable_recent"]}
        for rel, why in bad.items():
            assert why in reasons.get(rel, ""), (rel, reasons)

        uri_like = f"s3://{settings.s3.images_bucket}/ingest/{IMAGER}/%"
        scored_sql = (
            "SELECT i.image_uri, i.plate_barcode, i.well, i.imaging_mode, count(s.id) FROM images i"
            " LEFT JOIN image_scores s USING (image_event_id) WHERE i.image_uri LIKE %s GROUP BY 1, 2, 3, 4"
        )
        rows = await _until(
            f"{expected} images scored",
            lambda: (r := query(scored_sql, uri_like)) and len(r) == expected and all(n >= 1 for *_, n in r) and r,
            procs,
            90,
        )
        assert all(n == 1 for *_, n in rows), rows  # scored once each
        assert sorted((p, w, m) for _, p, w, m, _ in rows) == sorted(
            (rel.split("/")[0], rel.rsplit("/", 1)[1].split("_")[0], "uv" if "_uv." in rel else "visible")
            for rel in images
        )
        stored = query(
            "SELECT path, status, reason, duplicate_of FROM ingest_files WHERE imager_id = %s ORDER BY path", IMAGER
        )
        by_status: dict[str, list[tuple[Any, ...]]] = {}
        for row in stored:
            by_status.setdefault(row[1], []).append(row)
        assert sorted(r[0] for r in by_status["published"]) == sorted(images)
        assert [(r[0], r[3]) for r in by_status["duplicate"]] == [(f"{PB}/1003/D1_1_vis.jpg", first)]
        assert sorted(r[0] for r in by_status["unmappable"]) == sorted(bad)
        # the image in the object store is the whole file, not the half the scanner saw first
        from axis_adapters.objectstore import MinioObjectStore

        partial_uri = query(
            "SELECT image_uri FROM ingest_files WHERE imager_id = %s AND path = %s", IMAGER, partial_rel
        )[0][0]
        assert MinioObjectStore(settings.s3).get_bytes(partial_uri) == partial

        def mine(value: bytes) -> bool:
            try:  # the topic also holds other tests' records, hostile ones included
                data = json.loads(value)
            except (ValueError, RecursionError):
                return False
            return isinstance(data, dict) and data.get("imager_id") == IMAGER

        on_topic = await read_topic(settings.kafka.bootstrap_servers, topics.IMAGE_CAPTURED, mine)
        assert len(on_topic) == expected

        # restart (polling this time): the backfill finds every file already decided
        assert ingest.terminate() == 0
        ingest.env = {**env, "AXIS_INGEST__WATCHER": "poll"}
        ingest.start()
        await _until("ingest back, a few scans done", lambda: (h := health())["scans"] >= 4 and h, procs, 60)
        h = health()
        assert h["watching"]["mode"] == "poll" and h["this_run"] == {}
        assert h["counts"]["published"] == expected and h["counts"]["unmappable"] == len(bad)
        assert h["counts"]["duplicate"] == 1 and h["counts"]["pending"] == 0
        on_topic = await read_topic(settings.kafka.bootstrap_servers, topics.IMAGE_CAPTURED, mine)
        assert len(on_topic) == expected
        assert len(query(scored_sql, uri_like)) == expected
    finally:
        for p in procs:
            p.stop()
