"""Drive the datasets page in headless Chromium: an admin opens a version's QC report, sees the diff to the
version before and the export jobs, and downloads the manifest. Screenshot in test-output/browser/."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from collections.abc import Iterator
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

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"
pytestmark = pytest.mark.browser
PASSWORD = "datasets-browser-password"
WELLS = [f"{r}{c}" for r in "ABCDEFGH" for c in range(1, 13)]


@dataclass(frozen=True)
class DatasetSite:
    url: str
    name: str
    username: str
    first: dict[str, Any]
    second: dict[str, Any]
    services: Any
    postgres: Any
    plates: list[str]
    config: dict[str, Any]


def _png(rng: np.random.Generator) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(30, 225, (96, 96), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def dataset_site(stack: StackInfo) -> Iterator[DatasetSite]:
    """The curation service with an admin and two versions of one dataset (the second adds a plate)."""
    from axis_adapters.db import connect
    from axis_curation.app import create_app
    from axis_curation.context import build_services
    from axis_curation.devdata import InspectionRow, insert_comparison, insert_image
    from axis_curation.export_jobs import export_and_wait
    from axis_curation.server import BackgroundServer
    from axis_curation.settings import CurationOptions, CurationSettings

    settings = CurationSettings(
        _env_file=str(stack.env_file),  # type: ignore[call-arg]
        curation=CurationOptions(bootstrap_admin=False, bcrypt_rounds=4),
    )
    services = build_services(settings)
    run = f"DS{uuid.uuid4().hex[:6].upper()}"
    username = f"admin-{run.lower()}"
    services.authenticator.create_account(username, PASSWORD, "admin")
    services.store.ensure_bucket("axis-images")
    rng = np.random.default_rng(3)
    t0 = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
    with connect(settings.postgres) as conn:
        for i in range(60):
            plate = f"{run}-P{i % 3}"
            insp = InspectionRow(f"{run}-{i:03d}", plate, WELLS[i // 3], 1, t0 + timedelta(hours=i))
            mode = "visible" if i % 2 else "uv"
            insert_image(conn, services.store, insp, mode, f"s3://axis-images/{run}/{i:03d}.png", _png(rng))
            crystal = i % 3 == 0
            human = "single_crystals" if crystal else "clear"
            insert_comparison(conn, insp, ml_p=0.9 if crystal else 0.1, human_class=human)
        conn.commit()
    name = f"browser-{run.lower()}"
    config = {"similarity": {"enabled": False}, "split": {"train_ratio": 0.5, "val_ratio": 0.5}}
    with BackgroundServer(create_app(services)) as srv:
        token = httpx.post(srv.url + "/v1/tokens", json={"username": username, "password": PASSWORD}).json()
        with httpx.Client(
            base_url=srv.url, timeout=120, headers={"Authorization": "Bearer " + token["access_token"]}
        ) as c:
            first = export_and_wait(c, {"name": name, "plates": [f"{run}-P0", f"{run}-P1"], "config": config})
            second = export_and_wait(
                c, {"name": name, "plates": [f"{run}-P0", f"{run}-P1", f"{run}-P2"], "config": config}
            )
        plates = [f"{run}-P0", f"{run}-P1", f"{run}-P2"]
        yield DatasetSite(srv.url, name, username, first, second, services, settings.postgres, plates, config)


def _open_datasets_page(page: Any, site: DatasetSite) -> None:
    page.goto(site.url + "/datasets")
    if "/login" in page.url:
        page.fill("#username", site.username)
        page.fill("#password", PASSWORD)
        page.click("#login-button")
        page.wait_for_url(site.url + "/datasets")


def test_admin_opens_a_qc_report_sees_the_diff_and_downloads_the_manifest(
    dataset_site: DatasetSite, browser_page: Any
) -> None:
    page, site = browser_page, dataset_site
    _open_datasets_page(page, site)
    page.wait_for_selector(f"#datasets tr[data-key='{site.name}/2']")
    # the finished export jobs are listed with their state
    page.wait_for_selector("#jobs-panel:not([hidden])")
    assert page.locator(f"#jobs tr[data-job='{site.second['job_id']}'][data-state=succeeded]").count() == 1

    page.click(f"#datasets tr[data-key='{site.name}/2'] button[data-open]")
    page.wait_for_selector("#detail:not([hidden]) #qc-stages tbody tr[data-stage=label_consensus]")
    assert (page.text_content("#detail-title") or "").endswith("version 2")
    out_row = page.locator("#qc-stages tbody tr[data-stage=split] td")
    assert out_row.nth(4).text_content() == str(site.second["counts"]["all"]["images"])
    headers = page.locator("#qc-stages thead th").all_text_contents()
    assert {"crystal", "other", "visible", "UV", "crystal · UV"} <= set(headers), headers
    assert page.locator("#qc-splits tbody tr[data-split=train]").count() == 1

    page.wait_for_selector("#diff-summary")
    added = site.second["counts"]["all"]["images"] - site.first["counts"]["all"]["images"]
    assert site.first["counts"]["all"]["images"] > 0 and added > 0, (site.first["counts"], site.second["counts"])
    assert f"+{added} added" in (page.text_content("#diff-summary") or ""), page.text_content("#diff-summary")
    page.screenshot(path=str(SHOTS / "datasets-qc-report.png"), full_page=True)

    with page.expect_download() as info:
        page.click("#downloads a[data-file='manifest.jsonl']")
    download = info.value
    data = Path(download.path()).read_bytes()
    assert download.suggested_filename == f"{site.name}-2-manifest.jsonl"
    assert hashlib.sha256(data).hexdigest() == site.second["manifest_sha256"]
    rows = [json.loads(line) for line in data.splitlines()]
    assert len(rows) == site.second["counts"]["all"]["images"]
    anonymous = httpx.get(f"{site.url}/v1/datasets/{site.name}/2/files/manifest.jsonl")
    assert anonymous.status_code == 401, "a download needs a login (the page sent its session cookie)"


def test_admin_follows_an_export_job_from_the_form_to_its_new_version(
    dataset_site: DatasetSite, browser_page: Any
) -> None:
    from axis_adapters.db import connect
    from axis_curation.export_jobs_repo import JOB_LOCK_CLASS, Claim, ExportJobsRepo

    page, site = browser_page, dataset_site
    runner = site.services.exports
    runner.stop()
    # This test is the runner of the job for a while, so that its progress can be shown: it holds the claim locks
    # of the next job ids before the form creates the job, so that no other runner of the session takes it.
    with connect(site.postgres, autocommit=True) as conn:
        row = conn.execute("SELECT coalesce(max(id), 0) FROM export_jobs").fetchone()
        ids = range(int(row[0] if row else 0) + 1, int(row[0] if row else 0) + 11)
        for i in ids:
            conn.execute("SELECT pg_advisory_lock(%s, %s)", (JOB_LOCK_CLASS, i))
        _open_datasets_page(page, site)
        page.fill("#name", site.name)
        page.fill("#plates", ",".join(site.plates))
        page.fill("#config", json.dumps(site.config))
        page.click("#export-form button[type=submit]")
        page.wait_for_selector("#jobs tr[data-state=queued]")
        assert "started" in (page.text_content("#export-result") or "")
        job_id = int(page.get_attribute("#jobs tr[data-state=queued]", "data-job") or "0")
        assert job_id in ids
        for i in ids:
            if i != job_id:
                conn.execute("SELECT pg_advisory_unlock(%s, %s)", (JOB_LOCK_CLASS, i))
        job = ExportJobsRepo.start_claimed(conn, job_id)
        assert job is not None
        ExportJobsRepo.progress(Claim(job, conn), "measuring", 40, 100)
        bar = page.wait_for_selector(f"#jobs tr[data-job='{job_id}'][data-state=running] progress")
        assert bar is not None and (bar.get_attribute("value"), bar.get_attribute("max")) == ("40", "100")
        text = page.text_content(f"#jobs tr[data-job='{job_id}']") or ""
        assert "measuring" in text and "40 / 100" in text, text
        page.screenshot(path=str(SHOTS / "datasets-export-running.png"), full_page=True)
    # the claim ended with its connection, as if its runner had been killed: the restarted runner finishes the job
    runner.start()
    page.wait_for_selector(f"#jobs tr[data-job='{job_id}'][data-state=succeeded]", timeout=120_000)
    page.wait_for_selector(f"#datasets tr[data-key='{site.name}/3']")
