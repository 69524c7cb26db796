"""Trainer on the embedded stack: DatasetExported → MLflow run + challenger → promote → champion; bad data refused."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import psycopg
import pytest
import torch
from aiokafka import AIOKafkaConsumer
from axis_adapters.kafka import make_broker, publish_event
from axis_adapters.objectstore import MinioObjectStore
from axis_adapters.registry import CHALLENGER, ModelRegistry
from axis_cli.__main__ import main as cli_main
from axis_contracts import DatasetExported, DeadLetter, ModelPromoted, ModelRegistered, topics
from axis_model.classifier import load_base_model
from axis_model.spec import BaseSpec
from axis_synth.codec import to_png_bytes
from axis_synth.domain import DOMAIN_A
from axis_synth.render import render
from axis_synth.spec import OUTCOMES, DropSpec
from axis_trainer.__main__ import main as trainer_main
from axis_trainer.app import RunningTrainer
from axis_trainer.settings import TrainerSettings

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:8]
SIZE = 112
EPOCHS = 8
PREFIX = f"s3://axis-images/trainer-it/{RUN}"
DATASETS = f"s3://axis-datasets/trainer-it/{RUN}"


@pytest.fixture(scope="module")
def env(stack: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Stack settings plus model names, experiment and base private to this module; small, fast training."""
    base_dir = tmp_path_factory.mktemp("tiny-base")
    load_base_model(BaseSpec.tiny()).save_pretrained(base_dir)
    values = {
        **stack.env,
        "AXIS_MLFLOW__VISIBLE_MODEL": f"axis-visible-tr-{RUN}",
        "AXIS_MLFLOW__UV_MODEL": f"axis-uv-tr-{RUN}",
        "AXIS_MLFLOW__EXPERIMENT": f"trainer-it-{RUN}",
        "AXIS_MODEL__BASE_PATH": str(base_dir),
        "AXIS_TRAINER__EPOCHS": str(EPOCHS),
        "AXIS_TRAINER__BATCH_SIZE": "16",
        "AXIS_TRAINER__LR": "0.002",
        "AXIS_TRAINER__LOG_EVERY": "20",
        "AXIS_TRAINER__TORCH_THREADS": "1",
        "AXIS_TRAINER__DATASET_NAME_PATTERN": f".*-{RUN}",  # other tests' exports on the shared stack
        "AXIS_TRAINER__WORK_DIR": str(tmp_path_factory.mktemp("trainer-work")),
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in values.items():
            mp.setenv(k, v)
        yield values


def _admin_conninfo() -> str:
    """As the operator (the audit tool's admin role, every schema): the promotion audit and scores live in the
    promote and inference services' schemas, which the trainer's role may not read."""
    from axis_adapters.settings import ServiceSettings

    return ServiceSettings(_env_file=None).postgres.conninfo()  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def settings(env: dict[str, str]) -> TrainerSettings:
    return TrainerSettings(_env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def registry(settings: TrainerSettings) -> ModelRegistry:
    return ModelRegistry(settings.mlflow.tracking_uri)


def _row(uri: str, data: bytes, label: str, mode: str, plate: str, well: str, split: str, sub: str) -> dict[str, Any]:
    return {
        "image_uri": uri,
        "sha256": hashlib.sha256(data).hexdigest(),
        "label": label,
        "label_source": "agreement",
        "imaging_mode": mode,
        "plate_barcode": plate,
        "well": well,
        "drop": 1,
        "inspection_id": f"{plate}-{well}",
        "imaged_at": "2026-11-01T00:00:00.000000Z",
        "split": split,
        "sub_type": sub,
    }


def _put_manifest(store: MinioObjectStore, key: str, rows: list[dict[str, Any]]) -> tuple[str, str]:
    data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
    uri = f"{DATASETS}/{key}/manifest.jsonl"
    store.put_bytes(uri, data, content_type="application/x-ndjson")
    return uri, hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def datasets(settings: TrainerSettings) -> Iterator[dict[str, tuple[str, str]]]:
    """Synthetic drops in S3; a training manifest (train/val plates), a frozen test set in `datasets`, bad ones."""
    store = MinioObjectStore(settings.s3)
    splits = {"train": (f"TR{RUN}", 144, 0), "val": (f"VA{RUN}", 48, 10_000), "test": (f"TE{RUN}", 48, 20_000)}
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in splits}
    for split, (plate, n, seed0) in splits.items():
        for i in range(n):
            spec = DropSpec(outcome=OUTCOMES[i % len(OUTCOMES)], drop_seed=seed0 + i)
            well = f"{'ABCDEFGH'[(i // 12) % 8]}{i % 12 + 1}"
            for mode in ("visible", "uv"):
                data = to_png_bytes(render(spec, DOMAIN_A, mode, seed0 + i, size=(SIZE, SIZE)))
                uri = f"{PREFIX}/{plate}/{i}-{mode}.png"
                store.put_bytes(uri, data, content_type="image/png")
                rows[split].append(_row(uri, data, spec.label, mode, plate, well, split, str(spec.subtype)))
    others = [r for r in rows["train"] + rows["val"] if r["label"] == "other"]
    out = {
        "train": _put_manifest(store, "train", rows["train"] + rows["val"]),
        "test": _put_manifest(store, "test", rows["test"]),
        "broken": _put_manifest(
            store, "broken", rows["train"] + rows["val"] + [{**rows["train"][0], "image_uri": f"{PREFIX}/gone.png"}]
        ),
        "one_class": _put_manifest(store, "one-class", others),
    }
    test_uri, test_sha = out["test"]
    with psycopg.connect(settings.postgres.conninfo(), autocommit=True) as conn:
        # the frozen test set as the trainer learns it from DatasetExported(purpose=test): its own test_sets
        conn.execute(
            "INSERT INTO test_sets (dataset_name, dataset_version, manifest_uri, manifest_sha256, exported_at) "
            "VALUES (%s, 'v1', %s, %s, now())",
            (f"test-{RUN}", test_uri, test_sha),
        )
    yield out
    with psycopg.connect(settings.postgres.conninfo(), autocommit=True) as conn:
        conn.execute("DELETE FROM test_sets WHERE dataset_name = %s", (f"test-{RUN}",))


@pytest.fixture(scope="module")
async def trainer(settings: TrainerSettings, datasets: Any) -> AsyncIterator[RunningTrainer]:
    """The trainer service on this event loop (real broker, consumer group, MLflow, S3, PostgreSQL)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    running = await RunningTrainer.start(settings, say=print)
    yield running
    await running.stop()
    torch.set_num_threads(threads)


async def _publish(settings: TrainerSettings, name: str, manifest: tuple[str, str]) -> DatasetExported:
    event = DatasetExported(
        producer="trainer-it",
        dataset_name=f"{name}-{RUN}",
        dataset_version="v1",
        manifest_uri=manifest[0],
        manifest_sha256=manifest[1],
        qc_report_uri=f"{DATASETS}/{name}/qc.json",
    )
    broker = make_broker(settings.kafka)
    async with broker:
        await broker.start()
        await publish_event(broker, event)
    return event


async def _events(
    settings: TrainerSettings, topic: str, want: Callable[[dict[str, Any]], bool], n: int, within_s: float
) -> list[dict[str, Any]]:
    """Read ``topic`` from the beginning until ``n`` messages match ``want`` (or fail after ``within_s`` seconds)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=settings.kafka.bootstrap_servers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[dict[str, Any]] = []
    deadline = time.monotonic() + within_s
    try:
        while len(found) < n:
            if time.monotonic() > deadline:
                pytest.fail(f"only {len(found)} of {n} expected messages on {topic} after {within_s} s")
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for rec in records:
                    body = json.loads(rec.value)
                    if want(body):
                        found.append(body)
    finally:
        await consumer.stop()
    return found


async def test_exported_dataset_becomes_a_challenger_and_promotion_makes_it_champion(
    trainer: RunningTrainer, settings: TrainerSettings, registry: ModelRegistry, datasets: Any
) -> None:
    names = {settings.mlflow.visible_model: "visible", settings.mlflow.uv_model: "uv"}
    await _publish(settings, "train", datasets["train"])
    registered = await _events(settings, topics.MODEL_REGISTERED, lambda b: b["model_name"] in names, 2, 600)
    assert {ModelRegistered.model_validate(b).imaging_mode.value for b in registered} == {"visible", "uv"}

    vis = settings.mlflow.visible_model
    challenger = registry.get_alias_version(vis, CHALLENGER)
    assert challenger is not None and challenger.version == "1"
    tags = challenger.tags
    assert tags["dataset_version"] == "v1" and tags["dataset_name"] == f"train-{RUN}"
    assert tags["test_set"] == f"test-{RUN}@v1"  # found in the datasets table
    assert tags["git_commit"] and "torch=" in tags["packages"] and tags["parent_version"] == ""
    assert 0.0 <= float(tags["threshold"]) <= 1.0
    run = registry.client.get_run(challenger.run_id)
    m = run.data.metrics
    for key in ("test_recall", "test_precision", "test_balanced_accuracy", "test_f1", "val_balanced_accuracy"):
        assert key in m
    assert any(k.startswith("test_recall_") for k in m)  # per-sub-type recall
    assert len(registry.client.get_metric_history(run.info.run_id, "val_balanced_accuracy")) == EPOCHS
    assert m["test_balanced_accuracy"] > 0.6  # it learned something on the held-out plates
    artifacts = {a.path for a in registry.client.list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "pr_curve.png", "evaluation.json", "bundle"} <= artifacts
    assert {"test_predictions.jsonl", "evaluation_fused.json", "fused_confusion_matrix.png"} <= artifacts
    preds = registry.read_run_text(run.info.run_id, "test_predictions.jsonl")
    assert preds is not None
    lines = [json.loads(line) for line in preds.splitlines()]
    assert len(lines) == int(run.data.params["n_test"]) and {x["model"] for x in lines} == {"new"}
    assert all(x["inspection_id"] and x["mode"] == "visible" for x in lines)
    assert 0.0 <= m["fused_test_recall"] <= 1.0 and "fused_test_balanced_accuracy" in m
    assert "metric.fused_test_recall" in registry.version(vis, "1").tags
    inputs = {(d.dataset.name, d.dataset.digest) for d in run.inputs.dataset_inputs}
    assert (f"train-{RUN}@v1", datasets["train"][1][:36]) in inputs
    assert run.info.status == "FINISHED"

    assert (
        await asyncio.to_thread(cli_main, ["promote", vis, "1", "--by", "ana", "--reason", "first trained model"]) == 0
    )
    champion = registry.champion(vis)
    assert champion is not None and champion.version == "1" and champion.tags["promoted_by"] == "ana"
    with psycopg.connect(_admin_conninfo()) as conn:
        row = conn.execute(
            "SELECT promoted_by, reason, forced FROM model_promotions WHERE model_name = %s AND version = '1'", (vis,)
        ).fetchone()
    assert row == ("ana", "first trained model", False)
    promoted = await _events(settings, topics.MODEL_PROMOTED, lambda b: b["model_name"] == vis, 1, 60)
    assert ModelPromoted.model_validate(promoted[0]).promoted_by == "ana"


async def test_broken_or_one_class_dataset_is_refused_and_registers_nothing(
    trainer: RunningTrainer, settings: TrainerSettings, registry: ModelRegistry, datasets: Any
) -> None:
    vis = settings.mlflow.visible_model
    before = len(registry.latest_versions(vis))
    broken = await _publish(settings, "broken", datasets["broken"])
    one_class = await _publish(settings, "one-class", datasets["one_class"])
    ids = {str(broken.event_id), str(one_class.event_id)}

    def ours(body: dict[str, Any]) -> bool:
        return body["source_topic"] == topics.DATASET_EXPORTED and json.loads(body["raw_value"])["event_id"] in ids

    letters = [DeadLetter.model_validate(b) for b in await _events(settings, topics.DEAD_LETTER, ours, 2, 300)]
    errors = " | ".join(dl.error for dl in letters)
    assert f"{PREFIX}/gone.png does not exist" in errors
    assert "has no 'crystal' images" in errors
    assert len(registry.latest_versions(vis)) == before
    exp = registry.client.get_experiment_by_name(settings.mlflow.experiment)
    failed = registry.client.search_runs([exp.experiment_id], "attributes.status = 'FAILED'")
    assert any("gone.png" in r.data.tags.get("error", "") for r in failed)


async def test_hand_run_from_champion_then_a_worse_version_is_refused_unless_forced(
    trainer: RunningTrainer, settings: TrainerSettings, registry: ModelRegistry, datasets: Any
) -> None:
    vis = settings.mlflow.visible_model
    if registry.champion(vis) is None:
        pytest.skip("needs the champion of the first test")
    uri = datasets["train"][0]
    common = [
        "train",
        "--manifest-uri",
        uri,
        "--dataset",
        f"hand-{RUN}",
        "--dataset-version",
        "v2",
        "--mode",
        "visible",
    ]
    assert await asyncio.to_thread(trainer_main, [*common, "--from", "champion", "--epochs", "2"]) == 0
    v2 = registry.get_alias_version(vis, CHALLENGER)
    assert v2 is not None and v2.tags["parent_version"] == "1" and v2.tags["champion_version_at_training"] == "1"
    # a clearly worse version: one tiny step from the random base
    worse = [*common, "--from", "base", "--max-steps", "1", "--lr", "1e-7"]
    assert await asyncio.to_thread(trainer_main, worse) == 0
    v3 = registry.get_alias_version(vis, CHALLENGER)
    assert v3 is not None and v3.version == "3"
    champion_ba = float(v3.tags["champion_metric.test_balanced_accuracy"])
    print(f"worse v3 test BA {v3.metrics['test_balanced_accuracy']:.3f} vs champion {champion_ba:.3f}")
    assert v3.metrics["test_balanced_accuracy"] < champion_ba - 0.02
    # the bootstrap gate runs on the stored predictions of v3 and of champion v1 (measured in v3's run)
    dry = ["promote", vis, "3", "--by", "bob", "--reason", "try", "--dry-run"]
    assert await asyncio.to_thread(cli_main, dry) == 1
    report = registry.read_run_text(str(v3.run_id), "gate/vs_champion_v1/gate_report.json")
    assert report is not None and json.loads(report)["verdict"] == "refuse"
    assert {s["scope"] for s in json.loads(report)["scopes"]} >= {"visible", "fused"}
    print(registry.read_run_text(str(v3.run_id), "gate/vs_champion_v1/gate_report.txt"))
    assert registry.champion(vis).version == "1"  # type: ignore[union-attr]
    assert await asyncio.to_thread(cli_main, ["promote", vis, "3", "--by", "bob", "--reason", "try"]) == 1
    assert registry.champion(vis).version == "1"  # type: ignore[union-attr]
    assert (
        await asyncio.to_thread(
            cli_main, ["promote", vis, "3", "--by", "bob", "--reason", "forced on purpose", "--force"]
        )
        == 0
    )
    assert registry.champion(vis).version == "3"  # type: ignore[union-attr]


async def test_audit_names_the_scoring_version_and_who_promoted_it(
    settings: TrainerSettings, registry: ModelRegistry
) -> None:
    from axis_cli.audit import audit

    vis = settings.mlflow.visible_model
    if registry.champion(vis) is None:
        pytest.skip("needs the promotion of the first test")
    image_event, uri = uuid.uuid4(), f"{PREFIX}/audited.png"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
        conn.execute(
            "INSERT INTO images (image_event_id, inspection_id, plate_barcode, plate_type, well, drop_no, "
            "imaging_mode, image_uri, imager_id, imaged_at) "
            "VALUES (%s, %s, %s, '96', 'A1', 1, 'visible', %s, 'imager-1', now())",
            (image_event, f"AUD{RUN}", f"AUD{RUN}", uri),
        )
        conn.execute(
            "INSERT INTO image_scores (image_event_id, inspection_id, imaging_mode, probability, threshold, "
            "model_name, model_version) VALUES (%s, %s, 'visible', 0.91, 0.4, %s, '1')",
            (image_event, f"AUD{RUN}", vis),
        )
        rows = audit(conn, image_uri=uri)
    assert [(r.model_version, r.promoted_by, r.reason) for r in rows] == [("1", "ana", "first trained model")]
    assert await asyncio.to_thread(cli_main, ["audit", "--inspection", f"AUD{RUN}"]) == 0
