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
        conn.execute(
            "UPDATE discrepancies SET created_at = timestamptz '2000-01-01' + id * interval '1 second' "
            "WHERE id = ANY(%s)",
            (demo.queue_ids,),
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
