"""Fuzz the LIMS gateway's HTTP endpoints: no 5xx, and every rejection says why."""

from __future__ import annotations

import json
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from axis_contracts import DEFAULT_SCHEME, UserScored, topics
from axis_discrepancy.lims_gateway import GatewayDeps, create_app
from fakes import FakePublisher
from fastapi.testclient import TestClient
from fuzz_inputs import FUZZ, FUZZ_SMALL, count, mutate, odd_text, raw_messages
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

pytestmark = pytest.mark.unit

KEY = "lims-fuzz-key-0123456789"


class FakeLookup:
    """Inspection i1 (plate P1) exists; nothing else does."""

    async def resolve(self, score: UserScored) -> str | None:
        if score.inspection_id is not None:
            return "i1" if score.inspection_id == "i1" else None
        return "i1" if score.plate_barcode == "P1" else None

    async def stats(self, group_by: str) -> Any:
        return SimpleNamespace(as_dict=lambda: {"group_by": group_by, "rows": []})


@pytest.fixture(scope="module")
def gateway() -> tuple[TestClient, FakePublisher]:
    pub = FakePublisher()
    lookup = FakeLookup()
    deps = GatewayDeps(pub, lookup, lookup, DEFAULT_SCHEME, SecretStr(KEY))
    return TestClient(create_app(deps), raise_server_exceptions=False), pub


def valid_body() -> dict[str, Any]:
    return {"inspection_id": "i1", "user_id": "jdoe", "score": "single_crystals", "scored_at": "2026-01-01T10:00:00Z"}


def says_why(resp: Any) -> str:
    """The rejection's reason; fails on a 5xx or on a rejection without one."""
    assert resp.status_code < 500, f"{resp.status_code}: {resp.text[:300]}"
    if resp.status_code < 400:
        return ""
    detail = resp.json().get("detail")
    text = detail if isinstance(detail, str) else json.dumps(detail)
    assert text and len(text.strip()) >= 8, f"{resp.status_code} without a reason: {resp.text[:300]}"
    return text


@FUZZ
@given(data=st.data())
def test_user_scores_endpoint_never_fails_and_explains(gateway: tuple[TestClient, FakePublisher], data: Any) -> None:
    count("http lims: POST /v1/user-scores")
    client, pub = gateway
    before = len(pub.on(topics.USER_SCORED))
    headers = {"X-API-Key": KEY, "content-type": "application/json"}
    if data.draw(st.booleans(), label="raw or mutated"):
        body = data.draw(raw_messages(json.dumps(valid_body()).encode()), label="raw")
    else:
        body = json.dumps(mutate(valid_body(), data), default=str).encode()
    resp = client.post("/v1/user-scores", content=body, headers=headers)
    says_why(resp)
    published = len(pub.on(topics.USER_SCORED)) - before
    assert published == (1 if resp.status_code == 202 else 0), "only an accepted score is published"


@FUZZ_SMALL
@given(
    header=st.sampled_from(["Authorization", "X-API-Key", "authorization"]),
    value=odd_text.filter(lambda v: v.isascii() and "\n" not in v and "\r" not in v) | st.just("Bearer " + KEY[:-1]),
)
def test_bad_credentials_get_401_or_403_with_a_reason(
    gateway: tuple[TestClient, FakePublisher], header: str, value: str
) -> None:
    count("http lims: credentials")
    client, _ = gateway
    resp = client.post("/v1/user-scores", json=valid_body(), headers={header: value})
    assert resp.status_code in (401, 403), resp.status_code
    says_why(resp)


@FUZZ_SMALL
@given(by=odd_text | st.sampled_from(["plate", "user", "model_version", "week"]))
def test_stats_grouping_is_validated(gateway: tuple[TestClient, FakePublisher], by: str) -> None:
    count("http lims: GET /v1/stats")
    client, _ = gateway
    resp = client.get("/v1/stats", params={"by": by}, headers={"X-API-Key": KEY})
    assert resp.status_code in (200, 422)
    says_why(resp)


def test_naive_timestamp_is_rejected_naming_the_field(gateway: tuple[TestClient, FakePublisher]) -> None:
    count("http lims: naive timestamp")
    client, _ = gateway
    body = {**valid_body(), "scored_at": datetime(2026, 1, 1).isoformat()}
    resp = client.post("/v1/user-scores", json=body, headers={"X-API-Key": KEY})
    assert resp.status_code == 422 and "scored_at" in says_why(resp)
