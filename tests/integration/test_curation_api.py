"""Curation service on the embedded stack: auth and errors, queue -> labels -> consensus, plate map, images."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest

if TYPE_CHECKING:
    from axis_stack import StackInfo

pytestmark = pytest.mark.integration
PASSWORD = "integration-password"


@dataclass(frozen=True)
class Site:
    url: str
    conninfo: str
    barcode: str
    queue_ids: list[int]
    probabilities: dict[str, float]
    queued_wells: list[str]
    store: Any
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
        curation=CurationOptions(bootstrap_admin=False, bcrypt_rounds=4),
    )
    services = build_services(settings)
    barcode = f"IT-{uuid.uuid4().hex[:6].upper()}"
    with connect(settings.postgres) as conn:
        demo = seed_demo(conn, services.store, barcode=barcode, queue_items=4, seed=3)
        conn.commit()
    tag = uuid.uuid4().hex[:6]
    users = {"alice": f"alice-{tag}", "bob": f"bob-{tag}", "admin": f"admin-{tag}", "sim": f"sim-{tag}"}
    for key, name in users.items():
        services.authenticator.create_account(name, PASSWORD, "admin" if key == "admin" else "curator")
    with BackgroundServer(create_app(services)) as srv:
        yield Site(
            srv.url,
            stack.postgres_conninfo(),
            barcode,
            demo.queue_ids,
            demo.probabilities,
            demo.queued_wells,
            services.store,
            users,
        )


def client(site: Site, who: str | None = None) -> httpx.Client:
    c = httpx.Client(base_url=site.url, timeout=30)
    if who:
        resp = c.post("/v1/tokens", json={"username": site.users[who], "password": PASSWORD})
        assert resp.status_code == 200, resp.text
        c.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
    return c


def test_health_is_open_and_everything_else_needs_a_login(site: Site) -> None:
    anon = client(site)
    assert anon.get("/health").json()["status"] == "ok"
    for path in ("/v1/queue", f"/v1/items/{site.queue_ids[0]}", f"/v1/plates/{site.barcode}", "/v1/datasets"):
        assert anon.get(path).status_code == 401, path
    assert anon.post("/v1/datasets", json={"name": "x"}).status_code == 401
    assert anon.post("/v1/tokens", json={"username": site.users["alice"], "password": "wrong"}).status_code == 401
    page = anon.get("/curate", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_login_sets_a_strict_httponly_cookie_that_works(site: Site) -> None:
    c = client(site)
    resp = c.post("/v1/login", json={"username": site.users["alice"], "password": PASSWORD})
    cookie = resp.headers["set-cookie"].lower()
    assert resp.status_code == 200 and "httponly" in cookie and "samesite=strict" in cookie
    assert c.get("/v1/me").json() == {"username": site.users["alice"], "role": "curator"}
    assert c.get("/curate").status_code == 200
    c.post("/v1/logout")
    assert c.get("/v1/me").status_code == 401


def test_wrong_role_unknown_item_and_malformed_bodies(site: Site) -> None:
    alice = client(site, "alice")
    assert alice.post("/v1/datasets", json={"name": "nope"}).status_code == 403
    assert alice.post("/v1/accounts", json={"username": "x", "password": "y" * 12}).status_code == 403
    assert alice.post("/v1/items/999999999/labels", json={"label": "crystal"}).status_code == 404
    assert alice.get("/v1/items/999999999").status_code == 404
    bad = alice.post(f"/v1/items/{site.queue_ids[0]}/labels", json={"label": "crystl"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "label"]
    assert "label" in bad.json()["message"]
    assert alice.post(f"/v1/items/{site.queue_ids[0]}/labels", json={}).json()["detail"][0]["loc"] == ["body", "label"]
    not_json = alice.post(
        f"/v1/items/{site.queue_ids[0]}/labels", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422
    assert alice.post("/v1/items/abc/labels", json={"label": "crystal"}).status_code == 422
    assert alice.post(f"/v1/items/{2**70}/labels", json={"label": "crystal"}).status_code == 422
    assert alice.get("/v1/images", params={"uri": "s3://axis-mlflow/secret"}).status_code == 403
    assert alice.get("/v1/images", params={"uri": "/etc/passwd"}).status_code == 422
    assert alice.get("/v1/images", params={"uri": "s3://axis-images/../x"}).status_code == 403
    assert alice.get("/v1/images", params={"uri": "s3://axis-images/missing.png"}).status_code == 404
    assert alice.get(f"/v1/plates/{site.barcode}/wells/Z99").status_code == 422


def test_two_agreeing_curators_resolve_an_item_and_conflicts_become_unresolved(site: Site) -> None:
    alice, bob = client(site, "alice"), client(site, "bob")
    first, second = site.queue_ids[0], site.queue_ids[1]
    item = alice.get(f"/v1/items/{first}").json()
    assert {i["imaging_mode"] for i in item["images"]} == {"visible", "uv"}
    assert item["model_version"] == "1" and item["human_class"] and item["human_colour"].startswith("#")
    before_bob = bob.get("/v1/queue").json()["count"]
    res = alice.post(f"/v1/items/{first}/labels", json={"label": "crystal", "comment": "clear facets"}).json()
    assert res["item"]["status"] == "open", "one label is not consensus (default k = 2)"
    assert first not in [i["id"] for i in alice.get("/v1/queue?limit=1000").json()["items"]]
    assert first in [i["id"] for i in bob.get("/v1/queue?limit=1000").json()["items"]]
    res = bob.post(f"/v1/items/{first}/labels", json={"label": "crystal"}).json()
    assert res["item"]["status"] == "resolved" and res["item"]["resolved_label"] == "crystal"
    assert bob.get("/v1/queue").json()["count"] == before_bob - 1
    alice.post(f"/v1/items/{second}/labels", json={"label": "crystal"})
    res = bob.post(f"/v1/items/{second}/labels", json={"label": "other"}).json()
    assert res["item"]["status"] == "unresolved" and res["item"]["resolved_label"] is None
    with psycopg.connect(site.conninfo) as conn:
        rows = conn.execute(
            "SELECT curator, label, comment, created_at FROM curator_labels WHERE discrepancy_id = %s ORDER BY id",
            (first,),
        ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (site.users["alice"], "crystal", "clear facets"),
        (site.users["bob"], "crystal", ""),
    ]
    assert all(r[3] is not None for r in rows)


def test_curator_simulator_labels_its_queue_through_the_api(site: Site) -> None:
    from axis_simulators.curator import login, simulate_curator

    with psycopg.connect(site.conninfo) as conn:
        open_items = conn.execute(
            "SELECT id, inspection_id FROM discrepancies WHERE status = 'open' AND plate_barcode = %s", (site.barcode,)
        ).fetchall()
    truth = {insp: "other" for _, insp in open_items}
    with login(site.url, site.users["sim"], PASSWORD) as c:
        run = simulate_curator(c, truth, uncertain_share=0.0, seed=1)
        assert c.get("/v1/queue").json()["count"] == 0
    assert run.labelled.get("other", 0) == len(open_items) and run.errors == []


def test_plate_map_and_well_history_show_scores_and_images(site: Site) -> None:
    alice = client(site, "alice")
    plate = alice.get(f"/v1/plates/{site.barcode}").json()
    assert plate["plate_type"] == "96" and len(plate["wells"]) == 96 and plate["scored_wells"] == 96
    by_well = {w["well"]: w for w in plate["wells"]}
    for well, p in site.probabilities.items():
        assert by_well[well]["probability"] == pytest.approx(p)
        assert by_well[well]["model_version"] == "1"
        assert (by_well[well]["alpha"] == 0) == (p <= 0.4)
    assert alice.get("/v1/plates/NO-SUCH-PLATE").status_code == 404
    well = site.queued_wells[0]
    history = alice.get(f"/v1/plates/{site.barcode}/wells/{well}").json()
    assert {i["imaging_mode"] for i in history["images"]} == {"visible", "uv"}
    assert {s["model_name"] for s in history["image_scores"]} == {"axis-visible", "axis-uv"}
    assert history["user_scores"] and history["user_scores"][0]["colour"].startswith("#")
    uri = history["images"][0]["image_uri"]
    img = alice.get("/v1/images", params={"uri": uri})
    assert img.status_code == 200 and img.headers["content-type"] == "image/jpeg"
    assert img.content == site.store.get_bytes(uri)
    small = alice.get("/v1/images", params={"uri": uri, "max_side": 64})
    assert small.status_code == 200 and len(small.content) < len(img.content)
