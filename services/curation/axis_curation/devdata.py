"""Demo and test data: write inspections, scores, user scores and queued disagreements into curation's read
model (its own schema), as its projector would from the other services' events.

Used by ``python -m axis_curation seed-demo`` (dev mode) and by the integration and browser tests, so the pages
can be tried without running the whole loop. Images come from axis_synth (synthetic drops).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from axis_adapters.objectstore import ObjectStore
from axis_contracts.scheme import DEFAULT_SCHEME, ScoreScheme
from axis_contracts.wells import PlateType, wells_of
from psycopg.types.json import Jsonb

MODEL = {"visible": "axis-visible", "uv": "axis-uv"}


@dataclass(frozen=True)
class InspectionRow:
    """What identifies one inspection of one drop."""

    inspection_id: str
    plate_barcode: str
    well: str
    drop: int
    imaged_at: datetime
    plate_type: str = "96"


def insert_image(
    conn: Any, store: ObjectStore | None, insp: InspectionRow, mode: str, uri: str, data: bytes | None
) -> str:
    """Put the image bytes (if given) in the object store and record the image; returns its image_event_id."""
    if store is not None and data is not None:
        store.put_bytes(uri, data, "image/png" if data.startswith(b"\x89PNG") else "image/jpeg")
    event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, uri))
    conn.execute(
        "INSERT INTO images (image_event_id, inspection_id, plate_barcode, plate_type, well, drop_no, imaging_mode, "
        "image_uri, imaged_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (
            event_id,
            insp.inspection_id,
            insp.plate_barcode,
            insp.plate_type,
            insp.well,
            insp.drop,
            mode,
            uri,
            insp.imaged_at,
        ),
    )
    return event_id


def insert_scores(
    conn: Any,
    insp: InspectionRow,
    probs: dict[str, tuple[str | None, float]],
    *,
    version: str = "1",
    threshold: float = 0.5,
) -> float:
    """Per-image scores ({mode: (image_event_id or None, p)}) and the fused inspection score (max); returns it."""
    for mode, (event_id, p) in probs.items():
        if event_id is None:
            continue
        conn.execute(
            "INSERT INTO image_scores (image_event_id, inspection_id, imaging_mode, probability, threshold, "
            "model_name, model_version) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
            (event_id, insp.inspection_id, mode, p, threshold, MODEL[mode], version),
        )
    fused = max(p for _, p in probs.values())
    mode_scores = {m: {"probability": p, "model_version": version} for m, (_, p) in probs.items()}
    conn.execute(
        "INSERT INTO inspection_scores (inspection_id, plate_barcode, plate_type, well, drop_no, imaged_at, "
        "mode_scores, fused_probability, label, threshold, model_name, model_version) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (inspection_id) DO UPDATE SET "
        "fused_probability = EXCLUDED.fused_probability, mode_scores = EXCLUDED.mode_scores, label = EXCLUDED.label",
        (
            insp.inspection_id,
            insp.plate_barcode,
            insp.plate_type,
            insp.well,
            insp.drop,
            insp.imaged_at,
            Jsonb(mode_scores),
            fused,
            "crystal" if fused >= threshold else "other",
            threshold,
            MODEL["visible"],
            version,
        ),
    )
    return fused


def insert_user_score(
    conn: Any, insp: InspectionRow, raw_class: str, *, user: str = "scientist-1", scheme: ScoreScheme = DEFAULT_SCHEME
) -> str:
    """A LIMS user score of the inspection; returns its event id."""
    event_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO user_scores (event_id, inspection_id, plate_barcode, well, drop_no, user_id, raw_class, "
        "human_label, scored_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
        (
            event_id,
            insp.inspection_id,
            insp.plate_barcode,
            insp.well,
            insp.drop,
            user,
            raw_class,
            scheme.to_label(raw_class),
            insp.imaged_at + timedelta(hours=1),
        ),
    )
    return event_id


def insert_comparison(
    conn: Any,
    insp: InspectionRow,
    *,
    ml_p: float,
    human_class: str,
    threshold: float = 0.5,
    version: str = "1",
    user: str = "scientist-1",
    scheme: ScoreScheme = DEFAULT_SCHEME,
    pair: tuple[uuid.UUID, uuid.UUID] | None = None,
) -> bool:
    """The discrepancy service's comparison row; returns whether ML and human agree."""
    ml_label = "crystal" if ml_p >= threshold else "other"
    human = scheme.to_label(human_class)
    agrees = ml_label == human
    kind = None if agrees else f"ml_{ml_label}_human_{human}"
    conn.execute(
        "INSERT INTO comparisons (inspection_id, plate_barcode, well, drop_no, imaged_at, ml_probability, ml_label, "
        "threshold, model_name, model_version, human_label, human_class, user_id, user_event_id, ml_event_id, agrees, "
        "kind) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (
            insp.inspection_id,
            insp.plate_barcode,
            insp.well,
            insp.drop,
            insp.imaged_at,
            ml_p,
            ml_label,
            threshold,
            MODEL["visible"],
            version,
            human,
            human_class,
            user,
            (pair or (uuid.uuid4(), uuid.uuid4()))[1],
            (pair or (uuid.uuid4(), uuid.uuid4()))[0],
            agrees,
            kind,
        ),
    )
    return agrees


