"""Dataset export on the embedded stack: the planted-problem scenario through PostgreSQL, S3 and Kafka."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from PIL import Image

if TYPE_CHECKING:
    from axis_stack import StackInfo

pytestmark = pytest.mark.integration
PASSWORD = "integration-password"
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
WELLS = [f"{r}{c}" for r in "ABCDEFGH" for c in range(1, 13)]


def texture(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    coarse = Image.fromarray(rng.uniform(40, 215, (8, 8)).astype(np.uint8)).resize(
        (size, size), Image.Resampling.BICUBIC
    )
    arr = np.asarray(coarse, dtype=np.float64) + rng.normal(0, 8, (size, size))
    return np.clip(arr, 1, 254).astype(np.uint8)


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@dataclass
class Planted:
    """What was written: plates, the test plate, counts."""

    run: str
    plates: set[str] = field(default_factory=set)
    test_plate: str = ""
    n: int = 0


def plant(conn: Any, store: Any, run: str, curators: tuple[str, str]) -> Planted:
    """500 candidates, one image per inspection: 388 clean (39 curated by two agreeing curators) plus 20 exact
    duplicates, 30 re-inspections, 10 corrupt images, 15 near-duplicates, 25 on a test plate, 12 conflicts."""
    from axis_curation.devdata import InspectionRow, insert_comparison, insert_discrepancy, insert_image

    rng = np.random.default_rng(7)
    out = Planted(run, test_plate=f"{run}-TEST")
    slot = 0

    def add(
        data: np.ndarray | bytes,
        *,
        at: datetime,
        mode: str,
        label: str = "other",
        plate: str | None = None,
        drop_key: tuple[str, str, int] | None = None,
        curated: tuple[str, str] | None = None,
    ) -> tuple[str, str, int]:
        nonlocal slot
        if drop_key is None:
            if plate is None:
                drop_key = (f"{run}-P{slot % 20:02d}", WELLS[(slot // 20) % 96], 1 + slot // (20 * 96))
            else:
                drop_key = (plate, WELLS[slot % 96], 1 + slot // 96)
            slot += 1
        i = out.n
        out.n += 1
        out.plates.add(drop_key[0])
        insp = InspectionRow(f"{run}-insp-{i:04d}", drop_key[0], drop_key[1], drop_key[2], at)
        uri = f"s3://axis-images/{run}/{i:04d}-{mode}.png"
        insert_image(conn, store, insp, mode, uri, data if isinstance(data, bytes) else png(data))
        human_class = "single_crystals" if label == "crystal" else "clear"
        if curated is None:
            insert_comparison(conn, insp, ml_p=0.9 if label == "crystal" else 0.1, human_class=human_class)
        else:
            item = insert_discrepancy(conn, insp, ml_p=0.1 if label == "crystal" else 0.9, human_class=human_class)
            for curator, verdict in zip(curators, curated, strict=True):
                conn.execute(
                    "INSERT INTO curator_labels (discrepancy_id, curator, label) VALUES (%s, %s, %s)",
                    (item, curator, verdict),
                )
        return drop_key

    base: list[tuple[tuple[str, str, int], np.ndarray, str, str, datetime]] = []
    for i in range(388):
        arr, label, mode = texture(rng), "crystal" if i % 3 == 0 else "other", "visible" if i % 2 == 0 else "uv"
        at = T0 + timedelta(minutes=i)
        key = add(arr, at=at, mode=mode, label=label, curated=(label, label) if i % 10 == 7 else None)
        base.append((key, arr, label, mode, at))
    later = T0 + timedelta(days=10)
    for j in range(20):  # exact duplicates on other drops
        _, arr, label, mode, _ = base[j]
        add(arr, at=later + timedelta(minutes=j), mode=mode, label=label)
    for j in range(30):  # the same drop re-imaged 12 h later
        key, _, label, mode, at = base[20 + j]
        add(texture(rng), drop_key=key, at=at + timedelta(hours=12), mode=mode, label=label)
    for j in range(10):  # corrupt: truncated PNG or garbage
        data = png(texture(rng))[:60] if j % 2 else bytes(rng.integers(0, 256, 500, dtype=np.uint8))
        add(data, at=later + timedelta(hours=1, minutes=j), mode="visible")
    for j in range(15):  # near-duplicates: a few pixels nudged
        _, arr, label, mode, _ = base[60 + j]
        nudged = arr.copy()
        ys, xs = rng.integers(0, arr.shape[0], 6), rng.integers(0, arr.shape[1], 6)
        nudged[ys, xs] = np.clip(nudged[ys, xs].astype(int) + 3, 0, 255).astype(np.uint8)
        add(nudged, at=later + timedelta(hours=2, minutes=j), mode=mode, label=label)
    for j in range(25):  # a plate that goes into the frozen test set
        add(
            texture(rng),
            plate=out.test_plate,
            at=later + timedelta(hours=3, minutes=j),
            mode="visible",
            label="crystal" if j % 2 else "other",
        )
    for j in range(12):  # curators disagree
        add(
            texture(rng),
            at=later + timedelta(hours=4, minutes=j),
            mode="uv",
            label="crystal",
            curated=("crystal", "other"),
        )
    assert out.n == 500
    return out


@dataclass(frozen=True)
class Env:
    url: str
    stack: Any
    planted: Planted
    token: str


@pytest.fixture(scope="module")
def env(stack: StackInfo) -> Iterator[Env]:
    from axis_adapters.db import connect
    from axis_curation.app import create_app
    from axis_curation.context import build_services
    from axis_curation.server import BackgroundServer
    from axis_curation.settings import CurationOptions, CurationSettings

    settings = CurationSettings(
        _env_file=str(stack.env_file),  # type: ignore[call-arg]
        curation=CurationOptions(bootstrap_admin=False, bcrypt_rounds=4),
    )
    services = build_services(settings)
    run = f"EX{uuid.uuid4().hex[:6].upper()}"
    curators = (f"alice-{run}", f"bob-{run}")
    for name in curators:
        services.authenticator.create_account(name, PASSWORD, "curator")
    services.authenticator.create_account(f"admin-{run}", PASSWORD, "admin")
    services.store.ensure_bucket("axis-images")
    with connect(settings.postgres) as conn:
        planted = plant(conn, services.store, run, curators)
        conn.commit()
    with BackgroundServer(create_app(services)) as srv:
        token = httpx.post(srv.url + "/v1/tokens", json={"username": f"admin-{run}", "password": PASSWORD}).json()
        yield Env(srv.url, stack, planted, token["access_token"])


def admin(env: Env) -> httpx.Client:
    return httpx.Client(base_url=env.url, timeout=300, headers={"Authorization": f"Bearer {env.token}"})


def read_s3(stack: Any, uri: str) -> bytes:
    from minio import Minio

    client = Minio(stack.s3_endpoint, access_key=stack.s3_access_key, secret_key=stack.s3_secret_key, secure=False)
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    resp = client.get_object(bucket, key)
    try:
        return resp.read()
    finally:
        resp.close()
        resp.release_conn()


async def exported_events(bootstrap: str, name: str, want: int, wait_s: float = 30.0) -> list[dict[str, Any]]:
    from aiokafka import AIOKafkaConsumer
    from axis_contracts import topics

    consumer = AIOKafkaConsumer(
        topics.DATASET_EXPORTED,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    try:
        deadline = asyncio.get_running_loop().time() + wait_s
        while len(found) < want and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for rec in records:
                    event = json.loads(rec.value)
                    if event.get("dataset_name") == name:
                        found.append(event)
    finally:
        await consumer.stop()
    return found


def test_planted_problems_are_removed_at_their_stages_and_the_export_is_reproducible(env: Env) -> None:
    from axis_curation.export_jobs import export_and_wait

    c = admin(env)
    plates = sorted(env.planted.plates)
    frozen = f"frozen-{env.planted.run}"
    test_set = export_and_wait(c, {"name": frozen, "purpose": "test", "plates": [env.planted.test_plate]})
    assert test_set["counts"]["all"]["images"] == 25
    again = c.post("/v1/datasets", json={"name": frozen, "purpose": "test", "plates": [env.planted.test_plate]})
    assert again.status_code == 409, "a frozen test set is exported once"

    name = f"train-{env.planted.run}"
    first = export_and_wait(c, {"name": name, "purpose": "train", "plates": plates})
    assert first["version"] == "1" and first["published"] is True
    assert first["removed_by_stage"] == {
        "label_consensus": {"curator_conflict": 12},
        "image_qc": {"undecodable": 10},
        "uniqueness": {"duplicate_content": 20, "reinspection_window": 30},
        "similarity": {"near_duplicate": 15},
        "test_set_guard": {"test_set_plate": 25},
    }
    report = json.loads(read_s3(env.stack, first["qc_report_uri"]))
    assert [s["removed"] for s in report["stages"]] == [12, 10, 50, 15, 25, 0]
    assert report["stages"][0]["before"]["total"] == 500

    manifest = read_s3(env.stack, first["manifest_uri"])
    assert hashlib.sha256(manifest).hexdigest() == first["manifest_sha256"]
    rows = [json.loads(line) for line in manifest.splitlines()]
    assert len(rows) == 388 == report["stages"][-1]["after"]["total"]
    for split in ("train", "val"):
        assert sum(r["split"] == split for r in rows) == report["splits"][split]["total"]
    assert env.planted.test_plate not in {r["plate_barcode"] for r in rows}
    assert {r["label_source"] for r in rows} == {"agreement", "curated"}
    card = read_s3(env.stack, first["card_uri"]).decode()
    assert first["manifest_sha256"] in card and f"# Dataset {name} 1" in card

    second = export_and_wait(c, {"name": name, "purpose": "train", "plates": plates})
    assert second["version"] == "2" and second["manifest_sha256"] == first["manifest_sha256"]
    listed = c.get("/v1/datasets", params={"name": name}).json()["datasets"]
    assert sorted(d["version"] for d in listed) == ["1", "2"]

    events = asyncio.run(exported_events(env.stack.kafka_bootstrap, name, want=2))
    by_version = {e["dataset_version"]: e for e in events}
    assert by_version["1"]["manifest_uri"] == first["manifest_uri"]
    assert by_version["1"]["manifest_sha256"] == first["manifest_sha256"] == by_version["2"]["manifest_sha256"]
    assert by_version["1"]["counts"]["all"]["images"] == 388


def test_export_errors_name_the_problem(env: Env) -> None:
    c = admin(env)
    bad = c.post("/v1/datasets", json={"name": "x", "config": {"split": {"train_ratio": "lots"}}})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:4] == ["body", "config", "split", "train_ratio"]
    assert c.post("/v1/datasets", json={"name": "../evil"}).json()["detail"][0]["loc"] == ["body", "name"]
    assert c.post("/v1/datasets", json={"name": "ok", "purpose": "dev"}).status_code == 422
