"""Who publishes and who consumes each event, its message key, and one example of it: the input of apidocs.

The payload schemas come from the pydantic models (axis_contracts.events); what is written here is what a model
cannot say: which party sends or receives it, in which consumer group, and how the key is made. An event added
to ``axis_contracts.events.EVENT_TYPES`` without an entry in ``FLOWS`` and ``EXAMPLES`` stops ``make docs`` with a
message saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from uuid import UUID

from axis_contracts import events as ev

EXPERIMENT_KEY = (
    '"{plate_barcode}:{well}:{drop}" (e.g. `PL0042:B3:1`): all events of one drop on one partition, in order'
)

PARTIES: dict[str, str] = {
    "imaging-robot": "An imager's control software, outside AXIS Loop (docs/imaging.md).",
    "ingest": "`python -m axis_ingest`: watches an imager's folder tree, stores each image, announces it.",
    "inference": "`python -m axis_inference`: scores images with the champion models.",
    "lims": "The facility's LIMS, outside AXIS Loop (docs/lims.md).",
    "lims-gateway": "`python -m axis_discrepancy.lims_gateway`: `POST /v1/user-scores` over HTTP for a LIMS.",
    "discrepancy": "`python -m axis_discrepancy`: compares ML and human scores per inspection.",
    "curation": "`python -m axis_curation`: curator queue, plate maps, dataset export.",
    "trainer": "`python -m axis_trainer`: fine-tunes and registers new model versions.",
    "promote": "`python -m axis_cli promote` and the MLflow alias watch `python -m axis_cli.promote_watch`.",
    "operators": "`python -m axis_cli dlq`: lists dead letters and replays them after a fix.",
}


@dataclass(frozen=True)
class Side:
    """One party's part in a flow: what it does with the event, and its consumer group when it consumes."""

    party: str
    how: str
    group: str | None = None


@dataclass(frozen=True)
class Flow:
    """An event's topic-level facts beyond its payload."""

    key: str
    send: tuple[Side, ...]
    receive: tuple[Side, ...]
    nullable_key: bool = False
    note: str = ""  # the message's description: which of several events about one thing is the current one