def insert_discrepancy(
    conn: Any,
    insp: InspectionRow,
    *,
    ml_p: float,
    human_class: str,
    threshold: float = 0.5,
    version: str = "1",
    user: str = "scientist-1",
    scheme: ScoreScheme = DEFAULT_SCHEME,
    pair: tuple[uuid.UUID, uuid.UUID] | None = None,
) -> int:
    """A queued disagreement (status open); returns its id."""
    ml_label = "crystal" if ml_p >= threshold else "other"
    human = scheme.to_label(human_class)
    if ml_label == human:
        raise ValueError(f"{insp.inspection_id}: ML {ml_label} and human {human} agree; not a disagreement")
    row = conn.execute(
        "INSERT INTO discrepancies (inspection_id, plate_barcode, well, drop_no, kind, ml_probability, ml_label, "
        "model_name, model_version, human_label, human_class, user_id, ml_event_id, user_event_id) "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (
            insp.inspection_id,
            insp.plate_barcode,
            insp.well,
            insp.drop,
            f"ml_{ml_label}_human_{human}",
            ml_p,
            ml_label,
            MODEL["visible"],
            version,
            human,
            human_class,
            user,
            (pair or (uuid.uuid4(), uuid.uuid4()))[0],
            (pair or (uuid.uuid4(), uuid.uuid4()))[1],
        ),
    ).fetchone()
    return int(row[0])


def synth_image(outcome: str, mode: str, seed: int, size: tuple[int, int] = (384, 320)) -> bytes:
    """A synthetic drop image (JPEG) of an outcome class."""
    from axis_synth import DOMAIN_A, DropSpec, render, to_jpeg_bytes

    return to_jpeg_bytes(render(DropSpec(outcome=outcome, drop_seed=seed), DOMAIN_A, mode, seed=seed, size=size))  # type: ignore[arg-type]


@dataclass
class DemoPlate:
    """What ``seed_demo`` wrote."""

    barcode: str
    probabilities: dict[str, float] = field(default_factory=dict)
    queue_ids: list[int] = field(default_factory=list)
    queued_wells: list[str] = field(default_factory=list)


_CLASSES_BY_LABEL = {
    "crystal": ("microcrystals", "single_crystals"),
    "other": ("clear", "precipitate", "phase_separation"),
}


def seed_demo(
    conn: Any,
    store: ObjectStore,
    *,
    barcode: str = "DEMO-1",
    plate_type: str = "96",
    queue_items: int = 6,
    bucket: str = "axis-images",
    seed: int = 0,
    when: datetime | None = None,
    image_wells: Sequence[str] = (),
) -> DemoPlate:
    """One scored plate: every well an ML probability and most a user score; ``queue_items`` disagreements
    with visible + UV synthetic images; extra ``image_wells`` get images too. Commit is the caller's."""
    rng = random.Random(seed)
    at = when or datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    wells = wells_of(PlateType(plate_type))
    queued = set(rng.sample(wells, queue_items))
    demo = DemoPlate(barcode)
    store.ensure_bucket(bucket)
    for i, well in enumerate(wells):
        insp = InspectionRow(f"{barcode}-{well}-1", barcode, well, 1, at + timedelta(seconds=i), plate_type)
        crystal = rng.random() < 0.3
        p = round(rng.uniform(0.55, 0.99) if crystal else rng.uniform(0.0, 0.45), 3)
        human_class = rng.choice(_CLASSES_BY_LABEL["crystal" if crystal else "other"])
        if well in queued:  # the human disagrees with the model
            human_class = rng.choice(_CLASSES_BY_LABEL["other" if crystal else "crystal"])
        with_images = well in queued or well in image_wells
        probs: dict[str, tuple[str | None, float]] = {}
        for mode in ("visible", "uv"):
            p_mode = p if mode == "visible" else round(p * rng.uniform(0.6, 1.0), 3)
            event_id = None
            if with_images:
                uri = f"s3://{bucket}/demo/{barcode}/{well}/1/{mode}.jpg"
                data = synth_image("single_crystals" if crystal else "clear", mode, seed * 1000 + i)
                event_id = insert_image(conn, store, insp, mode, uri, data)
            probs[mode] = (event_id, p_mode)
        demo.probabilities[well] = insert_scores(conn, insp, probs)
        if well in queued or rng.random() < 0.7:
            insert_user_score(conn, insp, human_class)
            # one (ML event, user event) pair for the comparison and its queue item, as the services keep them
            pair = (uuid.uuid5(uuid.NAMESPACE_URL, f"ml:{insp.inspection_id}"), uuid.uuid4())
            insert_comparison(conn, insp, ml_p=demo.probabilities[well], human_class=human_class, pair=pair)
            if well in queued:
                item = insert_discrepancy(conn, insp, ml_p=demo.probabilities[well], human_class=human_class, pair=pair)
                demo.queue_ids.append(item)
                demo.queued_wells.append(well)
    return demo
