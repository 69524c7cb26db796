"""``python -m axis_trainer`` runs the service; ``python -m axis_trainer train …`` trains by hand.

Hand run example::

    python -m axis_trainer train --manifest-uri s3://axis-datasets/train/v3/manifest.jsonl \\
        --dataset train --dataset-version v3 --mode visible --epochs 5 --from champion
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from axis_adapters.settings import load_settings

from axis_trainer.settings import TrainerSettings


def _apply_threads(settings: TrainerSettings) -> None:
    if settings.trainer.torch_threads:
        import torch

        torch.set_num_threads(settings.trainer.torch_threads)


def serve() -> int:
    """Run the FastStream service until interrupted."""
    from axis_trainer.app import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(TrainerSettings)
    _apply_threads(settings)
    asyncio.run(create_app(settings).run())
    return 0


def parse_train_args(argv: Sequence[str]) -> argparse.Namespace:
    """Options of ``train``; unset hyper-parameters come from AXIS_TRAINER__* settings."""
    p = argparse.ArgumentParser(prog="python -m axis_trainer train", description="train one dataset by hand")
    p.add_argument("--manifest-uri", required=True, help="s3://… manifest (JSONL) of the training dataset")
    p.add_argument("--manifest-sha256", default=None, help="refuse the manifest if its sha256 differs")
    p.add_argument("--dataset", default="manual", help="dataset name (recorded)")
    p.add_argument("--dataset-version", default="manual", help="dataset version (recorded)")
    p.add_argument("--mode", action="append", choices=["visible", "uv"], help="train only this mode (repeatable)")
    p.add_argument("--from", dest="start_from", default=None, help="champion | base | PATH to a bundle directory")
    p.add_argument("--test-manifest-uri", default=None, help="frozen test set (default: the datasets table)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--grad-accum", type=int)
    p.add_argument("--max-steps", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--target-recall", type=float)
    p.add_argument("--device", default=None, help="auto | cpu | cuda")
    p.add_argument("--no-publish", action="store_true", help="do not publish ModelRegistered")
    return p.parse_args(argv)


def train(argv: Sequence[str]) -> int:
    """Hand run: train, register (alias challenger), publish ModelRegistered; 1 when the dataset is unusable."""
    from axis_trainer.app import build_trainer
    from axis_trainer.pipeline import DatasetRef, TrainingFailed, TrainRequest, run_training

    args = parse_train_args(argv)
    settings = load_settings(TrainerSettings)
    _apply_threads(settings)
    overrides = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "grad_accum": args.grad_accum,
            "max_steps": args.max_steps,
            "seed": args.seed,
            "target_recall": args.target_recall,
            "device": args.device,
        }.items()
        if v is not None
    }
    settings.trainer = settings.trainer.model_copy(update=overrides)
    trainer = build_trainer(settings, say=lambda line: print(line, flush=True))
    test = DatasetRef("test-set", "manual", args.test_manifest_uri) if args.test_manifest_uri else None
    request = TrainRequest(
        dataset=DatasetRef(args.dataset, args.dataset_version, args.manifest_uri, args.manifest_sha256),
        modes=tuple(args.mode or ()),
        start_from=args.start_from or settings.trainer.start_from,
        test_set=test,
    )
    try:
        outcomes = run_training(trainer, request)
    except TrainingFailed as exc:
        print(f"train: {exc}", file=sys.stderr)
        return 1
    if not args.no_publish:
        asyncio.run(_publish(settings, [o.event(request.dataset) for o in outcomes]))
    for o in outcomes:
        print(f"{o.model_name} v{o.version.version}: run {o.run_id}, threshold {o.test.threshold:.3f}")
    return 0


async def _publish(settings: TrainerSettings, events: list) -> None:  # type: ignore[type-arg]
    from axis_adapters.kafka import make_broker, publish_event

    from axis_trainer.app import publish_to

    broker = make_broker(settings.kafka)
    publisher = publish_to(broker)
    async with broker:
        await broker.start()
        for event in events:
            await publish_event(publisher, event)


def main(argv: Sequence[str] | None = None) -> int:
    """Dispatch: no arguments → service; ``train`` → hand run."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] == "serve":
        return serve()
    if args[0] == "train":
        return train(args[1:])
    print("usage: python -m axis_trainer [serve] | train --manifest-uri URI [options]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