def flows() -> dict[str, Flow]:
    """The flow of every event, by event type; consumer groups are read from the services' settings."""
    from axis_inference.settings import CONSUMER_GROUP as INFERENCE_GROUP
    from axis_inference.settings import InferenceOptions
    from axis_trainer.settings import CONSUMER_GROUP as TRAINER_GROUP

    inf = InferenceOptions()
    table = {
        "ImageCaptured": Flow(
            key=EXPERIMENT_KEY,
            note=(
                "The image is in the object store before the event is sent, in a bucket the inference service may read "
                "(`AXIS_S3__ALLOWED_BUCKETS`). The visible and the UV image of one drop in one imaging session share "
                "`inspection_id`; their scores are fused."
            ),
            send=(
                Side("imaging-robot", "Stores the image in the object store first, then publishes the event."),
                Side(
                    "ingest", "Publishes one event per new image file, after storing the image (outbox in PostgreSQL)."
                ),
            ),
            receive=(
                Side(
                    "inference",
                    f"Batches of up to {inf.batch_size} images (or {inf.batch_timeout_ms} ms); stores the scores, then "
                    "publishes CrystalScored; offsets are committed after that.",
                    INFERENCE_GROUP,
                ),
            ),
        ),
        "CrystalScored": Flow(
            key=EXPERIMENT_KEY,
            note=(
                "An inspection is scored again when another of its modes is scored and when a newer model version "
                "re-scores it: the message with the latest `scored_at` is the current one. `label` is `crystal` when "
                "`fused_probability >= threshold`."
            ),
            send=(
                Side(
                    "inference",
                    "One event per inspection each time a mode of it is scored (fused probability: the max over "
                    "the modes scored so far) and again when a newer model version re-scores it.",
                ),
            ),
            receive=(
                Side(
                    "lims",
                    "Shows the scores to scientists. Uses its own consumer group (e.g. `lims`) from the earliest "
                    "offset; the message with the latest `scored_at` of an inspection is the current one.",
                    "lims",
                ),
            ),
        ),
        "UserScored": Flow(
            key="the experiment key when plate_barcode and well are given, else the inspection_id",
            note=(
                "Name the drop by `inspection_id`, or by `plate_barcode` + `well` (+ `drop`) + `scored_at`: the latest "
                "inspection of that drop imaged at or before `scored_at`. Per inspection the latest `scored_at` wins. "
                "`score` is a class of the facility's scheme; an unknown class, or an inspection AXIS has not seen, is "
                "dead-lettered with the reason."
            ),
            send=(
                Side(
                    "lims",
                    "Publishes the score a scientist entered; a changed score is a new event, later `scored_at`.",
                ),
                Side("lims-gateway", "Publishes each accepted `POST /v1/user-scores` (HTTP 202) once."),
            ),
            receive=(),
        ),
        "DiscrepancyFound": Flow(
            key=EXPERIMENT_KEY,
            note=(
                "One per curator queue item: an inspection whose current ML score and user score disagree; "
                "`discrepancy_id` names the item."
            ),
            send=(
                Side(
                    "discrepancy",
                    "Published after commit for every new disagreement (outbox: `published_at` of the item), so a "
                    "crash between commit and publish is repaired by the next batch.",
                ),
            ),
            receive=(),
        ),
        "ComparisonRecorded": Flow(
            key=EXPERIMENT_KEY,
            note=(
                "Per inspection the highest `revision` is the current comparison; `agrees` rows are training "
                "candidates."
            ),
            send=(
                Side(
                    "discrepancy",
                    "One event per new comparison revision of an inspection, agreements and disagreements alike; "
                    "the highest `revision` is the current one.",
                ),
            ),
            receive=(),
        ),
        "CuratorLabelled": Flow(
            key=EXPERIMENT_KEY,
            note=(
                "A label, or the withdrawal of one (`withdraws`); `item_status` and `resolved_label` are the queue "
                "item's state after it under the consensus rule."
            ),
            send=(Side("curation", "One event per label a curator gives or takes back (the curator queue)."),),
            receive=(),
        ),
        "DatasetExported": Flow(
            key='"{dataset_name}:{dataset_version}"',
            send=(
                Side(
                    "curation",
                    "Published when an admin exports (or publishes) a dataset version (`POST /v1/datasets`, "
                    "`python -m axis_curation export`).",
                ),
            ),
            receive=(
                Side(
                    "trainer",
                    "Trains on a train-purpose dataset and records it as processed; one record at a time.",
                    TRAINER_GROUP,
                ),
            ),
        ),
        "ModelRegistered": Flow(
            key="the registered model name",
            send=(Side("trainer", "One event per model version registered in MLflow (alias `challenger`)."),),
            receive=(),
        ),
        "ModelPromoted": Flow(
            key="the registered model name",
            send=(Side("promote", "Published when the `champion` alias moves (by the CLI or seen by the watch)."),),
            receive=(
                Side(
                    "inference",
                    "Every instance, without a consumer group, from the latest offset: checks the registry and "
                    "switches to the new champion without a restart (it also polls the registry).",
                ),
            ),
        ),
        "DeadLetter": Flow(
            note=(
                "`raw_value` is the rejected message (UTF-8 text, or hex when `raw_encoding` is `hex`), `error` the "
                "reason; a message larger than the kept prefix is whole at `raw_uri`."
            ),
            key="the key of the rejected record, as it was (none when it had none, or when the broker refused the "
            "whole dead letter and the bare one, without the raw message, was sent)",
            nullable_key=True,
            send=(),  # every AXIS consumer: added by _with_consumers
            receive=(Side("operators", "Reads the whole topic without a consumer group; replays after a fix."),),
        ),
    }
    return _with_consumers(table)


def _with_consumers(table: dict[str, Flow]) -> dict[str, Flow]:
    """Add the consumers whose topics the code lists: the discrepancy service's settings, curation's projector.

    Every AXIS consumer dead-letters what it cannot process, so each also publishes DeadLetter.
    """
    from axis_contracts.events import TOPIC_EVENTS
    from axis_curation.projector import CONSUMED, GROUP_PREFIX
    from axis_curation.settings import CurationOptions
    from axis_discrepancy.settings import DiscrepancyOptions

    disc = DiscrepancyOptions()
    disc_topics = [t for t in (disc.crystal_scored_topic, disc.user_scored_topic, disc.image_captured_topic) if t]
    cur = CurationOptions()
    added: dict[str, list[Side]] = {}
    for topic in disc_topics:
        how = (
            f"Micro-batches of up to {disc.max_records} records of {', '.join(disc_topics)} (or "
            f"{disc.batch_timeout_ms} ms), one PostgreSQL transaction each; offsets are committed after it."
        )
        added.setdefault(TOPIC_EVENTS[topic].__name__, []).append(Side("discrepancy", how, disc.group_id))
    for topic in CONSUMED:
        how = (
            f"Keeps curation's read model: micro-batches of up to {cur.read_model_batch} records of "
            f"{', '.join(CONSUMED)}, one PostgreSQL transaction each. The group is `{GROUP_PREFIX}-<generation>`: "
            "a rebuild starts a new generation that reads every topic from the earliest offset."
        )
        added.setdefault(TOPIC_EVENTS[topic].__name__, []).append(Side("curation", how, f"{GROUP_PREFIX}-*"))
    out = {n: replace(f, receive=(*f.receive, *added.get(n, ()))) for n, f in table.items()}
    consumers = sorted({s.party for f in out.values() for s in f.receive} - {"lims", "operators"})
    dead = Side("", "Publishes each record it cannot process, once, with the reason; then goes on.")
    out["DeadLetter"] = replace(out["DeadLetter"], send=tuple(replace(dead, party=p) for p in consumers))
    return out


