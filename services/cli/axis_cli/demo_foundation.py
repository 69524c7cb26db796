"""Demo stage 3: the foundation model, trained on domain A by the trainer's own training function, promoted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from axis_cli.demo_loop import model_names, robot_config, store_of

if TYPE_CHECKING:
    from axis_cli.demo_run import DemoRun


def trainer_options(run: DemoRun, *, steps: int, work: str) -> object:
    """TrainerOptions for the demo's jobs (steps bound the CPU time; the seed follows --seed)."""
    from axis_trainer.settings import TrainerOptions

    o = run.opts
    return TrainerOptions(max_steps=steps, epochs=o.epochs, seed=o.seed, work_dir=work, target_recall=o.target_recall)


def train_foundation(run: DemoRun) -> None:
    """Domain-A images with known labels -> manifest in S3 -> run_training -> register -> promote to champion."""
    from axis_adapters.registry import ModelRegistry
    from axis_model.spec import BaseSpec
    from axis_trainer.pipeline import DatasetRef, Trainer, TrainRequest, run_training

    from axis_cli.demo_data import foundation_dataset

    o = run.opts
    store = store_of(run)
    config = robot_config(run, "F", o.foundation_plates, 1, domain="A")
    name = f"foundation-a-{run.tag}"
    parts = foundation_dataset(config, store, datasets_bucket="axis-datasets", name=name)
    trainval, test = parts["trainval"], parts["test"]
    counts = {s: sum(1 for r in trainval[2] if r.split == s) for s in ("train", "val")}
    run.say(
        f"domain-A dataset {name}: {counts['train']} train, {counts['val']} val, {len(test[2])} test images "
        f"in {trainval[0]}"
    )
    work = run.opts.data_dir / "cache" / "trainer-foundation"
    work.mkdir(parents=True, exist_ok=True)
    assert run.base_path is not None
    trainer = Trainer(
        store=store,
        registry=ModelRegistry(run.stack.mlflow_uri),
        base=BaseSpec.from_path(str(run.base_path)),
        options=trainer_options(run, steps=o.foundation_steps, work=str(work)),  # type: ignore[arg-type]
        model_names=model_names(run),
        say=lambda msg: _quiet_say(run, msg),
    )
    request = TrainRequest(
        dataset=DatasetRef(name=name, version="1", manifest_uri=trainval[0], manifest_sha256=trainval[1]),
        start_from="base",
        test_set=DatasetRef(name=f"{name}-test", version="1", manifest_uri=test[0], manifest_sha256=test[1]),
    )
    outcomes = run_training(trainer, request)
    versions: dict[str, str] = {}
    for out in outcomes:
        versions[out.mode] = out.version.version
        m = out.test
        run.say(
            f"{out.model_name} v{out.version.version} on domain-A test: recall {m.recall:.1%}, "
            f"balanced accuracy {m.balanced_accuracy:.1%} (threshold {m.threshold:.3f})"
        )
    from axis_cli.demo_loop import promote_versions

    # the demo starts its story from this foundation, also on a data dir where an earlier run left a champion
    promote_versions(run, versions, reason="demo: foundation model trained on domain A", force=True)
    run.state["foundation_versions"] = versions


def _quiet_say(run: DemoRun, msg: str) -> None:
    # the trainer reports every few steps; the demo shows epochs, the test results and the registration
    if ": step " in msg:
        return
    run.say(f"  trainer: {msg}")
