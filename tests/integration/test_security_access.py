"""Access control of every HTTP endpoint (enumerated from the apps), and no secret in the logs."""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from axis_stack import StackInfo
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

PASSWORD = "security-password-1"
# login cannot need a login; logout without a session has nothing to revoke (204, no effect)
OPEN = {("GET", "/health"), ("POST", "/v1/login"), ("POST", "/v1/tokens"), ("POST", "/v1/logout")}
ANY_ACCOUNT = {("GET", "/v1/me")}  # every role may see who it is
ADMIN_ONLY = {("POST", "/v1/accounts"), ("POST", "/v1/datasets"), ("POST", "/v1/datasets/{name}/{version}/publish")}
PAGES = ("/curate", "/plates", "/plates/P1", "/datasets")


def routes_of(app: FastAPI) -> list[tuple[str, str]]:
    """Every (METHOD, path template) the app serves under its OpenAPI schema."""
    return sorted((m.upper(), p) for p, ops in app.openapi()["paths"].items() for m in ops)


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: {"well": "A1", "item_id": "1"}.get(m.group(1), "X1"), path)


@pytest.fixture(scope="module")
def curation(stack: StackInfo) -> Iterator[SimpleNamespace]:
    from axis_curation.app import create_app
    from axis_curation.context import build_services
    from axis_curation.settings import CurationOptions, CurationSettings
    from fastapi.testclient import TestClient

    settings = CurationSettings(
        _env_file=str(stack.env_file),  # type: ignore[call-arg]
        curation=CurationOptions(bootstrap_admin=False, bcrypt_rounds=4),
    )
    services = build_services(settings, with_broker=False)
    tag = uuid.uuid4().hex[:6]
    users = {role: f"sec-{role}-{tag}" for role in ("curator", "admin", "lims")}
    for role, name in users.items():
        services.authenticator.create_account(name, PASSWORD, role)
    app = create_app(services, manage_lifecycle=False)
    try:
        yield SimpleNamespace(app=app, users=users, client=lambda: TestClient(app, raise_server_exceptions=False))
    finally:
        for c in services.closers:
            c.close()


def token(client: TestClient, username: str) -> str:
    resp = client.post("/v1/tokens", json={"username": username, "password": PASSWORD})
    assert resp.status_code == 200, resp.text
    return str(resp.json()["access_token"])


def test_every_curation_endpoint_needs_a_login_except_health_and_login(curation: SimpleNamespace) -> None:
    client = curation.client()
    routes = routes_of(curation.app)
    assert len(routes) >= 15, routes  # the enumeration found the API
    for method, path in routes:
        if (method, path) in OPEN:
            continue
        resp = client.request(method, concrete(path), json={})
        assert resp.status_code == 401, f"{method} {path} without credentials: {resp.status_code}"
        assert "log" in resp.json()["detail"], "the 401 says how to log in"
        bogus = client.request(method, concrete(path), json={}, headers={"Authorization": "Bearer not-a-token"})
        assert bogus.status_code == 401, f"{method} {path} with a made-up token: {bogus.status_code}"
    for page in PAGES:
        resp = client.get(page, follow_redirects=False)
        assert resp.status_code == 303 and resp.headers["location"].startswith("/login"), page


def test_wrong_role_gets_403_on_every_curation_endpoint(curation: SimpleNamespace) -> None:
    client = curation.client()
    lims = {"Authorization": f"Bearer {token(client, curation.users['lims'])}"}
    curator = {"Authorization": f"Bearer {token(client, curation.users['curator'])}"}
    checked = 0
    for method, path in routes_of(curation.app):
        if (method, path) in OPEN | ANY_ACCOUNT:
            continue
        resp = client.request(method, concrete(path), json={}, headers=lims)
        assert resp.status_code == 403, f"{method} {path} as lims: {resp.status_code} {resp.text[:200]}"
        assert "role" in resp.json()["detail"]
        if (method, path) in ADMIN_ONLY:
            resp = client.request(method, concrete(path), json={}, headers=curator)
            assert resp.status_code == 403, f"{method} {path} as curator: {resp.status_code}"
        checked += 1
    assert checked >= 12


