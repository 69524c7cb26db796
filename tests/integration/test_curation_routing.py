"""Agreements that are likely wrong reach the curator queue within the budget, ordered by expected value.

The discrepancy service runs on the embedded stack's PostgreSQL (batches handed to it directly, a fake publisher);
the queue is read through the curation service's repository and the stats through the LIMS gateway's store.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from axis_adapters.db import async_pool, sync_pool
from axis_adapters.kafka import RawRecord
from axis_contracts import (
    DEFAULT_SCHEME,
    ComparisonRecorded,
    CrystalScored,
    DiscrepancyFound,
    ModeScore,
    UserScored,
    topics,
)
from axis_core.discrepancy import ml_label
from axis_core.routing import RoutingPolicy
from axis_curation import read_model
from axis_curation.curation_repo import CurationRepo
from axis_curation.settings import CurationSettings
from axis_discrepancy.lims_gateway import PgGatewayStore
from axis_discrepancy.service import DiscrepancyService
from discrepancy_harness import discrepancy_settings
from fakes import FakePublisher

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
T0 = datetime(2026, 3, 3, 8, 0, tzinfo=UTC)
BAD, GOOD, NEW = f"bad-{RUN}", f"good-{RUN}", f"new-{RUN}"


def crystal_scored(iid: str, modes: dict[str, float], threshold: float = 0.5) -> CrystalScored:
    scores = {
        m: ModeScore(
            probability=p,
            threshold=threshold,
            model_name="axis",
            model_version="1",
            image_uri=f"s3://axis-images/{iid}-{m}.png",
            image_event_id=uuid.uuid4(),
        )
        for m, p in modes.items()
    }
    fused = max(modes.values())
    return CrystalScored(
        producer="it",
        plate_barcode=f"RT{RUN}",
        well="A1",
        inspection_id=iid,
        imaged_at=T0,
        scores=scores,  # type: ignore[arg-type]
        fused_probability=fused,
        label=ml_label(fused, threshold),
        threshold=threshold,
        model_name="axis",
        model_version="1",
        scored_at=T0 + timedelta(minutes=1),
    )


def user_scored(iid: str, user: str, score: str) -> UserScored:
    return UserScored(producer="it", inspection_id=iid, user_id=user, score=score, scored_at=T0 + timedelta(hours=1))


def record(ev: CrystalScored | UserScored, n: int) -> RawRecord:
    topic = topics.CRYSTAL_SCORED if isinstance(ev, CrystalScored) else topics.USER_SCORED
    return RawRecord(topic=topic, partition=0, offset=n, key=None, value=ev.model_dump_json().encode())


def seed_history(conninfo: str, user: str, curated: int, overturned: int) -> None:
    """Resolved queue items of ``user``: ``overturned`` of them with the curators' label against the user's."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for i in range(curated):
            resolved = "crystal" if i < overturned else "other"
            conn.execute(
                "INSERT INTO discrepancies (inspection_id, plate_barcode, well, drop_no, kind, ml_probability, "
                "ml_label, model_name, model_version, human_label, human_class, user_id, ml_event_id, user_event_id, "
                "status, resolved_label) VALUES (%s, %s, 'B1', 1, 'ml_crystal_human_other', 0.9, 'crystal', 'axis', "
                "'1', 'other', 'clear', %s, %s, %s, 'resolved', %s)",
                (f"hist-{RUN}-{user}-{i}", f"RH{RUN}", user, uuid.uuid4(), uuid.uuid4(), resolved),
            )


def routed_today(conninfo: str) -> int:
    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FROM discrepancies WHERE reason <> 'disagreement' "
            "AND created_at >= date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"
        ).fetchone()
    return int(row[0]) if row else 0


