"""Issue 16 in headless Chromium: a curator labels, skips, undoes, zooms, filters and reaches the end of the queue;
a scientist reads plates (ML vs human, an earlier inspection) and is refused the queue with a clear page; the plate
map has no overlapping elements at 800 px and 1920 px; a 1536-well plate's JSON is served compressed.
Screenshots in test-output/browser/."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import pytest

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "browser"
pytestmark = pytest.mark.browser


@pytest.fixture
def browser(chromium: Any) -> Any:
    return chromium


def new_page(browser: Any, width: int = 1400, height: int = 900) -> Any:
    # the pages forbid eval (CSP); playwright's wait_for_function needs it, so only the test context bypasses it
    context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


def login(page: Any, site: Any, username: str, target: str) -> None:
    page.goto(site.url + target)
    assert "/login" in page.url
    page.fill("#username", username)
    page.fill("#password", site.password)
    page.click("#login-button")
    page.wait_for_url(lambda u: "/login" not in u)


def wait_images(page: Any) -> None:
    page.wait_for_function("Array.from(document.images).every((i) => !i.src || (i.complete && i.naturalWidth > 0))")


def box(page: Any, selector: str) -> dict[str, float] | None:
    b: dict[str, float] | None = page.locator(selector).first.bounding_box()
    return b


def overlaps(a: dict[str, float], b: dict[str, float]) -> bool:
    """True when two boxes share area (touching edges do not count)."""
    eps = 0.5
    return (
        a["x"] + a["width"] - eps > b["x"]
        and b["x"] + b["width"] - eps > a["x"]
        and a["y"] + a["height"] - eps > b["y"]
        and b["y"] + b["height"] - eps > a["y"]
    )


def item_id(page: Any) -> int:
    return int((page.text_content("#item-id") or "#0").lstrip("#"))


def press_when_ready(page: Any, key: str) -> None:
    page.wait_for_selector("body[data-state=ready]")
    page.keyboard.press(key)


def choose_plate(page: Any, barcode: str) -> None:
    page.wait_for_function(
        f"Array.from(document.querySelectorAll('#f-plate option')).some((o) => o.value === '{barcode}')"
    )
    page.select_option("#f-plate", barcode)
    page.wait_for_function("document.getElementById('matching').textContent.length > 0")


def test_scientist_reads_ml_vs_human_and_an_earlier_inspection_and_is_refused_the_queue(
    pages_site: Any, browser: Any
) -> None:
    site, page = pages_site, new_page(browser)
    login(page, site, site.accounts["scientist"], "/plates")
    page.wait_for_selector(f"a[href='/plates/{site.barcode}']")
    assert page.locator("header nav a", has_text="Curate").count() == 0, "no queue link for a scientist"
    page.screenshot(path=str(SHOTS / "scientist-plates.png"), full_page=True)

    page.click(f"a[href='/plates/{site.barcode}']")
    page.wait_for_selector("#grid .well")
    plate = page.evaluate(f"fetch('/v1/plates/{site.barcode}').then((r) => r.json())")
    assert len(plate["rounds"]) == 2 and plate["selected"] == 1
    # ML fill and the user's score as a ring on the same well; disagreements marked
    disagree = [w["well"] for w in plate["wells"] if w.get("disagrees")]
    assert set(site.queued_wells) <= set(disagree), "every queued disagreement is marked on the map"
    marked = page.eval_on_selector_all(".well.disagree", "ns => ns.map((n) => n.id.slice(5))")
    assert sorted(marked) == sorted(disagree)
    ringed = page.eval_on_selector_all(".well.ring", "ns => ns.length")
    assert ringed == sum(1 for w in plate["wells"] if w.get("user_score"))
    w = site.queued_wells[0]
    fill = page.eval_on_selector(f"#well-{w}", "n => getComputedStyle(n).backgroundColor")
    ring = page.eval_on_selector(f"#well-{w}", "n => getComputedStyle(n).borderTopColor")
    assert fill != ring and "0, 150, 60" in fill or site.probabilities[w] <= 0.4, (fill, ring)
    page.hover(f"#well-{w}")
    hover = page.text_content("#hover-info") or ""
    assert f"ML {100 * site.probabilities[w]:.1f} %" in hover and "user:" in hover and "disagree" in hover, hover
    legend = page.text_content("#legend") or ""
    assert "Single crystals" in legend and "single_crystals" not in legend and "clamp" not in legend
    page.screenshot(path=str(SHOTS / "scientist-plate-ml-vs-human.png"), full_page=True)

    # the earlier imaging: other probabilities, the selector says which round is shown
    page.click("#rounds button[data-round='0']")
    page.wait_for_function("document.getElementById('summary').textContent.includes('(1 of 2)')")
    shown = float(page.get_attribute(f"#well-{w}", "data-probability") or "nan")
    assert shown == pytest.approx(site.earlier[w]) and shown != pytest.approx(site.probabilities[w])
    assert "round=0" in page.url

    # the well: both inspections in the time series, the tables say which inspection each row is of
    page.click(f"#well-{w}")
    page.wait_for_selector("#well-series figure img")
    wait_images(page)
    assert page.locator("#well-series figure").count() == 2
    imaged = page.eval_on_selector_all("#well-ml-scores tbody tr td:first-child", "ns => ns.map((n) => n.title)")
    assert len(imaged) == 4 and len(set(imaged)) == 2, imaged  # 2 inspections x 2 modes, visible first in each
    modes = page.eval_on_selector_all("#well-ml-scores tbody tr td:nth-child(3)", "ns => ns.map((n) => n.textContent)")
    assert modes == ["visible", "UV", "visible", "UV"]
    assert page.locator("#well-ml-scores th", has_text="imaged").count() == 1
    page.screenshot(path=str(SHOTS / "scientist-earlier-inspection-well.png"), full_page=True)

    # the queue is refused with a page that says which role it needs and whom to ask
    resp = page.goto(site.url + "/curate")
    assert resp is not None and resp.status == 403
    assert (page.text_content("#needed-role") or "") == "curator"
    assert (page.text_content("#refused-role") or "") == "scientist"
    assert (page.text_content("#ask") or "").strip(), "names whom to ask"
    assert page.locator("button[data-label]").count() == 0, "no live label buttons"
    page.screenshot(path=str(SHOTS / "scientist-refused-queue.png"), full_page=True)
    api = page.evaluate("fetch('/v1/queue').then(async (r) => [r.status, (await r.json()).detail])")
    assert api[0] == 403 and "curator" in api[1] and "ask an admin" in api[1]
    page.context.close()


def test_lims_account_is_refused_the_plates_with_a_page(pages_site: Any, browser: Any) -> None:
    site, page = pages_site, new_page(browser)
    login(page, site, site.accounts["lims"], "/plates")
    assert (page.text_content("#needed-role") or "") == "scientist"
    assert "lims" in (page.text_content("#refused-role") or "")
    page.screenshot(path=str(SHOTS / "lims-refused-plates.png"), full_page=True)
    page.context.close()


def test_curator_filters_labels_skips_undoes_zooms_and_reaches_the_end(pages_site: Any, browser: Any) -> None:
    from PIL import Image

    site, page = pages_site, new_page(browser)
    login(page, site, site.accounts["curator"], "/curate")
    choose_plate(page, site.barcode)
    page.wait_for_function(f"document.getElementById('drop').textContent.startsWith('{site.barcode} ')")
    page.wait_for_selector("#images img")
    wait_images(page)
    n = len(site.queue_ids)
    assert page.text_content("#matching") == f"{n} match the filters and are not skipped"

    # per-mode probabilities, each coloured by its label at that model's threshold (not always green)
    rows = page.eval_on_selector_all(
        ".prob-row", "ns => ns.map((n) => [n.dataset.mode, n.className, n.querySelector('.prob-label').textContent])"
    )
    assert [r[0] for r in rows] == ["fused", "visible", "UV"]
    for _, cls, text in rows:
        assert ("is-crystal" in cls) == text.startswith("crystal"), (cls, text)
    page.screenshot(path=str(SHOTS / "curator-queue-item.png"), full_page=True)

    # the earlier inspection of the drop in the time series, this one marked
    assert page.locator("#history figure").count() == 2
    assert page.locator("#history figure.current").count() == 1

    # "?" shows the keys
    press_when_ready(page, "?")
    page.wait_for_selector("#help:not([hidden])")
    assert "undo" in (page.text_content("#help") or "")
    page.screenshot(path=str(SHOTS / "curator-help.png"), full_page=True)
    page.keyboard.press("Escape")
    page.wait_for_selector("#help", state="hidden")

    # full size from the original object: stored pixels, zoom, pan, contrast
    page.keyboard.press("f")
    page.wait_for_selector("#viewer:not([hidden])")
    page.wait_for_function("document.getElementById('viewer-img').naturalWidth > 0")
    src = page.get_attribute("#viewer-img", "src") or ""
    assert "max_side" not in src
    original = page.evaluate(f"fetch('{src}').then((r) => r.arrayBuffer()).then((b) => Array.from(new Uint8Array(b)))")
    width, height = Image.open(io.BytesIO(bytes(original))).size
    assert page.evaluate(
        "[document.getElementById('viewer-img').naturalWidth, document.getElementById('viewer-img').naturalHeight]"
    ) == [width, height]
    before = float(page.get_attribute("#viewer", "data-scale") or "0")
    page.keyboard.press("+")
    page.keyboard.press("+")
    assert float(page.get_attribute("#viewer", "data-scale") or "0") > before * 1.5
    t0 = page.eval_on_selector("#viewer-img", "n => n.style.transform")
    page.keyboard.press("ArrowLeft")
    assert page.eval_on_selector("#viewer-img", "n => n.style.transform") != t0, "arrow keys pan"
    page.fill("#viewer-contrast", "250")
    page.dispatch_event("#viewer-contrast", "input")
    assert "contrast(250%)" in page.eval_on_selector("#viewer-img", "n => n.style.filter")
    page.screenshot(path=str(SHOTS / "curator-zoom.png"))
    page.keyboard.press("Escape")
    page.wait_for_selector("#viewer", state="hidden")

    # skip, label, undo (the item comes back), label again
    first = item_id(page)
    press_when_ready(page, "s")
    page.wait_for_function(f"document.getElementById('item-id').textContent !== '#{first}'")
    assert page.text_content("#session-skipped") == "1"
    second = item_id(page)
    press_when_ready(page, "c")
    page.wait_for_function(f"document.getElementById('item-id').textContent !== '#{second}'")
    assert page.text_content("#session-done") == "1"
    press_when_ready(page, "z")
    page.wait_for_function(f"document.getElementById('item-id').textContent === '#{second}'")
    assert page.text_content("#session-done") == "0" and "took back" in (page.text_content("#flash") or "")
    mine = page.evaluate(f"fetch('/v1/items/{second}').then((r) => r.json()).then((i) => i.my_label)")
    assert mine is None, "the label was taken back in the database"
    page.screenshot(path=str(SHOTS / "curator-after-undo.png"), full_page=True)
    press_when_ready(page, "o")
    page.wait_for_function("document.getElementById('session-done').textContent === '1'")

    # sort: items other curators labelled first, with their labels shown
    page.select_option("#f-sort", "others_first")
    page.wait_for_function(f"document.getElementById('item-id').textContent === '#{site.labelled_by_other}'")
    others = page.text_content("#others") or ""
    assert site.other_curator in others and "crystal" in others and "needles" in others
    link = page.get_attribute("#well-link", "href") or ""
    assert link.startswith(f"/plates/{site.barcode}?well=")

    # the rest of the plate's items, then the end of the queue (for this filter)
    for _ in range(n):
        if page.locator("#work").is_hidden():
            break
        current = item_id(page)
        press_when_ready(page, "u")
        page.wait_for_function(
            f"document.getElementById('item-id').textContent !== '#{current}' || document.getElementById('work').hidden"
        )
    page.wait_for_selector("#empty:not([hidden])")
    assert page.locator("#work").is_hidden() and box(page, "#work") is None, "no empty work panel"
    assert page.locator("button[data-label]:visible").count() == 0, "no live label buttons"
    assert page.locator("#empty-unskip").is_visible(), "the skipped item can be shown again"
    page.screenshot(path=str(SHOTS / "curator-end-of-queue.png"), full_page=True)
    page.click("#empty-unskip")
    page.wait_for_function(f"document.getElementById('item-id').textContent === '#{first}'")
    press_when_ready(page, "x")
    page.wait_for_selector("#empty:not([hidden])")
    assert "Nothing left" in (page.text_content("#empty-title") or "") or "No item matches" in (
        page.text_content("#empty-title") or ""
    )
    page.context.close()


def test_patch_map_overlay_shows_in_the_curator_view(pages_site: Any, browser: Any) -> None:
    site, page = pages_site, new_page(browser)
    login(page, site, site.accounts["admin"], "/curate")
    choose_plate(page, site.big_barcode)
    page.wait_for_function("document.querySelectorAll('#images canvas.patch-overlay').length === 2")
    wait_images(page)
    pairs = page.eval_on_selector_all(
        "#images figure",
        "fs => fs.map((f) => { const i = f.querySelector('img').getBoundingClientRect();"
        " const c = f.querySelector('canvas.patch-overlay'); if (!c) return null;"
        " const b = c.getBoundingClientRect(); return [i.x, i.y, i.width, i.height, b.x, b.y, b.width, b.height]; })",
    )
    assert len(pairs) == 2 and all(p is not None for p in pairs), pairs
    for p in pairs:
        assert p[4:] == pytest.approx(p[:4], abs=1.5), "the overlay lies exactly over its image"
    assert "map: patch part" in (page.text_content("#images") or "")
    page.screenshot(path=str(SHOTS / "curator-patch-map.png"), full_page=True)
    page.keyboard.press("m")
    page.wait_for_function("getComputedStyle(document.querySelector('canvas.patch-overlay')).display === 'none'")
    page.context.close()


BOXES = (
    "ns => ns.map((n) => { const b = n.getBoundingClientRect();"
    " return {x: b.x, y: b.y, width: b.width, height: b.height}; })"
)


@pytest.mark.parametrize("width", [800, 1920])
def test_plate_map_has_no_overlapping_elements(pages_site: Any, browser: Any, width: int) -> None:
    site = pages_site
    for barcode, wells_per_plate, well in ((site.barcode, 96, site.queued_wells[0]), (site.big_barcode, 1536, "A1")):
        page = new_page(browser, width=width, height=1000)
        login(page, site, site.accounts["scientist"], f"/plates/{barcode}?well={well}")
        page.wait_for_selector("#grid .well")
        page.wait_for_selector("#detail h2")
        wait_images(page)
        panel, detail = box(page, "#plate-panel"), box(page, "#detail")
        assert panel and detail and not overlaps(panel, detail), (panel, detail)
        wells = page.eval_on_selector_all("#grid .well", BOXES)
        labels = page.eval_on_selector_all("#grid .lab", BOXES)
        assert len(wells) == wells_per_plate
        for b in wells:
            assert not overlaps(b, detail), f"a well of the {wells_per_plate}-well plate lies over the well panel"
            assert panel["x"] <= b["x"] and b["x"] + b["width"] <= panel["x"] + panel["width"], (
                "a well outside its panel"
            )
        cells = wells + labels
        by_row: dict[int, list[dict[str, float]]] = {}
        for b in cells:
            by_row.setdefault(round(b["y"]), []).append(b)
        for row in by_row.values():  # neighbours in a row (wells and their labels) do not overlap
            row.sort(key=lambda b: b["x"])
            for left, right in zip(row, row[1:], strict=False):
                assert not overlaps(left, right), (left, right)
        legend = box(page, "#legend")
        assert legend is not None and not overlaps(legend, detail)
        ticks = page.eval_on_selector_all("#legend .tick span, #legend .cls", BOXES)
        for i, a in enumerate(ticks):
            for b in ticks[i + 1 :]:
                assert not overlaps(a, b), ("legend entries overlap", a, b)
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "no sideways scrolling"
        toolbar = page.eval_on_selector_all(".toolbar > *", BOXES)
        for i, a in enumerate(toolbar):
            for b in toolbar[i + 1 :]:
                assert not overlaps(a, b), (a, b)
        page.screenshot(path=str(SHOTS / f"plate-{wells_per_plate}-{width}px.png"), full_page=True)
        page.context.close()


def test_1536_well_plate_json_is_served_compressed(pages_site: Any) -> None:
    site = pages_site
    with httpx.Client(base_url=site.url, timeout=60) as c:
        token = c.post("/v1/tokens", json={"username": site.accounts["scientist"], "password": site.password})
        c.headers["Authorization"] = "Bearer " + token.json()["access_token"]
        for barcode in (site.barcode, site.big_barcode):
            r = c.get(f"/v1/plates/{barcode}", headers={"Accept-Encoding": "gzip"})
            assert r.status_code == 200 and r.headers.get("content-encoding") == "gzip"
            raw = len(r.content)
            wire = r.num_bytes_downloaded
            wells = len(r.json()["wells"])
            print(
                f"plate JSON {barcode}: {wells} wells, {raw} bytes, {wire} bytes gzip on the wire ({raw / wire:.1f}x)"
            )
            assert wire < raw
        plain = c.get(f"/v1/plates/{site.big_barcode}", headers={"Accept-Encoding": "identity"})
        assert plain.headers.get("content-encoding") is None and len(plain.content) == raw


def test_a_well_links_to_its_queue_item_and_the_item_back_to_its_well(pages_site: Any, browser: Any) -> None:
    site, page = pages_site, new_page(browser)
    well, item = site.queued_wells[1], site.queue_ids[1]
    login(page, site, site.accounts["admin"], f"/plates/{site.barcode}?well={well}")
    page.wait_for_selector("#well-queue a")
    assert page.get_attribute("#well-queue a", "href") == f"/curate?item={item}"
    page.click("#well-queue a")
    page.wait_for_function(f"document.getElementById('item-id').textContent === '#{item}'")
    assert (page.text_content("#drop") or "").startswith(f"{site.barcode} {well} ")
    page.click("#well-link")
    page.wait_for_selector("#well-images img")
    assert page.locator(f"#well-{well}.selected").count() == 1, "the item's well is open on the plate map"
    page.context.close()
