"""Fuzz every curation API route on the real stack (as admin): no 5xx, and every rejection says why."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from fuzz_inputs import FUZZ, count, hostile_values, json_values, mutate, odd_text, raw_messages
from hypothesis import given, reject, settings
from hypothesis import strategies as st

if TYPE_CHECKING:
    from axis_stack import StackInfo
    from fastapi.testclient import TestClient

pytestmark = pytest.mark.integration

PASSWORD = "fuzz-password-123"
SKIP = {"/v1/logout"}  # would revoke the fuzzer's own token
BODIES: dict[str, dict[str, Any]] = {
    "/v1/login": {"username": "admin", "password": "x" * 12},
    "/v1/tokens": {"username": "admin", "password": "x" * 12},
    "/v1/accounts": {"username": "fuzz-user", "password": "y" * 12, "role": "curator"},
    "/v1/items/{item_id}/labels": {"label": "crystal", "comment": "fuzz"},
    "/v1/datasets": {"name": "fuzz", "purpose": "train", "plates": ["NO-SUCH-PLATE"]},
}
QUERY: dict[str, dict[str, Any]] = {
    "/v1/queue": {"limit": 5},
    "/v1/images": {"uri": "s3://axis-images/missing.png", "max_side": 64},
    "/v1/datasets": {"name": "fuzz"},
}


@pytest.fixture(scope="module")
def api(stack: StackInfo) -> Iterator[tuple[TestClient, list[tuple[str, str]]]]:
    from axis_curation.app import create_app
    from axis_curation.context import build_services
    from axis_curation.settings import CurationOptions, CurationSettings
    from fastapi.testclient import TestClient

    settings = CurationSettings(
        _env_file=str(stack.env_file),  # type: ignore[call-arg]
        curation=CurationOptions(bootstrap_admin=False, bcrypt_rounds=4),
    )
    services = build_services(settings, with_broker=False)
    admin = f"fuzz-admin-{uuid.uuid4().hex[:6]}"
    services.authenticator.create_account(admin, PASSWORD, "admin")
    app = create_app(services, manage_lifecycle=False)
    client = TestClient(app, raise_server_exceptions=False)
    token = client.post("/v1/tokens", json={"username": admin, "password": PASSWORD}).json()["access_token"]
    client.headers["Authorization"] = f"Bearer {token}"
    routes = [
        (method.upper(), path)
        for path, ops in app.openapi()["paths"].items()
        if path.startswith("/v1/") and path not in SKIP
        for method in sorted(ops)
    ]
    try:
        yield client, routes
    finally:
        for c in services.closers:
            c.close()


def says_why(resp: Any, what: str) -> None:
    assert resp.status_code < 500, f"{what}: {resp.status_code}: {resp.text[:300]}"
    if resp.status_code >= 400:
        body = resp.json()
        reason = body.get("message") or body.get("detail")
        text = reason if isinstance(reason, str) else json.dumps(reason)
        assert text and len(text.strip()) >= 8, f"{what}: {resp.status_code} without a reason: {resp.text[:300]}"


path_values = odd_text | st.integers().map(str) | st.sampled_from(["1", "A1", "Z99", "..", "%2e%2e", "x" * 5000])


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_every_curation_route_survives_hostile_input(api: tuple[TestClient, list[tuple[str, str]]], data: Any) -> None:
    client, routes = api
    method, path = data.draw(st.sampled_from(routes), label="route")
    count(f"http curation: {method} {path}")
    url = re.sub(r"\{(\w+)\}", lambda m: _quote(data.draw(path_values, label=m.group(1))), path)
    query = mutate(QUERY[path], data) if path in QUERY and data.draw(st.booleans()) else QUERY.get(path, {})
    query = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in query.items()}
    kwargs: dict[str, Any] = {"params": query}
    if method in ("POST", "PUT", "PATCH"):
        base = BODIES.get(path, {})
        if data.draw(st.booleans(), label="raw or mutated"):
            kwargs["content"] = data.draw(raw_messages(json.dumps(base).encode()), label="raw body")
        elif base:
            kwargs["content"] = json.dumps(mutate(base, data), default=str).encode()
        else:
            kwargs["content"] = json.dumps(data.draw(json_values | hostile_values), default=str).encode()
        kwargs["headers"] = {"content-type": "application/json"}
    try:
        resp = client.request(method, url, **kwargs)
    except Exception as exc:
        # the HTTP client itself refuses some URLs (e.g. a query over its length limit): such a request can
        # never reach the server, so there is nothing to check
        if type(exc).__name__ == "InvalidURL":
            reject()
        raise
    says_why(resp, f"{method} {url[:80]}")


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="") or "%20"