async def test_likely_wrong_agreements_are_queued_within_budget_and_ordered_by_value(stack: Any) -> None:
    settings = discrepancy_settings(stack, f"rt-{RUN}", "k")
    conninfo = settings.postgres.conninfo()
    seed_history(conninfo, BAD, curated=10, overturned=8)  # error rate (8 + 1) / (10 + 10) = 0.45
    seed_history(conninfo, GOOD, curated=10, overturned=0)  # error rate 1 / 20 = 0.05
    budget = routed_today(conninfo) + 4  # the day's budget is shared by the whole database
    cases: dict[str, tuple[dict[str, float], str, str]] = {
        "disagree": ({"visible": 0.9}, NEW, "clear"),
        "bad_user": ({"visible": 0.8}, BAD, "single_crystals"),  # value 0.17
        "near": ({"visible": 0.52}, NEW, "single_crystals"),  # value 0.093
        "near_other": ({"visible": 0.45}, NEW, "clear"),  # value 0.083
        "modes": ({"visible": 0.95, "uv": 0.1}, NEW, "microcrystals"),  # value 0.056
        "good_user": ({"visible": 0.8}, GOOD, "single_crystals"),  # value 0.013: below min_value
        "sure": ({"visible": 0.99}, NEW, "single_crystals"),  # value 0.001
        "near_late": ({"visible": 0.5}, NEW, "single_crystals"),  # value 0.1, but in a later batch
    }
    iid = {name: f"rt-{RUN}-{name}" for name in cases}
    events: dict[str, list[CrystalScored | UserScored]] = {
        name: [crystal_scored(iid[name], modes), user_scored(iid[name], user, score)]
        for name, (modes, user, score) in cases.items()
    }
    pool = await async_pool(settings.postgres)
    pub = FakePublisher()
    svc = DiscrepancyService(
        pool=pool,
        publisher=pub,
        scheme=DEFAULT_SCHEME,
        crystal_topic=topics.CRYSTAL_SCORED,
        user_topic=topics.USER_SCORED,
        consumer=f"rt-{RUN}",
        routing=RoutingPolicy(agreements_per_day=budget, max_queue_share=0.9, min_value=0.05),
    )
    try:
        first = [e for name in cases if name != "near_late" for e in events[name]]
        await svc.handle([record(e, n) for n, e in enumerate(first)])
        await svc.handle([record(e, 100 + n) for n, e in enumerate(events["near_late"])])
        await svc.handle([record(e, 200 + n) for n, e in enumerate(first)])  # redelivery changes nothing
        stats = (await PgGatewayStore(pool).stats("user")).as_dict()
    finally:
        await pool.close()

    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT inspection_id, kind, reason, priority, status, published_at IS NOT NULL FROM discrepancies "
            "WHERE inspection_id LIKE %s",
            (f"rt-{RUN}-%",),
        ).fetchall()
    items = {r[0].removeprefix(f"rt-{RUN}-"): r[1:] for r in rows}
    assert set(items) == {"disagree", "bad_user", "near", "near_other", "modes"}, "4 agreements fit the budget"
    assert items["disagree"][:2] == ("ml_crystal_human_other", "disagreement")
    assert {n: items[n][1] for n in items if n != "disagree"} == {
        "bad_user": "unreliable_user",
        "near": "near_threshold",
        "near_other": "near_threshold",
        "modes": "modes_disagree",
    }
    assert all(items[n][0] == "agreement" and items[n][3] == "open" for n in items if n != "disagree")
    assert all(published for *_, published in items.values())
    # only the disagreement is announced as DiscrepancyFound
    found = [m for m in pub.on(topics.DISCREPANCY_FOUND) if RUN.encode() in m]
    assert len(found) == 1 and iid["disagree"].encode() in found[0]

    # curation learns the queue from the events alone (DiscrepancyFound; the routed agreements from their
    # ComparisonRecorded) into its own schema; its queue is ordered by expected value (the chance the curator
    # overturns the model)
    cur_settings = CurationSettings(_env_file=str(stack.env_file))  # type: ignore[call-arg]
    assert cur_settings.postgres.user == "axis_curation"
    comparisons = [ComparisonRecorded.model_validate_json(m) for m in pub.on(topics.COMPARISON_RECORDED)]
    ours_cmp = [c for c in comparisons if c.inspection_id.startswith(f"rt-{RUN}-")]
    assert {c.inspection_id.removeprefix(f"rt-{RUN}-") for c in ours_cmp if c.queue_item_id} == set(items)
    async with await psycopg.AsyncConnection.connect(cur_settings.postgres.conninfo()) as aconn:
        async with aconn.transaction():
            await read_model.apply_comparisons(aconn, comparisons)
            await read_model.apply_discrepancies(
                aconn, [DiscrepancyFound.model_validate_json(m) for m in pub.on(topics.DISCREPANCY_FOUND)]
            )
    sync = sync_pool(cur_settings.postgres)
    try:
        _, queue = CurationRepo(sync).queue("nobody-" + RUN, 1000)
    finally:
        sync.close()
    ours = [q for q in queue if q.inspection_id.startswith(f"rt-{RUN}-")]
    assert [q.inspection_id.removeprefix(f"rt-{RUN}-") for q in ours] == [
        "disagree",
        "bad_user",
        "near",
        "near_other",
        "modes",
    ]
    assert [q.reason for q in ours][1] == "unreliable_user"
    assert ours[0].priority == pytest.approx(0.5) and ours[1].priority == pytest.approx(0.17, abs=0.005)

    # per-user reliability from curated outcomes, in the stats API's report
    rel = {r["user_id"]: r for r in stats["reliability"]}
    assert (rel[BAD]["curated"], rel[BAD]["overturned"]) == (10, 8)
    assert rel[BAD]["overturn_rate"] == pytest.approx(0.45) and rel[GOOD]["overturn_rate"] == pytest.approx(0.05)
    assert rel[NEW]["curated"] == 0 and rel[NEW]["overturn_rate"] == pytest.approx(0.1)


