"""One example of every event, built with its pydantic model (so it is valid): the AsyncAPI examples of apidocs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from axis_contracts import events as ev
from axis_contracts.dead_letter import DeadLetter

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
    return DeadLetter.wrap(
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
