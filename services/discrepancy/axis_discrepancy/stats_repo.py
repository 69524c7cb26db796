"""The discrepancy service's statistics (``GET /v1/stats``): its comparisons aggregated by plate, user, week or
model version (parameterised SQL on its own schema)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from axis_core.routing import Reliability
from axis_core.stats import GroupBy, GroupCounts, StatsReport, check_group_by, reliability_rows, summarise
from psycopg import AsyncConnection, Connection, sql

# curated outcomes per LIMS user: how often curators overturned the user's score
_RELIABILITY_BY_USER = (
    "SELECT user_id, count(*), count(*) FILTER (WHERE resolved_label <> human_label) FROM discrepancies "
    "WHERE status = 'resolved' AND resolved_label IN ('crystal', 'other') GROUP BY user_id ORDER BY user_id"
)

_GROUP_KEYS: dict[GroupBy, tuple[str, str]] = {
    "plate": ("plate_barcode", "k"),
    "user": ("user_id", "k"),
    "model_version": ("model_name || ':' || model_version", "k"),
    "week": ("date_trunc('week', imaged_at AT TIME ZONE 'UTC')", "to_char(k, 'IYYY-\"W\"IW')"),
}


def stats_query(group_by: str) -> sql.Composed:
    """The aggregation over current comparisons for one of the allowed groupings."""
    key, name = _GROUP_KEYS[check_group_by(group_by)]  # fixed expressions chosen from the table above
    return sql.SQL(
        "SELECT {name} AS grp, n, agree, k1, k2 FROM (SELECT {key} AS k, count(*) AS n, "
        "count(*) FILTER (WHERE agrees) AS agree, count(*) FILTER (WHERE kind = 'ml_crystal_human_other') AS k1, "
        "count(*) FILTER (WHERE kind = 'ml_other_human_crystal') AS k2 FROM comparisons GROUP BY 1) AS g ORDER BY 1"
    ).format(key=sql.SQL(key), name=sql.SQL(name))


def _report(
    group_by: str, rows: Sequence[Sequence[Any]], curated: Sequence[Sequence[Any]] | None = None
) -> StatsReport:
    counts = [GroupCounts(str(r[0]), int(r[1]), int(r[2]), int(r[3]), int(r[4])) for r in rows]
    reliability = None
    if curated is not None:
        known = {str(r[0]) for r in rows} | {str(r[0]) for r in curated}
        by_user = {u: Reliability(u) for u in known}
        for u, n, over in curated:
            by_user[str(u)] = Reliability(str(u), int(n), int(over))
        reliability = reliability_rows(by_user.values())
    return summarise(check_group_by(group_by), counts, reliability)


async def discrepancy_stats(conn: AsyncConnection, group_by: str) -> StatsReport:
    """Agreement rate and counts of each discrepancy kind per plate, user, model version or ISO week (imaged).

    Grouped by user, the report also gives each user's reliability from curated outcomes.
    """
    cur = await conn.execute(stats_query(group_by))
    rows = await cur.fetchall()
    curated = None
    if group_by == "user":
        curated = await (await conn.execute(_RELIABILITY_BY_USER)).fetchall()
    return _report(group_by, rows, curated)


def discrepancy_stats_sync(conn: Connection, group_by: str) -> StatsReport:
    """Synchronous twin of :func:`discrepancy_stats` (CLI, notebooks)."""
    curated = conn.execute(_RELIABILITY_BY_USER).fetchall() if group_by == "user" else None
    return _report(group_by, conn.execute(stats_query(group_by)).fetchall(), curated)