async def test_modes_that_disagree_are_remembered_until_the_user_score_arrives(stack: Any) -> None:
    settings = discrepancy_settings(stack, f"rt2-{RUN}", "k")
    conninfo = settings.postgres.conninfo()
    iid = f"rt2-{RUN}-modes"
    ml = crystal_scored(iid, {"visible": 0.97, "uv": 0.05})  # fused 0.97: confident, but UV says no
    user = user_scored(iid, NEW, "single_crystals")
    pool = await async_pool(settings.postgres)
    svc = DiscrepancyService(
        pool=pool,
        publisher=FakePublisher(),
        scheme=DEFAULT_SCHEME,
        crystal_topic=topics.CRYSTAL_SCORED,
        user_topic=topics.USER_SCORED,
        consumer=f"rt2-{RUN}",
        routing=RoutingPolicy(agreements_per_day=routed_today(conninfo) + 1, max_queue_share=0.9, min_value=0.05),
    )
    try:
        await svc.handle([record(ml, 0)])  # the ML score alone: stored with its modes
        with psycopg.connect(conninfo) as conn:
            row = conn.execute("SELECT mode_scores FROM ml_scores WHERE inspection_id = %s", (iid,)).fetchone()
        assert row is not None and {m["mode"]: m["probability"] for m in row[0]} == {"uv": 0.05, "visible": 0.97}
        # a disagreement elsewhere today gives the share cap room for one agreement
        await svc.handle([record(crystal_scored(iid + "-d", {"visible": 0.9}), 1)])
        await svc.handle([record(user_scored(iid + "-d", NEW, "clear"), 2), record(user, 3)])
    finally:
        await pool.close()
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT inspection_id, kind, reason FROM discrepancies WHERE inspection_id LIKE %s ORDER BY 1",
            (f"rt2-{RUN}-%",),
        ).fetchall()
    assert rows == [(iid, "agreement", "modes_disagree"), (iid + "-d", "ml_crystal_human_other", "disagreement")]
