"""One training job: dataset → per-mode fine-tune → test-set evaluation vs champion → MLflow run → registry.

All data problems are found before any training starts (manifest, classes, every image URI), so a broken
dataset registers nothing. Each mode gets its own MLflow run; a failed run is marked FAILED with the error.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from axis_adapters.objectstore import BucketGuard, ObjectStore
from axis_adapters.registry import CHALLENGER, ModelRegistry, RegisteredVersion, metric_tags
from axis_contracts import ImagingMode, ModelRegistered
from axis_core.fused_eval import PREDICTIONS_ARTIFACT, Prediction, to_jsonl
from axis_core.metrics import BinaryMetrics
from axis_model.bundle import load_bundle, save_bundle
from axis_model.classifier import CrystalClassifier, build_classifier
from axis_model.finetune import EpochStats, Progress, TrainConfig, evaluate, train_mode
from axis_model.spec import CRYSTAL_INDEX, BaseSpec, LoraSpec

from axis_trainer import tracking
from axis_trainer.data import DatasetError, ModeData, TrainRow, check_trainable, load_images, modes_of, read_manifest
from axis_trainer.evaluation import fmt_metrics, log_fused, predictions_of, test_summary
from axis_trainer.settings import TrainerOptions

log = logging.getLogger("axis_trainer")
PRODUCER = "axis-trainer"
VAL_SPLITS = ("val", "validation")


class TrainingFailed(RuntimeError):
    """The job stopped; nothing was registered for the modes named in the message."""


@dataclass(frozen=True)
class DatasetRef:
    """A dataset version and its manifest."""

    name: str
    version: str
    manifest_uri: str
    manifest_sha256: str | None = None


@dataclass(frozen=True)
class TrainRequest:
    """What to train: a dataset, optional mode subset, where to start from, which test set to use."""

    dataset: DatasetRef
    modes: tuple[str, ...] = ()
    start_from: str = "champion"  # champion | base | path to a bundle directory
    test_set: DatasetRef | None = None
    source_event_id: str | None = None  # DatasetExported event id, tagged on versions (redelivery dedupe)
    skip_modes: tuple[str, ...] = ()  # modes already registered for this event


@dataclass
class ModeOutcome:
    """Result of one mode: the registered version and both evaluations on the test set."""

    mode: str
    model_name: str
    run_id: str
    version: RegisteredVersion
    test: BinaryMetrics
    champion_version: str | None = None
    champion_test: BinaryMetrics | None = None
    steps: int = 0
    predictions: list[Prediction] = field(default_factory=list)
    champion_predictions: list[Prediction] = field(default_factory=list)

    def event(self, dataset: DatasetRef) -> ModelRegistered:
        """The ModelRegistered event announcing this version."""
        return ModelRegistered(
            producer=PRODUCER,
            model_name=self.model_name,
            version=self.version.version,
            imaging_mode=ImagingMode(self.mode),
            alias=CHALLENGER,
            run_id=self.run_id,
            dataset_name=dataset.name,
            dataset_version=dataset.version,
            threshold=self.test.threshold,
            metrics=test_summary(self.test),
        )


@dataclass
class Trainer:
    """Dependencies of a training job, wired once by the entry point."""

    store: ObjectStore
    registry: ModelRegistry
    base: BaseSpec
    options: TrainerOptions
    model_names: dict[str, str]
    experiment: str = "axis-loop"
    find_test_set: Callable[[], DatasetRef | None] = lambda: None
    say: Callable[[str], None] = print
    work_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="axis-trainer-")))
    allowed_buckets: list[str] = field(default_factory=lambda: ["axis-images", "axis-datasets"])

    def __post_init__(self) -> None:
        # a DatasetExported event names the manifest: never let it make us read other buckets
        self.store = BucketGuard(self.store, self.allowed_buckets)

    def config(self) -> TrainConfig:
        """TrainConfig from the options."""
        o = self.options
        return TrainConfig(
            epochs=o.epochs,
            batch_size=o.batch_size,
            lr=o.lr,
            grad_accum=o.grad_accum,
            target_recall=o.target_recall,
            seed=o.seed,
            max_steps=o.max_steps,
            log_every=o.log_every,
            device=o.device,
        )


@dataclass
class _Prepared:
    mode: str
    classifier: CrystalClassifier
    start: str
    parent: RegisteredVersion | None
    champion_version: RegisteredVersion | None
    champion: CrystalClassifier | None
    train: ModeData
    val: ModeData
    test: ModeData


def _start_model(
    t: Trainer, request: TrainRequest, mode: str, current: RegisteredVersion | None
) -> tuple[CrystalClassifier, str, RegisteredVersion | None]:
    """The model to fine-tune: the champion's adapter, a named bundle, or a fresh adapter on the base."""
    name = t.model_names[mode]
    lora = LoraSpec(r=t.options.lora_r, alpha=t.options.lora_alpha)
    parent: RegisteredVersion | None = None
    torch.manual_seed(t.options.seed)  # fresh LoRA matrices come from the global RNG: same seed, same start
    if request.start_from == "champion" and current is not None:
        bundle = t.registry.download_bundle(name, current.version, t.work_dir / f"{name}-v{current.version}")
        clf, start, parent = load_bundle(bundle, base_override=t.base), f"champion:{name}/{current.version}", current
    elif request.start_from not in ("champion", "base"):
        clf, start = load_bundle(request.start_from, base_override=t.base), f"bundle:{request.start_from}"
    else:
        return build_classifier(t.base, lora, modes=[mode]), "base", None
    if mode not in clf.modes:
        clf.add_mode(mode, lora)
    return clf, start, parent


