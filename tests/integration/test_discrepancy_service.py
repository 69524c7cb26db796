"""Discrepancy service + LIMS gateway on the embedded stack: joins, idempotency, history, dead letters, stats."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import httpx
import psycopg
import pytest
from axis_adapters.db import async_pool
from axis_adapters.kafka import make_broker
from axis_contracts import (
    DEFAULT_SCHEME,
    DeadLetter,
    ImagingMode,
    UserScored,
    topics,
)
from axis_core.discrepancy import ml_label
from axis_discrepancy.app import RunningService
from axis_discrepancy.lims_gateway import GatewayDeps, PgGatewayStore, create_app
from axis_discrepancy.settings import DiscrepancySettings

# fixtures (settings, service, producer, send) and the 200 cases live in the harness
from discrepancy_harness import (  # noqa: F401
    CASES,
    KEY,
    PREFIX,
    RUN,
    T0,
    Case,
    N,
    found_events,
    is_ours,
    producer,
    query,
    read_topic,
    send,
    send_raw,
    service,
    settings,
    snapshot,
    wait_consumed,
)
from kafka_probe import wait_until

pytestmark = pytest.mark.integration


async def test_shuffled_scores_give_exactly_the_expected_comparisons(
    service: RunningService, send: Callable[..., Awaitable[None]], settings: DiscrepancySettings
) -> None:
    rng = random.Random(5)
    user_first, ml_first = CASES[: N // 2], CASES[N // 2 :]
    phase1: list[Any] = [c.user for c in user_first] + [c.ml for c in ml_first]
    phase2: list[Any] = [c.ml for c in user_first] + [c.user for c in ml_first]
    rng.shuffle(phase1)
    rng.shuffle(phase2)
    await send(phase1)
    await wait_consumed(settings)
    assert query(settings, "SELECT count(*) FROM comparisons WHERE inspection_id LIKE %s", PREFIX + "-%") == [(0,)]
    await send(phase2)
    await wait_until(
        lambda: (
            query(settings, "SELECT count(*) FROM comparisons WHERE inspection_id LIKE %s", PREFIX + "-%")[0][0] == N
        ),
        "200 comparisons",
    )
    rows = query(
        settings,
        "SELECT inspection_id, agrees, kind, ml_probability, ml_label, threshold, human_label, human_class, user_id, "
        "model_version FROM comparisons WHERE inspection_id LIKE %s",
        PREFIX + "-%",
    )
    got = {r[0]: r[1:] for r in rows}
    for c in CASES:
        agrees, kind, p, label, thr, human_label, human_class, user, version = got[c.iid]
        assert (agrees, kind) == (c.kind is None, c.kind.value if c.kind else None), c.iid
        assert (p, label, thr, version) == (c.p, ml_label(c.p, c.threshold), c.threshold, "1")
        assert (human_label, human_class, user) == (DEFAULT_SCHEME.to_label(c.truth), c.truth, c.user.user_id)
    expected = {c.iid: c.kind for c in CASES if c.kind is not None}
    assert 20 < len(expected) < 180  # both agreements and disagreements are exercised
    items = query(settings, "SELECT id, inspection_id, kind, status FROM discrepancies WHERE inspection_id LIKE %s",
                  PREFIX + "-%")  # fmt: skip
    assert {(r[1], r[2]) for r in items} == {(i, k.value) for i, k in expected.items()}
    assert all(r[3] == "open" for r in items) and len(items) == len(expected)
    await wait_until(
        lambda: (
            query(
                settings,
                "SELECT count(*) FROM discrepancies WHERE inspection_id LIKE %s AND published_at IS NULL",
                PREFIX + "-%",
            )[0][0]
            == 0
        ),  # fmt: skip
        "outbox flushed",
    )
    found = found_events(await read_topic(settings, topics.DISCREPANCY_FOUND, is_ours))
    assert sorted((f.inspection_id, f.kind, f.discrepancy_id) for f in found) == sorted(
        (r[1], r[2], r[0]) for r in items
    )

    # sending every event twice changes nothing
    before = snapshot(settings)
    await send([c.ml for c in CASES] + [c.user for c in CASES])
    await wait_consumed(settings)
    assert snapshot(settings) == before
    again = found_events(await read_topic(settings, topics.DISCREPANCY_FOUND, is_ours))
    assert len(again) == len(found)


async def test_user_changes_score_and_model_rescores(
    service: RunningService, send: Callable[..., Awaitable[None]], settings: DiscrepancySettings
) -> None:
    await wait_until(
        lambda: (
            query(settings, "SELECT count(*) FROM comparisons WHERE inspection_id LIKE %s", PREFIX + "-%")[0][0] == N
        ),
        "the first test's comparisons",
    )
    case = next(c for c in CASES if c.kind is None and DEFAULT_SCHEME.to_label(c.truth) == "crystal")
    # the user changes their mind: the drop is clear after all (a disagreement now)
    change = UserScored(
        producer="it", inspection_id=case.iid, user_id="u9", score="clear", scored_at=T0 + timedelta(hours=3)
    )
    await send([change])
    await wait_until(lambda: query(settings, "SELECT revision FROM comparisons WHERE inspection_id = %s", case.iid)
                     == [(2,)], "revision 2")  # fmt: skip
    [(agrees, kind, human_class, user)] = query(
        settings, "SELECT agrees, kind, human_class, user_id FROM comparisons WHERE inspection_id = %s", case.iid
    )
    assert (agrees, kind, human_class, user) == (False, "ml_crystal_human_other", "clear", "u9")
    history = query(settings, "SELECT revision, agrees, human_class FROM comparison_history WHERE inspection_id = %s "
                    "ORDER BY revision", case.iid)  # fmt: skip
    assert history == [(1, True, case.truth), (2, False, "clear")]
    assert len(query(settings, "SELECT 1 FROM user_scores WHERE inspection_id = %s", case.iid)) == 2
    # an older score arriving late changes nothing (latest wins by scored_at)
    late = UserScored(producer="it", inspection_id=case.iid, user_id="u8", score="single_crystals",
                      scored_at=T0 + timedelta(hours=2, minutes=30))  # fmt: skip
    # a newer model version re-scores: below its threshold, so ML now agrees with "clear"
    visible = case.ml.scores[ImagingMode.VISIBLE].model_copy(update={"probability": 0.05, "model_version": "2"})
    v2 = case.ml.model_copy(
        update={"event_id": uuid.uuid4(), "model_version": "2", "fused_probability": 0.05, "label": "other",
                "threshold": 0.5, "scored_at": T0 + timedelta(hours=4), "scores": {ImagingMode.VISIBLE: visible}}
    )  # fmt: skip
    await send([late, v2])
    await wait_until(lambda: query(settings, "SELECT revision FROM comparisons WHERE inspection_id = %s", case.iid)
                     == [(3,)], "revision 3")  # fmt: skip
    await wait_consumed(settings)
    [(agrees, version, human_class, revision)] = query(
        settings, "SELECT agrees, model_version, human_class, revision FROM comparisons WHERE inspection_id = %s",
        case.iid,
    )  # fmt: skip
    assert (agrees, version, human_class, revision) == (True, "2", "clear", 3)
    items = query(settings, "SELECT status FROM discrepancies WHERE inspection_id = %s", case.iid)
    assert items == [("superseded",)]  # the open item of revision 2 no longer stands


async def test_bad_scores_by_kafka_are_dead_lettered_with_their_reason(
    service: RunningService, producer: Any, settings: DiscrepancySettings
) -> None:
    opts = settings.discrepancy
    case = CASES[0]
    base_user = {"producer": "it", "user_id": "u1", "scored_at": (T0 + timedelta(hours=5)).isoformat()}
    bad = {
        "class": {**base_user, "event_id": str(uuid.uuid4()), "inspection_id": case.iid, "score": "shiny"},
        "inspection": {**base_user, "event_id": str(uuid.uuid4()), "inspection_id": f"{PREFIX}-nope", "score": "clear"},
        "naive": {
            **base_user,
            "event_id": str(uuid.uuid4()),
            "inspection_id": case.iid,
            "score": "clear",
            "scored_at": "2026-02-02T13:00:00",
        },  # fmt: skip
    }
    ml = json.loads(case.ml.to_bytes())
    ml.update(event_id=str(uuid.uuid4()), fused_probability=1.7)
    ml["scores"]["visible"]["probability"] = 1.7
    for payload in bad.values():
        for _ in range(2):  # twice: still one dead letter each
            await send_raw(producer, opts.user_scored_topic, payload)
    for _ in range(2):
        await send_raw(producer, opts.crystal_scored_topic, ml)
    await wait_consumed(settings)
    ids = {p["event_id"] for p in bad.values()} | {ml["event_id"]}
    letters = [
        DeadLetter.model_validate_json(v)
        for v in await read_topic(settings, topics.DEAD_LETTER, lambda raw: any(i.encode() in raw for i in ids))
    ]
    by_id = {json.loads(dl.raw_value)["event_id"]: dl for dl in letters}
    assert len(letters) == 4 and set(by_id) == ids
    assert "allowed classes: clear, denatured" in by_id[bad["class"]["event_id"]].error
    assert f"unknown inspection '{PREFIX}-nope'" in by_id[bad["inspection"]["event_id"]].error
    assert "scored_at" in by_id[bad["naive"]["event_id"]].error
    assert "fused_probability 1.7 is outside [0, 1]" in by_id[ml["event_id"]].error
    assert by_id[ml["event_id"]].source_topic == opts.crystal_scored_topic
    assert all(dl.consumer == opts.group_id for dl in letters)
    [(revision,)] = query(settings, "SELECT revision FROM comparisons WHERE inspection_id = %s", case.iid)
    assert revision == 1  # nothing of the bad events reached the comparison


async def test_http_gateway_validates_publishes_and_reports_stats(
    service: RunningService, producer: Any, settings: DiscrepancySettings
) -> None:
    pool = await async_pool(settings.postgres, max_size=2)
    store = PgGatewayStore(pool)
    lims = settings.lims
    deps = GatewayDeps(producer, store, store, lims.score_scheme, lims.api_key, settings.discrepancy.user_scored_topic)
    case = CASES[1]
    auth = {"Authorization": f"Bearer {KEY}"}
    ok = {"inspection_id": case.iid, "user_id": "web", "score": "precipitate", "scored_at": "2026-02-02T18:00:00Z"}
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(deps)), base_url="http://t") as http:
            assert (await http.post("/v1/user-scores", json=ok)).status_code == 401
            assert (await http.post("/v1/user-scores", json=ok, headers={"X-API-Key": "wrong"})).status_code == 403
            r = await http.post("/v1/user-scores", json=ok | {"score": "gold"}, headers=auth)
            assert r.status_code == 422 and "allowed classes: clear, denatured" in r.json()["detail"]
            r = await http.post("/v1/user-scores", json=ok | {"inspection_id": f"{PREFIX}-x"}, headers=auth)
            assert r.status_code == 404 and f"unknown inspection '{PREFIX}-x'" in r.json()["detail"]
            r = await http.post("/v1/user-scores", json=ok | {"scored_at": "2026-02-02T18:00:00"}, headers=auth)
            assert r.status_code == 422 and "scored_at" in r.json()["detail"]
            r = await http.post("/v1/user-scores", json=ok | {"probability": 1.7}, headers=auth)
            assert r.status_code == 422 and "probability" in r.json()["detail"]
            ref = {"plate_barcode": case.plate, "well": case.well, "drop": 1, "user_id": "web", "score": "precipitate",
                   "scored_at": "2026-02-02T18:00:00Z"}  # fmt: skip
            r = await http.post("/v1/user-scores", json=ref, headers=auth)
            assert r.status_code == 202, r.text
            assert r.json()["inspection_id"] == case.iid  # the latest inspection of that drop imaged before
            await wait_until(lambda: query(settings, "SELECT human_class, user_id FROM comparisons WHERE "
                                           "inspection_id = %s", case.iid) == [("precipitate", "web")],
                             "the web score in the comparison")  # fmt: skip
            r = await http.get("/v1/stats", params={"by": "plate"}, headers=auth)
            assert r.status_code == 200
            rows = {row["group"]: row for row in r.json()["rows"]}
            [(n, agree, k1, k2)] = query(
                settings, "SELECT count(*), count(*) FILTER (WHERE agrees), count(*) FILTER (WHERE kind = "
                "'ml_crystal_human_other'), count(*) FILTER (WHERE kind = 'ml_other_human_crystal') "
                "FROM comparisons WHERE plate_barcode = %s", case.plate)  # fmt: skip
            mine = rows[case.plate]
            assert (mine["comparisons"], mine["agreements"]) == (n, agree) and n >= 96
            assert (mine["ml_crystal_human_other"], mine["ml_other_human_crystal"]) == (k1, k2)
            assert mine["agreement_rate"] == pytest.approx(agree / n)
            for by in ("user", "model_version", "week"):
                r = await http.get("/v1/stats", params={"by": by}, headers=auth)
                assert r.status_code == 200 and r.json()["total"]["comparisons"] >= N
            weeks = (await http.get("/v1/stats", params={"by": "week"}, headers=auth)).json()["rows"]
            assert "2026-W06" in {w["group"] for w in weeks}
    finally:
        await pool.close()


def extra_case(i: int, settings: DiscrepancySettings) -> Case:
    """A fresh inspection (not among the 200); its ML score travels with the user score."""
    return Case(i, random.Random(i))


async def test_a_transient_database_error_redelivers_the_batch(
    service: RunningService,
    send: Callable[..., Awaitable[None]],
    settings: DiscrepancySettings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    case = extra_case(1001, settings)
    real = service.service._process
    calls: list[int] = []

    async def flaky(records: Any) -> None:
        calls.append(len(records))
        if len(calls) == 1:
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        await real(records)

    monkeypatch.setattr(service.service, "_process", flaky)
    await send([case.ml, case.user])
    await wait_until(
        lambda: (
            query(settings, "SELECT agrees FROM comparisons WHERE inspection_id = %s", case.iid)
            == [(case.kind is None,)]
        ),
        "the comparison after redelivery",
    )
    assert len(calls) >= 2  # the failed batch came back
    letters = await read_topic(settings, topics.DEAD_LETTER, lambda raw: case.iid.encode() in raw)
    assert letters == []  # a transient error is not the event's fault


async def test_lims_simulator_closes_the_loop(
    service: RunningService, producer: Any, send: Callable[..., Awaitable[None]], settings: DiscrepancySettings
) -> None:
    from axis_simulators.lims import LimsSimSettings, LimsSimulator, register

    cases = [extra_case(2000 + i, settings) for i in range(30)]
    truth = {c.iid: ("microcrystals" if i % 2 else "precipitate") for i, c in enumerate(cases)}
    opts = settings.discrepancy
    sim_settings = LimsSimSettings(  # type: ignore[call-arg]
        _env_file=None,
        kafka=settings.kafka,
        lims_sim={
            "group_id": f"lims-sim-it-{RUN}",
            "crystal_scored_topic": opts.crystal_scored_topic,
            "user_scored_topic": opts.user_scored_topic,
        },
    )
    broker = make_broker(settings.kafka)
    sim = LimsSimulator(truth=truth, publisher=broker, error_rate=0.3, seed=4, topic=opts.user_scored_topic)
    register(broker, sim, sim_settings)
    await broker.start()
    try:
        await send([c.ml for c in cases])
        await wait_until(
            lambda: (
                query(
                    settings, "SELECT count(*) FROM comparisons WHERE inspection_id = ANY(%s)", [c.iid for c in cases]
                )[0][0]
                == len(cases)
            ),  # fmt: skip
            "comparisons of the simulated user scores",
        )
    finally:
        await broker.stop()
    got = dict(query(settings, "SELECT inspection_id, human_class FROM comparisons WHERE inspection_id = ANY(%s)",
                     [c.iid for c in cases]))  # fmt: skip
    assert got == {iid: sim.decide(iid) for iid in truth}
    assert any(got[i] != truth[i] for i in truth)  # the simulated scientist erred somewhere (30 % error rate)
