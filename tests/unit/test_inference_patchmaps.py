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
    assert asyncio.run(empty.health({}))[0] == 503
