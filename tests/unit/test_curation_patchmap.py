"""GET /v1/patch-map of the curation service: a curator gets the map, other buckets and no server are refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from axis_curation.api_patchmap import PatchMapUnavailable
from axis_curation.app import create_app
from axis_curation.auth import Authenticator
from axis_curation.context import Services
from axis_curation.settings import CurationOptions
from fakes import InMemoryAccountStore, InMemoryObjectStore
from fastapi.testclient import TestClient

pytestmark = pytest.mark.unit

MAP = {"rows": 2, "cols": 2, "contributions": [[0.1, -0.2], [0.3, 0.0]], "patch_part": 0.2, "probability": 0.6}


class FakeMaps:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []
        self.down = False

    def patch_map(self, uri: str, mode: str) -> dict[str, Any]:
        if self.down:
            raise PatchMapUnavailable("the patch-map server is unreachable (ConnectError)")
        if uri.endswith("missing.png"):
            raise LookupError(f"cannot read {uri}")
        self.asked.append((uri, mode))
        return {"uri": uri, "mode": mode, **MAP}


def _client(maps: FakeMaps | None) -> TestClient:
    auth = Authenticator(InMemoryAccountStore(), bcrypt_rounds=4, session_ttl=timedelta(hours=1))
    auth.create_account("alice", "alice-password-1", "curator")
    services = Services(
        env="dev",
        options=CurationOptions(bootstrap_admin=False),
        repo=None,  # type: ignore[arg-type]
        store=InMemoryObjectStore(),
        authenticator=auth,
        exporter=None,  # type: ignore[arg-type]
        allowed_buckets=["axis-images"],
        patchmaps=maps,
    )
    client = TestClient(create_app(services, manage_lifecycle=False))
    _, token, _ = auth.login("alice", "alice-password-1")
    client.headers["Authorization"] = f"Bearer {token}"
    return client


def test_a_curator_gets_the_map_of_an_allowed_image() -> None:
    maps = FakeMaps()
    client = _client(maps)
    r = client.get("/v1/patch-map", params={"uri": "s3://axis-images/p/a.png", "mode": "uv"})
    assert r.status_code == 200 and r.json()["contributions"] == MAP["contributions"]
    assert maps.asked == [("s3://axis-images/p/a.png", "uv")]


def test_refusals_say_why() -> None:
    maps = FakeMaps()
    client = _client(maps)
    assert client.get("/v1/patch-map", params={"uri": "s3://axis-mlflow/x", "mode": "uv"}).status_code == 403
    assert client.get("/v1/patch-map", params={"uri": "s3://axis-images/a.png", "mode": "ir"}).status_code == 422
    missing = client.get("/v1/patch-map", params={"uri": "s3://axis-images/missing.png", "mode": "uv"})
    assert missing.status_code == 404
    maps.down = True
    down = client.get("/v1/patch-map", params={"uri": "s3://axis-images/a.png", "mode": "uv"})
    assert down.status_code == 503 and "unreachable" in down.text
    off = _client(None).get("/v1/patch-map", params={"uri": "s3://axis-images/a.png", "mode": "uv"})
    assert off.status_code == 404 and "AXIS_CURATION__PATCHMAP_URL" in off.text
    anon = TestClient(client.app).get("/v1/patch-map", params={"uri": "s3://axis-images/a.png", "mode": "uv"})
    assert anon.status_code == 401
    assert maps.asked == []