T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
IMAGE_ID = UUID("0b3c5d2e-7a41-4c8e-9f61-2d4b8a1c3e5f")
INSPECTION = "PL0042-B3-d1-20260302"
URI = "s3://axis-images/ingest/imager-1/PL0042/B3/1/PL0042-B3-d1-20260302-visible-9b2e61f0c4d8a7e3.jpg"


def _image() -> ev.Event:
    return ev.ImageCaptured(
        event_id=IMAGE_ID,
        occurred_at=T0 + timedelta(seconds=2),
        producer="axis-ingest",
        plate_barcode="PL0042",
        well="B3",
        inspection_id=INSPECTION,
        imaged_at=T0,
        imaging_mode=ev.ImagingMode.VISIBLE,
        image_uri=URI,
    )


def _scored() -> ev.Event:
    mode = ev.ModeScore(
        probability=0.91,
        threshold=0.42,
        model_name="axis-visible",
        model_version="3",
        image_uri=URI,
        image_event_id=IMAGE_ID,
    )
    return ev.CrystalScored(
        event_id=UUID("6a0d3c1e-8a8b-4f4e-9f0a-1d2c3b4a5e6f"),
        occurred_at=T0 + timedelta(seconds=11),
        producer="axis-inference",
        plate_barcode="PL0042",
        well="B3",
        inspection_id=INSPECTION,
        imaged_at=T0,
        scores={ev.ImagingMode.VISIBLE: mode},
        fused_probability=0.91,
        label="crystal",
        threshold=0.42,
        model_name="axis-visible",
        model_version="3",
        scored_at=T0 + timedelta(seconds=11),
    )


def _user() -> ev.Event:
    return ev.UserScored(
        event_id=UUID("9d5e2c44-5b0a-4d59-8f3e-0f4f1c2b3a41"),
        occurred_at=T0 + timedelta(hours=1, seconds=2),
        producer="lims",
        inspection_id=INSPECTION,
        plate_barcode="PL0042",
        well="B3",
        drop=1,
        user_id="jdoe",
        score="precipitate",
        scored_at=T0 + timedelta(hours=1),
    )


def _found() -> ev.Event:
    return ev.DiscrepancyFound(
        event_id=UUID("3c9a1f70-2b6d-4e8a-a1c4-7f0e5d2b9a86"),
        occurred_at=T0 + timedelta(hours=1, seconds=3),
        producer="axis-discrepancy",
        plate_barcode="PL0042",
        well="B3",
        discrepancy_id=17,
        inspection_id=INSPECTION,
        kind=ev.DiscrepancyKind.ML_CRYSTAL_HUMAN_OTHER,
        ml_probability=0.91,
        ml_label="crystal",
        threshold=0.42,
        model_name="axis-visible",
        model_version="3",
        human_label="other",
        human_score="precipitate",
        user_id="jdoe",
    )


def _compared() -> ev.Event:
    return ev.ComparisonRecorded(
        event_id=UUID("c41e7a2b-9d3f-4b8e-a6c1-5f0d2e8b7a34"),
        occurred_at=T0 + timedelta(hours=1, seconds=3),
        producer="axis-discrepancy",
        plate_barcode="PL0042",
        well="B3",
        inspection_id=INSPECTION,
        revision=1,
        imaged_at=T0,
        ml_event_id=UUID("6a0d3c1e-8a8b-4f4e-9f0a-1d2c3b4a5e6f"),
        ml_probability=0.91,
        ml_label="crystal",
        threshold=0.42,
        model_name="axis-visible",
        model_version="3",
        user_event_id=UUID("9d5e2c44-5b0a-4d59-8f3e-0f4f1c2b3a41"),
        user_id="jdoe",
        human_label="other",
        human_score="precipitate",
        user_scored_at=T0 + timedelta(hours=1),
        agrees=False,
        kind=ev.DiscrepancyKind.ML_CRYSTAL_HUMAN_OTHER,
        queue_item_id=17,
        reason="disagreement",
    )