def _prepare(t: Trainer, request: TrainRequest) -> tuple[list[_Prepared], str, DatasetRef, str]:
    rows, sha = read_manifest(t.store, request.dataset.manifest_uri, expected_sha256=request.dataset.manifest_sha256)
    test_ref = request.test_set or t.find_test_set()
    if test_ref is None:
        raise DatasetError(
            "no frozen test set: export a dataset with purpose=test or set AXIS_TRAINER__TEST_MANIFEST_URI"
        )
    test_rows, test_sha = read_manifest(t.store, test_ref.manifest_uri, expected_sha256=test_ref.manifest_sha256)
    leaked = sorted({r.plate for r in rows if r.plate} & {r.plate for r in test_rows if r.plate})
    if leaked:
        raise DatasetError(f"training rows come from test-set plates {leaked[:5]}: the test set must stay unseen")
    modes = [m for m in (list(request.modes) or modes_of(rows)) if m not in request.skip_modes]
    unknown = [m for m in modes if m not in t.model_names]
    if unknown:
        raise DatasetError(f"no registered model name configured for mode(s) {unknown}")
    prepared = []
    for mode in modes:
        train_rows = [r for r in rows if r.mode == mode and r.split == "train"]
        val_rows = [r for r in rows if r.mode == mode and r.split in VAL_SPLITS]
        check_trainable(train_rows, val_rows, mode)
        mode_test: list[TrainRow] = [r for r in test_rows if r.mode == mode]
        if not mode_test:
            raise DatasetError(f"the test set {test_ref.name}@{test_ref.version} has no {mode} images")
        current = t.registry.champion(t.model_names[mode])
        clf, start, parent = _start_model(t, request, mode, current)
        champion: CrystalClassifier | None = None
        if current is not None and parent is not None:
            champion = clf  # the starting model is the champion: evaluated before training
        elif current is not None:
            path = t.registry.download_bundle(t.model_names[mode], current.version, t.work_dir / f"champ-{mode}")
            champion = load_bundle(path, base_override=t.base)
        cfg, limit = clf.preprocess, t.options.max_image_bytes
        t.say(f"{mode}: loading {len(train_rows)} train, {len(val_rows)} val, {len(mode_test)} test images")
        prepared.append(
            _Prepared(
                mode=mode,
                classifier=clf,
                start=start,
                parent=parent,
                champion_version=current,
                champion=champion,
                train=load_images(t.store, train_rows, cfg, max_bytes=limit),
                val=load_images(t.store, val_rows, cfg, max_bytes=limit),
                test=load_images(t.store, mode_test, cfg, max_bytes=limit),
            )
        )
    return prepared, sha, test_ref, test_sha


def _fail_run(t: Trainer, request: TrainRequest, mode: str, error: BaseException) -> str:
    client = t.registry.client
    run = client.create_run(
        tracking.experiment_id(client, t.experiment),
        run_name=f"{t.model_names.get(mode, mode)}-{request.dataset.name}-{request.dataset.version}",
        tags={"imaging_mode": mode, "dataset_name": request.dataset.name, "dataset_version": request.dataset.version},
    )
    client.set_tag(run.info.run_id, "error", f"{type(error).__name__}: {error}"[:5000])
    client.set_terminated(run.info.run_id, status="FAILED")
    return str(run.info.run_id)