def test_lims_gateway_needs_its_key_on_every_endpoint_except_health() -> None:
    from axis_contracts import DEFAULT_SCHEME
    from axis_discrepancy.lims_gateway import GatewayDeps, create_app
    from fakes import FakePublisher
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    class Nothing:
        async def resolve(self, score: Any) -> None:
            return None

        async def stats(self, group_by: str) -> Any:
            return SimpleNamespace(as_dict=lambda: {})

    app = create_app(GatewayDeps(FakePublisher(), Nothing(), Nothing(), DEFAULT_SCHEME, SecretStr("the-real-key-0")))
    client = TestClient(app, raise_server_exceptions=False)
    routes = routes_of(app)
    assert ("POST", "/v1/user-scores") in routes
    for method, path in routes:
        if path == "/health":
            assert client.request(method, path).status_code == 200
            continue
        assert client.request(method, path, json={}).status_code == 401, f"{method} {path} without a key"
        for header in ({"X-API-Key": "a-curator-token"}, {"Authorization": "Bearer the-real-key-1"}):
            assert client.request(method, path, json={}, headers=header).status_code == 403, f"{method} {path}"


def test_passwords_and_tokens_never_reach_the_logs(
    curation: SimpleNamespace, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    client = curation.client()
    user = curation.users["curator"]
    with caplog.at_level(logging.DEBUG):
        login = client.post("/v1/login", json={"username": user, "password": PASSWORD})
        assert login.status_code == 200
        cookie = login.cookies.get("axis_session")
        bearer = token(client, user)
        assert client.get("/v1/me", headers={"Authorization": f"Bearer {bearer}"}).status_code == 200
        client.post("/v1/tokens", json={"username": user, "password": PASSWORD + "-wrong"})
        client.post("/v1/logout", headers={"Authorization": f"Bearer {bearer}"})
    out, err = capfd.readouterr()
    text = "\n".join(r.getMessage() for r in caplog.records) + out + err
    assert cookie and bearer
    for secret in (PASSWORD, cookie, bearer):
        assert secret not in text, "a password or token was logged"


def _inference_service(monkeypatch: pytest.MonkeyPatch, token: str | None) -> Any:
    """The inference service as its entry point wires it (settings from the environment), HTTP on a free port."""
    from axis_inference.service import InferenceService
    from axis_inference.settings import InferenceSettings
    from fakes import InMemoryObjectStore, InMemoryRegistry

    monkeypatch.setenv("AXIS_INFERENCE__HTTP_PORT", "0")
    if token is None:
        monkeypatch.delenv("AXIS_INFERENCE__METRICS_TOKEN", raising=False)
    else:
        monkeypatch.setenv("AXIS_INFERENCE__METRICS_TOKEN", token)
    settings = InferenceSettings(_env_file=None)  # type: ignore[call-arg]
    return InferenceService(settings, source=InMemoryRegistry(), store=InMemoryObjectStore())


async def test_inference_metrics_endpoint_needs_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    svc = _inference_service(monkeypatch, None)  # no token configured: /metrics stays closed
    port = await svc.http.start()
    try:
        async with httpx.AsyncClient() as client:
            resp = await client.get(f"http://127.0.0.1:{port}/metrics")
            guessed = await client.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer x"})
            health = await client.get(f"http://127.0.0.1:{port}/health")
    finally:
        await svc.http.stop()
    assert resp.status_code == 401 and "Bearer" in resp.text and "AXIS_INFERENCE__METRICS_TOKEN" in resp.text
    assert guessed.status_code == 403
    assert health.status_code == 503 and health.json()["status"] == "waiting_for_champion"  # open, no model yet

    svc = _inference_service(monkeypatch, "s3cret-token")
    port = await svc.http.start()
    try:
        async with httpx.AsyncClient() as client:
            wrong = await client.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer nope"})
            right = await client.get(
                f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer s3cret-token"}
            )
            as_json = await client.get(
                f"http://127.0.0.1:{port}/metrics?format=json", headers={"Authorization": "Bearer s3cret-token"}
            )
    finally:
        await svc.http.stop()
    assert wrong.status_code == 403 and right.status_code == 200
    assert "axis_inference_images_scored_total 0" in right.text
    assert as_json.json()["images_scored"] == 0 and "consumer" in as_json.json()
