"""LIMS HTTP gateway with in-memory fakes: authentication, validation against the scheme, publishing, settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest
from axis_contracts import DEFAULT_SCHEME, ScoreScheme, UserScored, topics
from axis_core.discrepancy import latest_inspection_before
from axis_core.stats import GroupCounts, StatsReport, summarise
from axis_discrepancy.lims_gateway import GatewayDeps, create_app
from axis_discrepancy.settings import DiscrepancySettings
from fakes import FakePublisher
from pydantic import SecretStr

pytestmark = pytest.mark.unit

KEY = "lims-test-key-123"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class FakeInspections:
    """Known inspections, and images per drop for references by experiment + time."""

    def __init__(self) -> None:
        self.known = {"insp-1", "insp-2"}
        self.drops = {("PL1", "B3", 1): [("insp-1", T0), ("insp-2", datetime(2026, 3, 5, tzinfo=UTC))]}

    async def resolve(self, score: UserScored) -> str | None:
        if score.inspection_id is not None:
            return score.inspection_id if score.inspection_id in self.known else None
        cands = self.drops.get((score.plate_barcode or "", score.well or "", score.drop or 1), [])
        return latest_inspection_before(cands, score.scored_at)


class FakeStats:
    async def stats(self, group_by: str) -> StatsReport:
        return summarise("plate", [GroupCounts("PL1", 4, 3, 1, 0)])


@pytest.fixture
def publisher() -> FakePublisher:
    return FakePublisher()


@pytest.fixture
async def client(publisher: FakePublisher) -> AsyncIterator[httpx.AsyncClient]:
    deps = GatewayDeps(publisher, FakeInspections(), FakeStats(), DEFAULT_SCHEME, SecretStr(KEY))
    transport = httpx.ASGITransport(app=create_app(deps))
    async with httpx.AsyncClient(transport=transport, base_url="http://lims.test") as c:
        yield c


def body(**over: object) -> dict[str, object]:
    return {
        "inspection_id": "insp-1",
        "user_id": "ann",
        "score": "single_crystals",
        "scored_at": "2026-03-02T10:00Z",
    } | over


AUTH = {"Authorization": f"Bearer {KEY}"}


async def test_valid_score_is_published_as_user_scored(client: httpx.AsyncClient, publisher: FakePublisher) -> None:
    r = await client.post("/v1/user-scores", json=body(score="Single Crystals"), headers=AUTH)
    assert r.status_code == 202, r.text
    assert r.json()["label"] == "crystal" and r.json()["score"] == "single_crystals"
    [raw] = publisher.on(topics.USER_SCORED)
    ev = UserScored.model_validate_json(raw)
    assert (ev.inspection_id, ev.score, ev.user_id, str(ev.event_id)) == (
        "insp-1",
        "single_crystals",
        "ann",
        r.json()["event_id"],
    )


async def test_x_api_key_header_works_and_health_is_open(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health")).status_code == 200
    r = await client.post("/v1/user-scores", json=body(), headers={"X-API-Key": KEY})
    assert r.status_code == 202


async def test_missing_key_is_401_wrong_key_is_403(client: httpx.AsyncClient, publisher: FakePublisher) -> None:
    r = await client.post("/v1/user-scores", json=body())
    assert r.status_code == 401 and "API key required" in r.json()["detail"]
    r = await client.post("/v1/user-scores", json=body(), headers={"Authorization": "Bearer nope"})
    assert r.status_code == 403
    assert (await client.get("/v1/stats?by=plate")).status_code == 401
    assert publisher.published == []


async def test_unknown_class_names_the_allowed_classes(client: httpx.AsyncClient, publisher: FakePublisher) -> None:
    r = await client.post("/v1/user-scores", json=body(score="crystalline"), headers=AUTH)
    assert r.status_code == 422
    assert "unknown score class 'crystalline'" in r.json()["detail"]
    assert (
        "clear, denatured, precipitate, phase_separation, microcrystals, single_crystals, interesting"
        in r.json()["detail"]
    )
    assert publisher.published == []


async def test_naive_timestamp_names_scored_at(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/user-scores", json=body(scored_at="2026-03-02T10:00:00"), headers=AUTH)
    assert r.status_code == 422 and "scored_at" in r.json()["detail"] and "timezone" in r.json()["detail"]


async def test_unknown_inspection_is_404_with_a_hint(client: httpx.AsyncClient, publisher: FakePublisher) -> None:
    r = await client.post("/v1/user-scores", json=body(inspection_id="nope"), headers=AUTH)
    assert r.status_code == 404 and "unknown inspection 'nope'" in r.json()["detail"]
    assert publisher.published == []


async def test_probability_is_not_a_user_score_field(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/user-scores", json=body(probability=1.7), headers=AUTH)
    assert r.status_code == 422 and "probability" in r.json()["detail"]


async def test_reference_by_drop_and_time_resolves_to_latest_inspection_before(
    client: httpx.AsyncClient, publisher: FakePublisher
) -> None:
    ref = {"plate_barcode": "PL1", "well": "b3", "drop": 1, "user_id": "bob", "score": "clear"}
    r = await client.post("/v1/user-scores", json=ref | {"scored_at": "2026-03-04T12:00:00+02:00"}, headers=AUTH)
    assert r.status_code == 202 and r.json()["inspection_id"] == "insp-1"
    r = await client.post("/v1/user-scores", json=ref | {"scored_at": "2026-03-06T00:00:00Z"}, headers=AUTH)
    assert r.json()["inspection_id"] == "insp-2"
    r = await client.post("/v1/user-scores", json=ref | {"scored_at": "2026-01-01T00:00:00Z"}, headers=AUTH)
    assert r.status_code == 404 and "PL1:B3:1" in r.json()["detail"]
    r = await client.post("/v1/user-scores", json=ref | {"well": "Z99", "scored_at": "2026-03-04T12:00Z"}, headers=AUTH)
    assert r.status_code == 422 and "well" in r.json()["detail"]


async def test_client_event_id_makes_retries_idempotent(client: httpx.AsyncClient, publisher: FakePublisher) -> None:
    eid = "2b1f7c8e-4a61-4c9b-9a0e-6c1d2f3e4a5b"
    for _ in range(2):
        assert (await client.post("/v1/user-scores", json=body(event_id=eid), headers=AUTH)).status_code == 202
    assert {UserScored.model_validate_json(m).event_id for m in publisher.on(topics.USER_SCORED)} == {
        UserScored.model_validate_json(publisher.on(topics.USER_SCORED)[0]).event_id
    }
    assert str(UserScored.model_validate_json(publisher.on(topics.USER_SCORED)[0]).event_id) == eid


async def test_stats_endpoint(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/stats", params={"by": "plate"}, headers=AUTH)
    assert r.status_code == 200
    assert r.json()["rows"][0] == {
        "group": "PL1",
        "comparisons": 4,
        "agreements": 3,
        "disagreements": 1,
        "agreement_rate": 0.75,
        "ml_crystal_human_other": 1,
        "ml_other_human_crystal": 0,
    }
    r = await client.get("/v1/stats", params={"by": "colour"}, headers=AUTH)
    assert r.status_code == 422 and "plate, user, model_version, week" in r.json()["detail"]


def test_scheme_and_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXIS_LIMS__SCORE_SCHEME", '{"empty": "other", "xtal": "crystal"}')
    monkeypatch.setenv("AXIS_LIMS__API_KEY", "s3cret-key")
    s = DiscrepancySettings()
    assert s.lims.score_scheme.allowed == ["empty", "xtal"] and s.lims.score_scheme.to_label("xtal") == "crystal"
    assert s.lims.api_key.get_secret_value() == "s3cret-key"
    assert "s3cret" not in repr(s)
    monkeypatch.setenv("AXIS_LIMS__SCORE_SCHEME", '{"name": "f", "classes": {"a": "crystal", "b": "other"}}')
    assert DiscrepancySettings().lims.score_scheme == ScoreScheme(name="f", classes={"a": "crystal", "b": "other"})


def test_refuses_default_lims_key_outside_dev(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXIS_ENV", "production")
    monkeypatch.setenv("AXIS_POSTGRES__PASSWORD", "a-real-password")
    monkeypatch.setenv("AXIS_S3__SECRET_KEY", "a-real-secret")
    with pytest.raises(ValueError, match="default password; set a real secret in: AXIS_LIMS__API_KEY"):
        DiscrepancySettings()
    monkeypatch.setenv("AXIS_LIMS__API_KEY", "a-real-key")
    assert DiscrepancySettings().env == "production"