def run_training(t: Trainer, request: TrainRequest) -> list[ModeOutcome]:
    """Train, evaluate, log and register every mode of the request; raises TrainingFailed on bad data."""
    try:
        prepared, sha, test_ref, test_sha = _prepare(t, request)
    except DatasetError as exc:
        modes = list(request.modes) or ["dataset"]
        run_ids = [_fail_run(t, request, m, exc) for m in modes]
        t.say(f"training stopped: {exc} (MLflow run {', '.join(run_ids)} marked FAILED; nothing registered)")
        raise TrainingFailed(str(exc)) from exc
    outcomes = []
    for p in prepared:
        outcomes.append(_train_one(t, request, p, sha, test_ref, test_sha))
    log_fused(t.registry, t.say, outcomes)
    return outcomes


def _train_one(
    t: Trainer, request: TrainRequest, p: _Prepared, sha: str, test_ref: DatasetRef, test_sha: str
) -> ModeOutcome:
    client = t.registry.client
    name = t.model_names[p.mode]
    config = t.config()
    run = client.create_run(
        tracking.experiment_id(client, t.experiment),
        run_name=f"{name}-{request.dataset.name}-{request.dataset.version}",
        tags={"imaging_mode": p.mode, "dataset_name": request.dataset.name, "dataset_version": request.dataset.version},
    )
    run_id = str(run.info.run_id)
    try:
        return _run_mode(t, request, p, sha, test_ref, test_sha, run_id, name, config)
    except BaseException as exc:
        client.set_tag(run_id, "error", f"{type(exc).__name__}: {exc}"[:5000])
        client.set_terminated(run_id, status="FAILED")
        raise


