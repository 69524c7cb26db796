"""The curator queue's filters, sorts, skips and undo on the embedded stack, through the HTTP API."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from axis_stack import StackInfo

pytestmark = pytest.mark.integration
PASSWORD = "queue-test-password"


@dataclass(frozen=True)
class Site:
    url: str
    barcode: str
    items: dict[int, dict[str, Any]]  # id -> the item as seeded (probability, kind)
    users: dict[str, str]


@pytest.fixture(scope="module")
def site(stack: StackInfo) -> Iterator[Site]:
    from axis_adapters.db import connect
    from axis_curation.app import create_app
    from axis_curation.context import build_services
    from axis_curation.devdata import seed_demo
    from axis_curation.server import BackgroundServer
    from axis_curation.settings import CurationOptions, CurationSettings

    settings = CurationSettings(
        _env_file=str(stack.env_file),  # type: ignore[call-arg]
        curation=CurationOptions(bootstrap_admin=False, bcrypt_rounds=4, consensus_min=2),
    )
    services = build_services(settings, with_broker=False)
    barcode = f"QF-{uuid.uuid4().hex[:6].upper()}"
    with connect(settings.postgres) as conn:
        demo = seed_demo(conn, services.store, barcode=barcode, queue_items=8, seed=7)
        conn.commit()
    items = {i: services.repo.item(i).model_dump() for i in demo.queue_ids}
    tag = uuid.uuid4().hex[:6]
    users = {k: f"q{k}-{tag}" for k in ("ann", "ben", "sci")}
    for key, name in users.items():
        services.authenticator.create_account(name, PASSWORD, "scientist" if key == "sci" else "curator")
    with BackgroundServer(create_app(services)) as srv:
        yield Site(srv.url, barcode, items, users)
    for c in services.closers:
        c.close()


def client(site: Site, who: str) -> httpx.Client:
    c = httpx.Client(base_url=site.url, timeout=30)
    resp = c.post("/v1/tokens", json={"username": site.users[who], "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    c.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
    return c


def ids(page: dict[str, Any]) -> list[int]:
    return [i["id"] for i in page["items"]]


def test_filters_and_sorts_narrow_and_order_the_queue(site: Site) -> None:
    ann = client(site, "ann")
    mine = ann.get("/v1/queue", params={"plate": site.barcode, "limit": 100}).json()
    assert sorted(ids(mine)) == sorted(site.items) and mine["matching"] == len(site.items)
    assert mine["count"] >= mine["matching"] and site.barcode in mine["plates"]
    kinds = {it["kind"] for it in site.items.values()}
    for kind in kinds:
        page = ann.get("/v1/queue", params={"plate": site.barcode, "kind": kind, "limit": 100}).json()
        assert sorted(ids(page)) == sorted(i for i, it in site.items.items() if it["kind"] == kind)
    probs = sorted(it["ml_probability"] for it in site.items.values())
    lo, hi = probs[1], probs[-2]
    page = ann.get("/v1/queue", params={"plate": site.barcode, "min_p": lo, "max_p": hi, "limit": 100}).json()
    assert sorted(ids(page)) == sorted(i for i, it in site.items.items() if lo <= it["ml_probability"] <= hi)
    up = ids(ann.get("/v1/queue", params={"plate": site.barcode, "sort": "probability", "limit": 100}).json())
    down = ids(ann.get("/v1/queue", params={"plate": site.barcode, "sort": "probability_desc", "limit": 100}).json())
    assert [site.items[i]["ml_probability"] for i in up] == probs and down == sorted(
        down, key=lambda i: -site.items[i]["ml_probability"]
    )
    skipped = up[:3]
    page = ann.get("/v1/queue", params={"plate": site.barcode, "skip": skipped, "limit": 100}).json()
    assert sorted(ids(page)) == sorted(set(site.items) - set(skipped)) and page["matching"] == len(site.items) - 3
    assert ann.get("/v1/queue", params={"sort": "sideways"}).status_code == 422
    assert ann.get("/v1/queue", params={"kind": "nonsense"}).status_code == 422


def test_undo_takes_back_my_label_and_the_consensus_with_it(site: Site) -> None:
    ann, ben = client(site, "ann"), client(site, "ben")
    item = max(site.items)
    assert ann.post(f"/v1/items/{item}/labels", json={"label": "crystal"}).status_code == 201
    # ben sees ann's label on the item, and can put labelled-by-others items first
    others = ben.get("/v1/queue", params={"plate": site.barcode, "others": "true"}).json()
    assert ids(others) == [item]
    first = ben.get("/v1/queue", params={"plate": site.barcode, "sort": "others_first", "limit": 1}).json()
    assert ids(first) == [item]
    seen = ben.get(f"/v1/items/{item}").json()
    assert [(lab["curator"], lab["label"]) for lab in seen["labels"]] == [(site.users["ann"], "crystal")]
    res = ben.post(f"/v1/items/{item}/labels", json={"label": "crystal"}).json()
    assert res["item"]["status"] == "resolved" and res["item"]["resolved_label"] == "crystal"
    undone = ben.delete(f"/v1/items/{item}/labels/mine")
    assert undone.status_code == 200, undone.text
    body = undone.json()
    assert body["label"] == "crystal" and body["item"]["status"] == "open" and body["item"]["resolved_label"] is None
    assert item in ids(ben.get("/v1/queue", params={"plate": site.barcode, "limit": 100}).json())
    assert ben.get(f"/v1/items/{item}").json()["my_label"] is None
    again = ben.delete(f"/v1/items/{item}/labels/mine")
    assert again.status_code == 404 and "not labelled" in again.json()["detail"]
    assert ann.get(f"/v1/items/{item}").json()["my_label"] == "crystal", "ann's label stays"


def test_an_item_shows_each_modes_score_with_its_label_and_the_drops_inspections(site: Site) -> None:
    ann = client(site, "ann")
    item = ann.get(f"/v1/items/{min(site.items)}").json()
    assert [m["mode"] for m in item["mode_scores"]] == ["visible", "uv"]
    for m in item["mode_scores"]:
        assert m["label"] == ("crystal" if m["probability"] >= m["threshold"] else "other")
    assert [h["current"] for h in item["history"]] == [True] and item["history"][0]["images"]


def test_a_scientist_reads_but_does_not_curate(site: Site) -> None:
    sci = client(site, "sci")
    assert sci.get(f"/v1/plates/{site.barcode}").status_code == 200
    for method, path in (("GET", "/v1/queue"), ("GET", f"/v1/items/{min(site.items)}"),
                         ("POST", f"/v1/items/{min(site.items)}/labels"),
                         ("DELETE", f"/v1/items/{min(site.items)}/labels/mine")):  # fmt: skip
        resp = sci.request(method, path, json={"label": "crystal"} if method == "POST" else None)
        assert resp.status_code == 403 and "curator" in resp.json()["detail"], (method, path)
