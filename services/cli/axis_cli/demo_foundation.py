"""Demo stage 3: the foundation model, trained on domain A by the trainer's own training function, promoted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from axis_cli.demo_context import DemoContext, model_names, need
from axis_cli.demo_loop import robot_config
from axis_cli.demo_promotion import promote_versions

if TYPE_CHECKING:
    from axis_trainer.settings import TrainerOptions


def trainer_options(ctx: DemoContext, *, steps: int, work: str) -> TrainerOptions:
    """TrainerOptions for the demo's jobs (steps bound the CPU time; the seed follows --seed)."""
    from axis_trainer.settings import TrainerOptions

    o = ctx.opts
    return TrainerOptions(max_steps=steps, epochs=o.epochs, seed=o.seed, work_dir=work, target_recall=o.target_recall)


def train_foundation(ctx: DemoContext) -> None:
    """Domain-A images with known labels -> manifest in S3 -> run_training -> register -> promote to champion."""
    from axis_adapters.registry import ModelRegistry
    from axis_model.spec import BaseSpec
    from axis_trainer.pipeline import DatasetRef, Trainer, TrainRequest, run_training

    from axis_cli.demo_data import foundation_dataset

    o = ctx.opts
    store = ctx.store()
    config = robot_config(ctx, "F", o.foundation_plates, 1, domain="A")
    name = f"foundation-a-{ctx.tag}"
    parts = foundation_dataset(config, store, datasets_bucket="axis-datasets", name=name)
    trainval, test = parts["trainval"], parts["test"]
    counts = {s: sum(1 for r in trainval[2] if r.split == s) for s in ("train", "val")}
    ctx.say(
        f"domain-A dataset {name}: {counts['train']} train, {counts['val']} val, {len(test[2])} test images "
        f"in {trainval[0]}"
    )
    work = ctx.opts.data_dir / "cache" / "trainer-foundation"
    work.mkdir(parents=True, exist_ok=True)
    base_path = need(ctx.base_path, "the base model (stage 2)")
    trainer = Trainer(
        store=store,
        registry=ModelRegistry(ctx.stack.mlflow_uri),
        base=BaseSpec.from_path(str(base_path)),
        options=trainer_options(ctx, steps=o.foundation_steps, work=str(work)),
        model_names=model_names(),
        say=lambda msg: _quiet_say(ctx, msg),
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
        ctx.say(
            f"{out.model_name} v{out.version.version} on domain-A test: recall {m.recall:.1%}, "
            f"balanced accuracy {m.balanced_accuracy:.1%} (threshold {m.threshold:.3f})"
        )
    # the demo starts its story from this foundation, also on a data dir where an earlier run left a champion
    promote_versions(ctx, versions, reason="demo: foundation model trained on domain A", force=True)
    ctx.foundation_versions = versions


def _quiet_say(ctx: DemoContext, msg: str) -> None:
    # the trainer reports every few steps; the demo shows epochs, the test results and the registration
    if ": step " in msg:
        return
    ctx.say(f"  trainer: {msg}")