def _run_mode(
    t: Trainer,
    request: TrainRequest,
    p: _Prepared,
    sha: str,
    test_ref: DatasetRef,
    test_sha: str,
    run_id: str,
    name: str,
    config: TrainConfig,
) -> ModeOutcome:
    client = t.registry.client
    commit, packages = tracking.git_commit(), tracking.package_versions()
    params: dict[str, Any] = {**config.model_dump(), "mode": p.mode, "model_name": name, "start_from": p.start}
    params.update(
        base=t.base.path or t.base.kind, base_sha256=p.classifier.base_sha256, image_size=p.classifier.preprocess.size
    )
    params.update(n_train=len(p.train.rows), n_val=len(p.val.rows), n_test=len(p.test.rows), git_commit=commit)
    params.update({f"pkg_{k}": v for k, v in packages.items()})
    tracking.log_params(client, run_id, params)
    ds = request.dataset
    tracking.log_dataset(
        client, run_id, name=ds.name, version=ds.version, manifest_uri=ds.manifest_uri, sha256=sha, context="train"
    )
    tracking.log_dataset(
        client,
        run_id,
        name=test_ref.name,
        version=test_ref.version,
        manifest_uri=test_ref.manifest_uri,
        sha256=test_sha,
        context="test",
    )
    champ_test, champ_probs, champ = None, None, p.champion_version
    if p.champion is not None and champ is not None:  # before training: p.champion may be the model we train
        threshold = champ.threshold if champ.threshold is not None else p.champion.thresholds.get(p.mode, 0.5)
        champ_test, champ_probs = evaluate(
            p.champion,
            p.mode,
            p.test.pixels,
            p.test.label_ids,
            threshold,
            sub_types=_subs(p.test),
            device=config.device,
        )
        t.say(f"{p.mode}: champion v{champ.version} on the test set: {fmt_metrics(champ_test)}")

    def on_progress(pr: Progress) -> None:
        t.say(f"{p.mode}: {pr.line()}")
        tracking.log_metrics(client, run_id, {"train_loss": pr.loss, "lr": pr.lr}, step=pr.step)

    def on_epoch(e: EpochStats) -> None:
        t.say(f"{p.mode}: epoch {e.epoch} train loss {e.train_loss:.4f} val {fmt_metrics(e.val)}")
        vals = {f"val_{k}": v for k, v in e.val.scalars().items() if k != "threshold"}
        tracking.log_metrics(client, run_id, {"epoch_train_loss": e.train_loss, **vals}, step=e.epoch)

    result = train_mode(
        p.classifier,
        p.mode,
        p.train.pixels,
        p.train.label_ids,
        p.val.pixels,
        p.val.label_ids,
        config,
        on_progress=on_progress,
        on_epoch=on_epoch,
    )
    test, probs = evaluate(
        p.classifier,
        p.mode,
        p.test.pixels,
        p.test.label_ids,
        result.threshold.threshold,
        sub_types=_subs(p.test),
        device=config.device,
    )
    t.say(
        f"{p.mode}: new model on the test set: {fmt_metrics(test)} "
        f"(threshold {test.threshold:.3f}, epoch {result.best_epoch})"
    )
    metrics = {**test_summary(test), **{f"test_{k}": v for k, v in test.scalars().items() if k.startswith("recall_")}}
    metrics.update(
        best_epoch=result.best_epoch, threshold=test.threshold, steps=result.steps, train_seconds=result.seconds
    )
    metrics.update({f"selected_val_{k}": v for k, v in result.val_metrics.scalars().items() if k != "threshold"})
    if champ_test is not None:
        metrics.update({f"champion_{k}": v for k, v in test_summary(champ_test).items()})
    tracking.log_metrics(client, run_id, metrics)
    new_preds = predictions_of(p.test, p.mode, probs, test.threshold)
    champ_preds: list[Prediction] = []
    lines = to_jsonl(new_preds, model="new")
    if champ_test is not None and champ_probs is not None and champ is not None:
        champ_preds = predictions_of(p.test, p.mode, champ_probs, champ_test.threshold)
        lines += to_jsonl(champ_preds, model="champion", version=champ.version)
    client.log_text(run_id, lines, PREDICTIONS_ARTIFACT)
    truth = p.test.label_ids == CRYSTAL_INDEX
    tracking.log_figure(
        client, run_id, tracking.confusion_figure(test, f"{name} new, test set"), "confusion_matrix.png"
    )
    curves = {"new": (truth, probs)}
    if champ_test is not None and champ_probs is not None and champ is not None:
        curves[f"champion v{champ.version}"] = (truth, champ_probs)
        fig = tracking.confusion_figure(champ_test, f"{name} champion v{champ.version}, test set")
        tracking.log_figure(client, run_id, fig, "champion_confusion_matrix.png")
    tracking.log_figure(
        client, run_id, tracking.pr_figure(curves, f"{name} on {test_ref.name}@{test_ref.version}"), "pr_curve.png"
    )
    client.log_dict(
        run_id,
        {
            "new": test.to_dict(),
            "champion": champ_test.to_dict() if champ_test else None,
            "champion_version": champ.version if champ else None,
            "history": [{"epoch": e.epoch, "train_loss": e.train_loss, **e.val.scalars()} for e in result.history],
        },
        "evaluation.json",
    )
    bundle_dir = t.work_dir / f"bundle-{run_id}"
    save_bundle(
        p.classifier, bundle_dir, modes=[p.mode], metadata={"run_id": run_id, "dataset": f"{ds.name}@{ds.version}"}
    )
    tags = {
        "source_event_id": request.source_event_id or "",
        "imaging_mode": p.mode,
        "dataset_name": ds.name,
        "dataset_version": ds.version,
        "manifest_sha256": sha,
        "test_set": f"{test_ref.name}@{test_ref.version}",
        "threshold": f"{test.threshold:.6g}",
        "parent_version": p.parent.version if p.parent else "",
        "start_from": p.start,
        "git_commit": commit,
        "packages": ",".join(f"{k}={v}" for k, v in packages.items()),
        **metric_tags(test_summary(test)),
    }
    if champ_test is not None and champ is not None:
        tags.update({"champion_version_at_training": champ.version})
        tags.update({f"champion_{k}": v for k, v in metric_tags(test_summary(champ_test)).items()})
    version = t.registry.register_bundle(name, bundle_dir, run_id, tags)
    t.registry.set_alias(name, CHALLENGER, version.version)
    client.set_terminated(run_id, status="FINISHED")
    t.say(f"{p.mode}: registered {name} v{version.version} (alias {CHALLENGER}), MLflow run {run_id}")
    return ModeOutcome(
        mode=p.mode,
        model_name=name,
        run_id=run_id,
        version=version,
        test=test,
        champion_version=champ.version if champ and champ_test else None,
        champion_test=champ_test,
        steps=result.steps,
        predictions=new_preds,
        champion_predictions=champ_preds,
    )


def _subs(data: ModeData) -> list[str | None] | None:
    return data.sub_types if data.has_sub_types else None
