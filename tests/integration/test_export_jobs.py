"""Dataset exports as background jobs, against the curation service run as its own process on the embedded stack:
progress that moves and ends in a version, a SIGKILL during an export (no half version; the job finishes after the
restart), and two concurrent requests for one version (one job, one 409 naming it)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import pytest
from PIL import Image

if TYPE_CHECKING:
    from axis_stack import StackInfo

pytestmark = pytest.mark.integration
PASSWORD = "export-jobs-password"
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
WELLS = [f"{r}{c}" for r in "ABCDEFGH" for c in range(1, 13)]
IMAGES = 1200  # enough images that measuring them takes a while, so the kill lands inside the export


def _png(rng: np.random.Generator) -> bytes:
    arr = rng.integers(30, 225, (128, 128), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


class CurationProcess:
    """``python -m axis_curation serve`` as a child process (so that it can be killed with SIGKILL)."""

    def __init__(self, stack: StackInfo, log: Path) -> None:
        from axis_curation.server import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "AXIS_ENV_FILE": str(stack.env_file),
            "AXIS_CURATION__PORT": str(self.port),
            "AXIS_CURATION__BOOTSTRAP_ADMIN": "false",
        }
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "axis_curation", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the curation service exited: {self.log.read_text()[-2000:]}"
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the curation service did not answer: {self.log.read_text()[-2000:]}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)


@dataclass
class Site:
    service: CurationProcess
    client: httpx.Client
    plates: list[str]
    conninfo: Any


@pytest.fixture(scope="module")
def site(stack: StackInfo, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from axis_adapters.db import connect
    from axis_curation.context import build_services
    from axis_curation.devdata import InspectionRow, insert_comparison, insert_image
    from axis_curation.settings import CurationOptions, CurationSettings

    settings = CurationSettings(
        _env_file=str(stack.env_file),  # type: ignore[call-arg]
        curation=CurationOptions(bootstrap_admin=False, bcrypt_rounds=4),
    )
    services = build_services(settings, with_broker=False)
    run = f"EJ{uuid.uuid4().hex[:6].upper()}"
    admin = f"admin-{run}"
    services.authenticator.create_account(admin, PASSWORD, "admin")
    services.store.ensure_bucket("axis-images")
    rng = np.random.default_rng(5)
    rows = []
    for i in range(IMAGES):
        plate = f"{run}-P{i % 8}"
        insp = InspectionRow(f"{run}-insp-{i:05d}", plate, WELLS[(i // 8) % 96], 1 + i // 768, T0 + timedelta(hours=i))
        rows.append((insp, f"s3://axis-images/{run}/{i:05d}.png", _png(rng), "crystal" if i % 3 else "other"))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda r: services.store.put_bytes(r[1], r[2], "image/png"), rows))
    with connect(settings.postgres) as conn:
        for insp, uri, _, label in rows:
            insert_image(conn, None, insp, "visible", uri, None)
            human = "single_crystals" if label == "crystal" else "clear"
            insert_comparison(conn, insp, ml_p=0.9 if label == "crystal" else 0.1, human_class=human)
        conn.commit()
    for c in services.closers:
        c.close()
    service = CurationProcess(stack, tmp_path_factory.mktemp("curation") / "curation.log")
    service.start()
    try:
        token = httpx.post(service.url + "/v1/tokens", json={"username": admin, "password": PASSWORD}).json()
        with httpx.Client(
            base_url=service.url, timeout=60, headers={"Authorization": f"Bearer {token['access_token']}"}
        ) as client:
            yield Site(service, client, sorted({r[0].plate_barcode for r in rows}), settings.postgres)
    finally:
        service.stop()


def _body(name: str, site: Site, **extra: Any) -> dict[str, Any]:
    # similarity off: random-noise images are all "near" each other for a perceptual hash of noise
    return {"name": name, "plates": site.plates, "config": {"similarity": {"enabled": False}}, **extra}


def _wait(site: Site, job_id: int, until: Any, timeout_s: float = 600) -> list[dict[str, Any]]:
    """Poll the job until ``until(job)``; every distinct state seen, in order."""
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job = site.client.get(f"/v1/datasets/jobs/{job_id}").json()
        key = (job["state"], job["stage"], job["items_done"], job["items_total"])
        if not seen or key != (seen[-1]["state"], seen[-1]["stage"], seen[-1]["items_done"], seen[-1]["items_total"]):
            seen.append(job)
        if until(job):
            return seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached the wanted state; last: {seen[-1] if seen else None}")


def _dataset_rows(site: Site, name: str) -> list[tuple[str, str]]:
    from axis_adapters.db import connect

    with connect(site.conninfo) as conn:
        rows = conn.execute("SELECT version, manifest_sha256 FROM datasets WHERE name = %s", (name,))
        return [(r[0], r[1]) for r in rows]


def test_a_job_reports_moving_progress_and_ends_in_a_version(site: Site) -> None:
    name = f"jobs-{uuid.uuid4().hex[:6]}"
    resp = site.client.post("/v1/datasets", json=_body(name, site))
    assert resp.status_code == 202, resp.text
    started = resp.json()
    assert started["state"] in ("queued", "running") and started["version"] == "1"
    assert resp.headers["location"] == f"/v1/datasets/jobs/{started['job_id']}"

    seen = _wait(site, started["job_id"], lambda j: j["state"] in ("succeeded", "failed"))
    final = seen[-1]
    assert final["state"] == "succeeded", final["message"]
    running = [j for j in seen if j["state"] == "running"]
    measuring = [j["items_done"] for j in running if j["stage"] == "measuring"]
    assert measuring and measuring == sorted(measuring), f"measuring progress moves forward: {measuring}"
    assert any(0 < d < IMAGES for d in measuring), f"a part-way measuring figure was reported: {measuring}"
    print(
        "export job stages:", ", ".join(f"{s['stage']} {s['items']} in {s['seconds']:.2f} s" for s in final["stages"])
    )
    log = {s["stage"]: s["items"] for s in final["stages"]}
    assert log == {"reading": IMAGES, "measuring": IMAGES, "building": IMAGES, "writing": 5, "registering": 1}

    result = final["result"]
    assert result["version"] == "1" and result["counts"]["all"]["images"] == IMAGES
    assert _dataset_rows(site, name) == [("1", result["manifest_sha256"])]
    listed = site.client.get("/v1/datasets/jobs", params={"name": name}).json()["jobs"]
    assert [j["id"] for j in listed] == [started["job_id"]]


def test_a_killed_service_leaves_no_half_version_and_the_job_finishes_after_the_restart(site: Site) -> None:
    name = f"kill-{uuid.uuid4().hex[:6]}"
    resp = site.client.post("/v1/datasets", json=_body(name, site))
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["job_id"]
    seen = _wait(site, job_id, lambda j: j["stage"] == "measuring" and 0 < j["items_done"] < j["items_total"])
    site.service.kill()
    try:
        from axis_adapters.db import connect

        with connect(site.conninfo) as conn:
            row = conn.execute("SELECT state, attempts FROM export_jobs WHERE id = %s", (job_id,)).fetchone()
        assert row is not None
        state, attempts = row
        assert (state, attempts) == ("running", 1), "the job was killed part-way"
        assert _dataset_rows(site, name) == [], "no version is registered before the export has finished"
    finally:
        site.service.start()
    done = _wait(site, job_id, lambda j: j["state"] in ("succeeded", "failed"))[-1]
    assert done["state"] == "succeeded", done["message"]
    assert done["attempts"] == 2 and "restarted" in done["message"]
    rows = _dataset_rows(site, name)
    assert rows == [("1", done["result"]["manifest_sha256"])]
    manifest = site.client.get(f"/v1/datasets/{name}/1/files/manifest.jsonl")
    assert manifest.status_code == 200 and len(manifest.content.splitlines()) == IMAGES
    assert seen[-1]["state"] == "running"


def test_two_concurrent_requests_for_one_version_give_one_job_and_a_409_naming_it(site: Site) -> None:
    name = f"race-{uuid.uuid4().hex[:6]}"
    body = _body(name, site, version="7", plates=site.plates[:1])
    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: site.client.post("/v1/datasets", json=body), range(2)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [202, 409], [a.text for a in answers]
    accepted = next(a.json() for a in answers if a.status_code == 202)
    refused = next(a.json() for a in answers if a.status_code == 409)
    assert refused["job_id"] == accepted["job_id"] and f"job {accepted['job_id']}" in refused["detail"]
    done = _wait(site, accepted["job_id"], lambda j: j["state"] in ("succeeded", "failed"))[-1]
    assert done["state"] == "succeeded", done["message"]
    assert [v for v, _ in _dataset_rows(site, name)] == ["7"]
    again = site.client.post("/v1/datasets", json=body)
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
