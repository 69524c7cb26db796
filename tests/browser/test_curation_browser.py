"""Drive the curator page and the plate map in headless Chromium; screenshots in test-output/browser/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"
pytestmark = pytest.mark.browser


def _wait_images(page: Any) -> None:
    page.wait_for_function("Array.from(document.images).every((i) => i.complete && i.naturalWidth > 0)")


def test_curator_labels_three_items_with_the_keyboard_and_reads_a_well_probability(
    curation_site: Any, browser_page: Any
) -> None:
    page, site = browser_page, curation_site
    page.goto(site.url + "/curate")
    assert page.url.startswith(site.url + "/login"), "an anonymous visitor is sent to the login page"
    page.fill("#username", site.username)
    page.fill("#password", site.password)
    page.click("#login-button")
    page.wait_for_url(site.url + "/curate")
    page.wait_for_function("/^\\d+$/.test(document.getElementById('queue-count').textContent)")
    start = int(page.text_content("#queue-count") or "0")
    assert start >= 6
    page.wait_for_selector("#images img")
    _wait_images(page)
    # the seeded disagreements come first in the queue (an earlier run's plate may precede this one's)
    assert (page.text_content("#drop") or "").startswith("BR-")
    page.screenshot(path=str(SHOTS / "curate.png"), full_page=True)

    seen = []
    for n, key in enumerate(["c", "o", "u"], start=1):
        seen.append(page.text_content("#item-id"))
        page.wait_for_selector("body[data-state=ready]")
        page.keyboard.press(key)
        page.wait_for_function(f"document.getElementById('queue-count').textContent === '{start - n}'")
    assert len(set(seen)) == 3, "each key press labelled a different item"
    assert "item is open" in (page.text_content("#flash") or "")
    page.wait_for_selector("#images img")
    _wait_images(page)
    page.screenshot(path=str(SHOTS / "curate-after-three.png"), full_page=True)

    page.goto(f"{site.url}/plates/{site.barcode}")
    well, prob = max(site.probabilities.items(), key=lambda kv: kv[1])
    cell = page.locator(f"#well-{well}")
    cell.hover()
    page.wait_for_function(f"document.getElementById('hover-info').textContent.startsWith('{well}:')")
    hover = page.text_content("#hover-info") or ""
    expected = f"{100 * prob:.1f} %"
    assert expected in hover and "axis-visible v1" in hover, hover
    assert expected in (cell.get_attribute("title") or "")
    # below 40 % a well is invisible, above it is green
    low_well = min(site.probabilities, key=lambda w: site.probabilities[w])
    low_bg = page.eval_on_selector(f"#well-{low_well}", "n => getComputedStyle(n).backgroundColor")
    high_bg = cell.evaluate("n => getComputedStyle(n).backgroundColor")
    assert re.search(r"rgba\(0, 150, 60, 0\)", low_bg) and "0, 150, 60" in high_bg, (low_bg, high_bg)
    page.screenshot(path=str(SHOTS / "plate-ml.png"), full_page=True)

    page.click(f"#well-{site.queued_wells[0]}")  # a well with images and a user score
    page.wait_for_selector("#well-images img")
    _wait_images(page)
    page.select_option("#view", "users")
    page.screenshot(path=str(SHOTS / "plate-users-and-well.png"), full_page=True)
    assert (SHOTS / "curate.png").stat().st_size > 10_000
