"""What the chaos run checks in PostgreSQL (and on the dead-letter topic) once the pipeline has settled."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import psycopg
from axis_contracts import DeadLetter, topics
from pydantic import ValidationError


@dataclass
class ChaosCounts:
    """Counts of one run's plates (``prefix``); ``problems`` names each thing lost or doubled."""

    sent: int = 0
    scored: int = 0
    lost: int = 0
    duplicated: int = 0
    inspections: int = 0
    fused: int = 0
    compared: int = 0
    disagreements: int = 0
    queue_items: int = 0
    unpublished: int = 0
    dead_lettered: int = 0
    problems: list[str] = field(default_factory=list)


def scored_inspections(conninfo: str, prefix: str) -> list[str]:
    """Inspections of the run that have a fused score."""
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        rows = conn.execute(
            "SELECT inspection_id FROM inspection_scores WHERE plate_barcode LIKE %s", (prefix + "%",)
        ).fetchall()
    return [r[0] for r in rows]


def _rows(conn: Any, sql: str, prefix: str) -> list[tuple[Any, ...]]:
    return list(conn.execute(sql, (prefix + "%",)).fetchall())


def count_outcome(conninfo: str, prefix: str, sent: int) -> ChaosCounts:
    """Scores per image and model version, fused score per inspection, queue items per disagreement."""
    c = ChaosCounts(sent=sent)
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        per_image = _rows(
            conn,
            "SELECT i.image_uri, count(DISTINCT i.image_event_id), count(s.id), count(DISTINCT s.model_version) "
            "FROM images i LEFT JOIN image_scores s ON s.image_event_id = i.image_event_id "
            "WHERE i.plate_barcode LIKE %s GROUP BY i.image_uri",
            prefix,
        )
        fused = _rows(
            conn,
            "SELECT f.inspection_id, f.fused_probability, max(s.probability), count(DISTINCT s.imaging_mode) "
            "FROM inspection_scores f JOIN image_scores s ON s.inspection_id = f.inspection_id "
            "WHERE f.plate_barcode LIKE %s GROUP BY f.inspection_id, f.fused_probability",
            prefix,
        )
        comparisons = _rows(
            conn,
            "SELECT c.inspection_id, c.agrees, c.ml_event_id, c.user_event_id, "
            "count(d.id) FILTER (WHERE d.status <> 'superseded'), "
            "count(d.id) FILTER (WHERE d.status <> 'superseded' AND d.ml_event_id = c.ml_event_id "
            "AND d.user_event_id = c.user_event_id), count(d.id) FILTER (WHERE d.published_at IS NULL) "
            "FROM comparisons c LEFT JOIN discrepancies d ON d.inspection_id = c.inspection_id "
            "WHERE c.plate_barcode LIKE %s GROUP BY c.inspection_id, c.agrees, c.ml_event_id, c.user_event_id",
            prefix,
        )
    c.scored = sum(1 for _, _, n_scores, _ in per_image if n_scores >= 1)
    c.lost = max(0, sent - c.scored)
    for uri, events, n_scores, versions in per_image:
        if events > 1 or n_scores > versions:
            c.duplicated += max(events - 1, n_scores - versions)
            c.problems.append(f"{uri}: {events} image rows, {n_scores} scores for {versions} model version(s)")
    c.inspections = c.fused = len(fused)
    for iid, prob, best, modes in fused:
        if abs(prob - best) > 1e-9 or modes != 2:
            c.problems.append(f"{iid}: fused {prob} but max of {modes} mode score(s) is {best}")
            c.lost += 1
    c.compared = len(comparisons)
    for iid, agrees, _, _, open_items, matching, unpublished in comparisons:
        c.unpublished += unpublished
        if agrees:
            if open_items:
                c.duplicated += open_items
                c.problems.append(f"{iid}: agreement with {open_items} open queue item(s)")
            continue
        c.disagreements += 1
        c.queue_items += open_items
        if matching != 1 or open_items != 1:
            c.lost += int(matching == 0)
            c.duplicated += max(0, open_items - 1)
            c.problems.append(f"{iid}: disagreement with {open_items} open queue item(s), {matching} for its pair")
    missing_comparisons = c.inspections - c.compared
    if missing_comparisons > 0:
        c.problems.append(f"{missing_comparisons} answered inspection(s) without a comparison")
    return c


async def dead_letters_of(bootstrap: str, prefix: str) -> list[DeadLetter]:
    """Dead letters whose key names one of the run's plates (``<plate>:<well>:<drop>``)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the cluster metadata
        parts = [TopicPartition(topics.DEAD_LETTER, p) for p in consumer.partitions_for_topic(topics.DEAD_LETTER) or ()]
        if not parts:
            return []
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        out: list[DeadLetter] = []
        while [tp for tp in parts if await consumer.position(tp) < end[tp]]:
            for recs in (await consumer.getmany(timeout_ms=1000)).values():
                for r in recs:
                    try:
                        letter = DeadLetter.model_validate_json(r.value or b"")
                    except ValidationError:
                        continue
                    if (letter.source_key or "").startswith(prefix) or prefix in letter.raw_value[:2000]:
                        out.append(letter)
        return out
    finally:
        await consumer.stop()