def _labelled() -> ev.Event:
    return ev.CuratorLabelled(
        event_id=UUID("d7a2c9e4-3b1f-4e6d-9a8c-2f5e0b7d1c63"),
        occurred_at=T0 + timedelta(hours=3),
        producer="axis-curation",
        queue_item_id=17,
        inspection_id=INSPECTION,
        plate_barcode="PL0042",
        well="B3",
        user_id="jdoe",
        curator="curator-1",
        label="crystal",
        comment="small needles at the drop edge",
        labelled_at=T0 + timedelta(hours=3),
        item_status="resolved",
        resolved_label="crystal",
    )


def _exported() -> ev.Event:
    base = "s3://axis-datasets/datasets/facility-train/4"
    return ev.DatasetExported(
        event_id=UUID("5f2e8d1a-9c3b-4a7e-b6d0-1e4f7a2c8b93"),
        occurred_at=T0 + timedelta(days=7),
        producer="axis-curation",
        dataset_name="facility-train",
        dataset_version="4",
        manifest_uri=f"{base}/manifest.parquet",
        manifest_sha256="4d9f1c0b7e2a8f3d6c5b9a0e1f2d3c4b5a69788796a5b4c3d2e1f0a9b8c7d6e5",
        qc_report_uri=f"{base}/qc_report.json",
        card_uri=f"{base}/card.md",
        counts={"train": {"crystal": 412, "other": 1530}, "validation": {"crystal": 101, "other": 380}},
    )


def _registered() -> ev.Event:
    return ev.ModelRegistered(
        event_id=UUID("7b4c2a9e-1d3f-4e6a-8c5b-0a9d8e7f6c51"),
        occurred_at=T0 + timedelta(days=7, hours=2),
        producer="axis-trainer",
        model_name="axis-visible",
        version="4",
        imaging_mode=ev.ImagingMode.VISIBLE,
        run_id="a3f9c2e18b7d4c5e9f0a1b2c3d4e5f60",
        dataset_name="facility-train",
        dataset_version="4",
        threshold=0.38,
        metrics={"crystal_recall": 0.962, "balanced_accuracy": 0.951},
    )


def _promoted() -> ev.Event:
    return ev.ModelPromoted(
        event_id=UUID("2e8f6b1c-4a7d-4c9e-b3a5-6d1f0e9c8b72"),
        occurred_at=T0 + timedelta(days=8),
        producer="axis-cli",
        model_name="axis-visible",
        version="4",
        previous_version="3",
        promoted_by="admin",
        reason="recall 0.962 vs 0.941 on the frozen test set",
        metrics={"crystal_recall": 0.962},
    )


def _dead() -> ev.Event:
    from axis_contracts.scheme import DEFAULT_SCHEME, UnknownScoreClass

    raw = (
        b'{"event_type": "UserScored", "producer": "lims", "inspection_id": "PL0042-B3-d1-20260302", '
        b'"user_id": "jdoe", "score": "shiny", "scored_at": "2026-03-02T10:00:00Z"}'
    )
    try:
        DEFAULT_SCHEME.normalise("shiny")
        error: Exception = ValueError("shiny")
    except UnknownScoreClass as exc:  # the reason the discrepancy service gives for this record
        error = exc
    return ev.DeadLetter.wrap(
        raw=raw,
        source_topic="lims.user-scored.v1",
        error=error,
        consumer="axis-discrepancy",
        event_id=UUID("8a1d3e5c-6f2b-4b9d-a0c7-3e5f1d2b4c96"),
        occurred_at=T0 + timedelta(hours=1, seconds=5),
        partition=1,
        offset=4711,
        source_key="PL0042:B3:1",
    )


EXAMPLES: dict[str, Callable[[], ev.Event]] = {
    "ImageCaptured": _image,
    "CrystalScored": _scored,
    "UserScored": _user,
    "DiscrepancyFound": _found,
    "ComparisonRecorded": _compared,
    "CuratorLabelled": _labelled,
    "DatasetExported": _exported,
    "ModelRegistered": _registered,
    "ModelPromoted": _promoted,
    "DeadLetter": _dead,
}
