"""The patch-map route: the champion's map of a stored image, per mode, with the score; errors say what to fix."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
from axis_inference.models import ModelHolder, ModelRef
from axis_inference.patchmaps import MapScorer, PatchMapRoutes
from axis_model import BaseSpec, LoraSpec, build_classifier
from axis_model.adapters import randomise_adapter
from fakes import InMemoryObjectStore
from PIL import Image

pytestmark = pytest.mark.unit


def _png(seed: int) -> bytes:
    arr = np.random.default_rng(seed).integers(0, 255, size=(96, 128), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def _routes() -> tuple[PatchMapRoutes, MapScorer, InMemoryObjectStore]:
    clf = build_classifier(BaseSpec.tiny(), LoraSpec())
    randomise_adapter(clf, "visible", seed=1)
    randomise_adapter(clf, "uv", seed=2)
    scorer = MapScorer(
        refs={"visible": ModelRef("axis-visible", "3", 0.4), "uv": ModelRef("axis-uv", "2", 0.5)}, classifier=clf
    )
    holder = ModelHolder()
    holder.scorer = scorer
    store = InMemoryObjectStore()
    store.put_bytes("s3://axis-images/a.png", _png(1))
    return PatchMapRoutes(holder=holder, store=store, max_bytes=1 << 20), scorer, store


def test_the_route_serves_each_modes_map_with_its_score() -> None:
    routes, scorer, store = _routes()
    bodies = {}
    for mode in ("visible", "uv"):
        status, ctype, body = asyncio.run(routes.patch_map({"uri": ["s3://axis-images/a.png"], "mode": [mode]}))
        assert (status, ctype) == (200, "application/json")
        bodies[mode] = json.loads(body)
    v = bodies["visible"]
    assert (v["model_name"], v["model_version"], v["threshold"]) == ("axis-visible", "3", 0.4)
    grid = np.array(v["contributions"])
    assert grid.shape == (v["rows"], v["cols"])
    assert grid.sum() == pytest.approx(v["patch_part"], abs=1e-9)
    expected = scorer.score([("visible", scorer.prepare("visible", store.get_bytes("s3://axis-images/a.png")))])[0]
    assert v["probability"] == pytest.approx(expected, abs=1e-5)
    assert bodies["uv"]["contributions"] != v["contributions"]


def test_bad_requests_get_a_reason() -> None:
    routes, _, _ = _routes()
    status, _, body = asyncio.run(routes.patch_map({"uri": ["/etc/passwd"], "mode": ["visible"]}))
    assert status == 400 and b"uri=s3://" in body
    status, _, body = asyncio.run(routes.patch_map({"uri": ["s3://axis-images/a.png"], "mode": ["ir"]}))
    assert status == 404 and b"no model for mode 'ir'" in body
    status, _, body = asyncio.run(routes.patch_map({"uri": ["s3://axis-images/missing.png"], "mode": ["uv"]}))
    assert status == 404 and b"cannot read" in body
    empty = PatchMapRoutes(holder=ModelHolder(), store=InMemoryObjectStore(), max_bytes=1)
    assert asyncio.run(empty.patch_map({"uri": ["s3://b/k.png"], "mode": ["uv"]}))[0] == 503
    assert asyncio.run(empty.health())[0] is False


async def test_the_server_guards_the_map_with_the_token_and_leaves_health_open() -> None:
    import httpx

    routes, _, _ = _routes()
    server = routes.server("127.0.0.1", 0, token="map-t0ken")
    port = await server.start()
    url = f"http://127.0.0.1:{port}"
    query = {"uri": "s3://axis-images/a.png", "mode": "visible"}
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            health = await client.get("/health")
            missing = await client.get("/v1/patch-map", params=query)
            wrong = await client.get("/v1/patch-map", params=query, headers={"Authorization": "Bearer nope"})
            right = await client.get("/v1/patch-map", params=query, headers={"Authorization": "Bearer map-t0ken"})
            bad = await client.get(
                "/v1/patch-map", params={"mode": "uv"}, headers={"Authorization": "Bearer map-t0ken"}
            )
            metrics = await client.get("/metrics", headers={"Authorization": "Bearer map-t0ken"})
    finally:
        await server.stop()
    assert health.status_code == 200 and health.json()["models"]["visible"] == "axis-visible:3"
    assert missing.status_code == 401 and "Bearer" in missing.text
    assert wrong.status_code == 403
    assert right.status_code == 200 and right.headers["content-type"].startswith("application/json")
    assert right.json()["uri"] == query["uri"] and right.json()["model_version"] == "3"
    assert bad.status_code == 400 and "uri=s3://" in bad.text
    assert metrics.status_code == 404  # the map server has no /metrics
