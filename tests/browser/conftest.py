"""Browser-test fixtures: the curation service on the embedded stack with a seeded plate and a curator."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from axis_stack import StackInfo

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"


@dataclass(frozen=True)
class CurationSite:
    """A running curation server with one seeded plate and a fresh curator account."""

    url: str
    barcode: str
    probabilities: dict[str, float]
    queued_wells: list[str]
    username: str
    password: str


@pytest.fixture(scope="session")
def curation_site(stack: StackInfo) -> Iterator[CurationSite]:
    """Serve the app on a free port, seed a demo plate (6 queued disagreements) and create a curator."""
    from axis_adapters.db import connect
    from axis_curation.app import create_app
    from axis_curation.context import build_services
    from axis_curation.devdata import seed_demo
    from axis_curation.server import BackgroundServer
    from axis_curation.settings import CurationOptions, CurationSettings

    settings = CurationSettings(
        _env_file=str(stack.env_file),  # type: ignore[call-arg]
        curation=CurationOptions(bootstrap_admin=False, bcrypt_rounds=4),
    )
    services = build_services(settings)
    barcode = f"BR-{uuid.uuid4().hex[:6].upper()}"
    with connect(settings.postgres) as conn:
        demo = seed_demo(conn, services.store, barcode=barcode, queue_items=6, seed=11)
        # put this plate's disagreements first in every curator's queue, whatever other tests left behind
        # (offset from the first id: dev items' ids start at 10^12, which as seconds would land past year 30000)
        conn.execute(
            "UPDATE discrepancies SET created_at = timestamptz '2000-01-01' + (id - %s) * interval '1 second' "
            "WHERE id = ANY(%s)",
            (min(demo.queue_ids), demo.queue_ids),
        )
        conn.commit()
    username, password = f"curator-{uuid.uuid4().hex[:6]}", "browser-test-password"
    services.authenticator.create_account(username, password, "curator")
    with BackgroundServer(create_app(services)) as srv:
        yield CurationSite(srv.url, barcode, demo.probabilities, demo.queued_wells, username, password)


@pytest.fixture(scope="module")
def browser_page() -> Iterator[object]:
    """A headless Debian Chromium page (never a downloaded playwright browser).

    Module-scoped on purpose: playwright's sync API keeps an event loop running in this thread while it is
    open, which would break every asyncio test that runs after the browser tests in the same session.
    """
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make browser-deps`")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        # the pages forbid eval (CSP); playwright's wait_for_function needs it, so only the test context bypasses it
        context = browser.new_context(viewport={"width": 1400, "height": 900}, bypass_csp=True)
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


@dataclass(frozen=True)
class PagesSite:
    """A running curation server for the page tests: a plate imaged twice, a 1536-well plate, four roles."""

    url: str
    barcode: str
    big_barcode: str
    earlier: dict[str, float]  # well -> fused probability of the first imaging round
    probabilities: dict[str, float]  # well -> of the latest round
    queued_wells: list[str]
    queue_ids: list[int]
    labelled_by_other: int
    other_curator: str
    accounts: dict[str, str]  # role -> username, each with ``password``
    admin: str
    password: str


PAGES_PASSWORD = "browser-pages-password"


class FakePatchMaps:
    """Stands in for the inference map server (which needs a registered model): a fixed 4x4 map per image."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    def patch_map(self, uri: str, mode: str) -> dict[str, object]:
        self.asked.append((uri, mode))
        grid = [[(r - c) / 4 for c in range(4)] for r in range(4)]
        return {
            "uri": uri,
            "mode": mode,
            "rows": 4,
            "cols": 4,
            "contributions": grid,
            "patch_part": 0.5,
            "cls_part": 0.2,
            "bias_part": -0.1,
            "margin": 0.6,
            "probability": 0.65,
            "model_name": f"axis-{mode}",
            "model_version": "1",
        }


@pytest.fixture(scope="session")
def pages_site(stack: StackInfo) -> Iterator[PagesSite]:
    """Serve the app with a patch-map source; seed a plate with two imaging rounds (images of both for the
    queued drops), a 1536-well plate, a curator, a second curator who labelled one item, a scientist, an admin."""
    from datetime import UTC, datetime, timedelta

    from axis_adapters.db import connect
    from axis_curation.app import create_app
    from axis_curation.context import build_services
    from axis_curation.devdata import InspectionRow, insert_image, insert_scores, seed_demo, synth_image
    from axis_curation.server import BackgroundServer
    from axis_curation.settings import CurationOptions, CurationSettings

    settings = CurationSettings(
        _env_file=str(stack.env_file),  # type: ignore[call-arg]
        curation=CurationOptions(bootstrap_admin=False, bcrypt_rounds=4),
    )
    services = build_services(settings)
    services.patchmaps = FakePatchMaps()
    tag = uuid.uuid4().hex[:6].upper()
    barcode, big = f"PG-{tag}", f"PG1536-{tag}"
    when = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    earlier: dict[str, float] = {}
    with connect(settings.postgres) as conn:
        demo = seed_demo(conn, services.store, barcode=barcode, queue_items=5, seed=21, when=when)
        bucket = settings.s3.images_bucket
        for i, well in enumerate(demo.probabilities):
            insp = InspectionRow(f"{barcode}-{well}-0", barcode, well, 1, when - timedelta(days=3, seconds=-i))
            probs: dict[str, tuple[str | None, float]] = {}
            for mode in ("visible", "uv"):
                event_id = None
                if well in demo.queued_wells:
                    uri = f"s3://{bucket}/demo/{barcode}/{well}/0/{mode}.jpg"
                    event_id = insert_image(conn, services.store, insp, mode, uri, synth_image("clear", mode, 500 + i))
                probs[mode] = (event_id, round(demo.probabilities[well] * 0.5, 3))
            earlier[well] = insert_scores(conn, insp, probs)
        seed_demo(conn, services.store, barcode=big, plate_type="1536", queue_items=2, seed=22, when=when)
        conn.commit()
    accounts = {role: f"pg-{role}-{tag.lower()}" for role in ("curator", "scientist", "admin", "lims")}
    for role, name in accounts.items():
        services.authenticator.create_account(name, PAGES_PASSWORD, role)
    other = f"pg-other-{tag.lower()}"
    services.authenticator.create_account(other, PAGES_PASSWORD, "curator")
    services.repo.add_label(demo.queue_ids[-1], other, "crystal", "needles at the rim", lambda votes: ("open", None))
    with BackgroundServer(create_app(services)) as srv:
        yield PagesSite(
            url=srv.url,
            barcode=barcode,
            big_barcode=big,
            earlier=earlier,
            probabilities=demo.probabilities,
            queued_wells=demo.queued_wells,
            queue_ids=demo.queue_ids,
            labelled_by_other=demo.queue_ids[-1],
            other_curator=other,
            accounts=accounts,
            admin=accounts["admin"],
            password=PAGES_PASSWORD,
        )


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    """A headless Debian Chromium browser; tests open their own contexts (a viewport, a login each)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: run `make browser-deps`")
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
