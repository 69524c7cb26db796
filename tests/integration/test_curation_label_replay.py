"""A curator's label that was undone stays undone when its events are read back from the log.

The curation service consumes its own CuratorLabelled events (that is how a rebuilt read model gets its labels
back). A label made and undone live used to come back for a while when its own event was consumed after the
undo was applied, until the undo's event was consumed as well (seen in test_curation_rebuild: 8 labels where 7
were live). Real PostgreSQL, the curation service's own schema and role; the live path is CurationRepo.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest
from axis_adapters.db import sync_pool
from axis_contracts import CuratorLabelled
from axis_curation import read_model
from axis_curation.curation_repo import CurationRepo
from axis_curation.settings import CurationSettings

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]


def _decide(votes: list[Any]) -> tuple[str, str | None]:
    return ("resolved", votes[-1][1]) if votes else ("open", None)


def _labels(conninfo: str, item: int) -> list[tuple[str, str]]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT curator, label FROM curator_labels WHERE discrepancy_id = %s ORDER BY id", (item,)
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


def _events(conninfo: str, item: int) -> list[CuratorLabelled]:
    with psycopg.connect(conninfo) as conn:
        rows = conn.execute(
            "SELECT payload FROM label_events WHERE (payload->>'queue_item_id')::bigint = %s ORDER BY created_at",
            (item,),
        ).fetchall()
    return [CuratorLabelled.model_validate(r[0]) for r in rows]


async def _apply(conninfo: str, events: list[CuratorLabelled]) -> None:
    async with await psycopg.AsyncConnection.connect(conninfo) as conn, conn.transaction():
        await read_model.apply_labels(conn, events)


async def test_an_undone_label_is_not_restored_by_its_own_event(stack: Any) -> None:
    settings = CurationSettings(_env_file=str(stack.env_file))  # type: ignore[call-arg]
    conninfo = settings.postgres.conninfo()
    # an id of its own, far from the dev seed's sequence: this test's rows are removed at the end, outbox included
    # (a later test drops the schema and replays the log; a published label of this item would come back then)
    item = 9_000_000_000_000_000 + int(RUN, 16) % 1_000_000
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO discrepancies (id, inspection_id, plate_barcode, well, drop_no, kind, ml_probability, "
            "ml_label, model_name, model_version, human_label, human_class, user_id, ml_event_id, user_event_id) "
            "VALUES (%s, %s, %s, 'A1', 1, 'ml_crystal_human_other', 0.9, 'crystal', 'axis', '1', 'other', 'clear', "
            "'u', %s, %s)",
            (item, f"lr-{RUN}", f"LR{RUN}", uuid.uuid4(), uuid.uuid4()),
        )
    try:
        await _label_undo_and_replay(settings, conninfo, item)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(
                "DELETE FROM withdrawn_labels WHERE label_event_id IN (SELECT (payload->>'withdraws')::uuid "
                "FROM label_events WHERE (payload->>'queue_item_id')::bigint = %s)",
                (item,),
            )
            for sql in (
                "DELETE FROM label_events WHERE (payload->>'queue_item_id')::bigint = %s",
                "DELETE FROM curator_labels WHERE discrepancy_id = %s",
                "DELETE FROM item_verdicts WHERE item_id = %s",
                "DELETE FROM discrepancies WHERE id = %s",
            ):
                conn.execute(sql, (item,))


async def _label_undo_and_replay(settings: CurationSettings, conninfo: str, item: int) -> None:
    pool = sync_pool(settings.postgres)
    try:
        repo = CurationRepo(pool)
        repo.add_label(item, f"alice-{RUN}", "crystal", "", _decide)
        repo.add_label(item, f"bob-{RUN}", "other", "", _decide)
        repo.remove_last_label(item, f"alice-{RUN}", _decide)
    finally:
        pool.close()
    live = _labels(conninfo, item)
    assert live == [(f"bob-{RUN}", "other")]
    alice_label, bob_label, undo = _events(conninfo, item)
    assert undo.withdraws == alice_label.event_id and bob_label.withdraws is None

    # the log read back one event per batch, as the projector does when they arrive apart
    await _apply(conninfo, [alice_label])
    assert _labels(conninfo, item) == live, "the undone label came back from its own event"
    await _apply(conninfo, [bob_label])
    await _apply(conninfo, [undo])
    assert _labels(conninfo, item) == live

    # a rebuilt read model (tables emptied) replays the three in order, in one batch or apart: same labels
    for batches in ([[alice_label, bob_label, undo]], [[alice_label], [bob_label], [undo]]):
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("DELETE FROM curator_labels WHERE discrepancy_id = %s", (item,))
            conn.execute("DELETE FROM withdrawn_labels WHERE label_event_id = %s", (alice_label.event_id,))
        for batch in batches:
            await _apply(conninfo, batch)
        assert _labels(conninfo, item) == live, batches
