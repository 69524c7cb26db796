"""Curators' labels as events: the outbox rows (``label_events``) written in the label's own transaction.

Part of the curation service's repository (its own schema): the projector publishes the rows as
CuratorLabelled and replays them into ``curator_labels`` when the read model is rebuilt.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from axis_contracts import CuratorLabelled
from psycopg.types.json import Jsonb

from axis_curation.read_model import WITHDRAW_SQL

PRODUCER = "curation"


def record_label_event(
    cur: Any,
    *,
    item_id: int,
    curator: str,
    at: datetime,
    status: str,
    resolved: str | None,
    label: str | None = None,
    comment: str = "",
    withdraws: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Queue a CuratorLabelled (a label, or the undo of ``withdraws``) and the item's verdict; its event id."""
    cur.execute(
        "SELECT inspection_id, plate_barcode, well, drop_no, user_id FROM discrepancies WHERE id = %s", (item_id,)
    )
    row = cur.fetchone()
    item = (
        row
        if isinstance(row, dict)
        else dict(zip(("inspection_id", "plate_barcode", "well", "drop_no", "user_id"), row, strict=True))
    )
    event = CuratorLabelled(
        event_id=event_id or uuid.uuid4(),
        producer=PRODUCER,
        queue_item_id=item_id,
        inspection_id=item["inspection_id"],
        plate_barcode=item["plate_barcode"],
        well=item["well"],
        drop=item["drop_no"],
        user_id=item["user_id"],
        curator=curator,
        label=label,  # type: ignore[arg-type]
        withdraws=withdraws,
        comment=comment,
        labelled_at=at,
        item_status=status,  # type: ignore[arg-type]
        resolved_label=resolved,  # type: ignore[arg-type]
    )
    if withdraws is not None:  # the label's own event, read back from the log later, must not restore it
        cur.execute(WITHDRAW_SQL, (withdraws, at))
    cur.execute(
        "INSERT INTO label_events (event_id, payload) VALUES (%s, %s)",
        (event.event_id, Jsonb(event.model_dump(mode="json"))),
    )
    cur.execute(
        "INSERT INTO item_verdicts (item_id, status, resolved_label, labelled_at) VALUES (%s, %s, %s, %s) "
        "ON CONFLICT (item_id) DO UPDATE SET status = EXCLUDED.status, resolved_label = EXCLUDED.resolved_label, "
        "labelled_at = EXCLUDED.labelled_at WHERE item_verdicts.labelled_at <= EXCLUDED.labelled_at",
        (item_id, status, resolved, at),
    )
    return event.event_id
