"""``python -m axis_cli demo``: one whole Lab-in-the-Loop cycle on the embedded stack, with measured numbers.

Stages: stack up -> base model -> foundation model trained on domain A (champion) -> services started ->
facility-B plates imaged, scored, user-scored, compared, curated -> frozen test set + training set exported ->
the trainer registers a challenger -> promotion -> more facility-B plates scored by the new version ->
the foundation and the new version measured on the held-out facility-B test set (table, plot, last line).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from axis_cli.demo_context import DemoOptions

__all__ = ["DemoOptions", "main", "parse_args"]


def parse_args(argv: Sequence[str] | None = None) -> DemoOptions | None:
    """DemoOptions from the command line (None for ``--stop``, which is handled here)."""
    p = argparse.ArgumentParser(prog="python -m axis_cli demo", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=Path(".axis"), help="stack state, logs, models, plot")
    p.add_argument("--seed", type=int, default=0, help="seeds plates, training and the simulated people")
    p.add_argument("--keep-running", action="store_true", help="leave the stack and the services up at the end")
    p.add_argument("--stop", action="store_true", help="stop what a --keep-running demo left up, then exit")
    p.add_argument(
        "--base-model", default="tiny", help="tiny | base (seeded random DINOv2 configs) | PATH to a saved DINOv2"
    )
    p.add_argument("--foundation-plates", type=int, default=DemoOptions.foundation_plates, help="domain-A plates")
    p.add_argument("--test-plates", type=int, default=DemoOptions.test_plates, help="facility-B test-set plates")
    p.add_argument("--plates", type=int, default=DemoOptions.plates, help="facility-B plates through the loop")
    p.add_argument("--after-plates", type=int, default=DemoOptions.after_plates, help="B plates after promotion")
    p.add_argument("--wells", type=int, default=DemoOptions.wells, help="wells imaged per plate (96: all)")
    p.add_argument("--inspections", type=int, default=DemoOptions.inspections, help="inspections per drop")
    p.add_argument("--foundation-steps", type=int, default=DemoOptions.foundation_steps)
    p.add_argument("--steps", type=int, default=DemoOptions.steps, help="training steps of the loop's fine-tune")
    p.add_argument("--epochs", type=int, default=DemoOptions.epochs, help="epochs (capped by the steps)")
    p.add_argument(
        "--target-recall",
        type=float,
        default=DemoOptions.target_recall,
        help="recall the trainer's decision threshold keeps on validation (foundation and loop)",
    )
    p.add_argument(
        "--similarity-distance",
        type=int,
        default=DemoOptions.similarity_distance,
        help="dataset QC: perceptual-hash distance counted as a near-duplicate in the training export",
    )
    p.add_argument("--lims-error-rate", type=float, default=DemoOptions.lims_error_rate)
    p.add_argument("--uncertain-share", type=float, default=DemoOptions.uncertain_share)
    p.add_argument("--stage-timeout", type=float, default=DemoOptions.stage_timeout, help="seconds per stage")
    p.add_argument(
        "--torch-threads",
        type=int,
        default=DemoOptions.torch_threads,
        help="torch CPU threads per process (1: no OpenMP thrashing while all services share 2 cores)",
    )
    p.add_argument("--force-promotion", action="store_true", help="promote even when the promotion gate refuses")
    a = p.parse_args(argv)
    if a.stop:
        from axis_cli.demo_procs import stop_recorded

        stopped = stop_recorded(a.data_dir.resolve())
        print(f"stopped services: {', '.join(stopped) or 'none'}")
        from axis_stack import down

        down(a.data_dir.resolve())
        return None
    for name in ("foundation_plates", "test_plates", "plates", "after_plates", "wells", "inspections"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    return DemoOptions(
        data_dir=a.data_dir.resolve(),
        seed=a.seed,
        keep_running=a.keep_running,
        base_model=a.base_model,
        foundation_plates=a.foundation_plates,
        test_plates=a.test_plates,
        plates=a.plates,
        after_plates=a.after_plates,
        wells=a.wells,
        inspections=a.inspections,
        foundation_steps=a.foundation_steps,
        steps=a.steps,
        epochs=a.epochs,
        target_recall=a.target_recall,
        similarity_distance=a.similarity_distance,
        lims_error_rate=a.lims_error_rate,
        uncertain_share=a.uncertain_share,
        stage_timeout=a.stage_timeout,
        force_promotion=a.force_promotion,
        torch_threads=a.torch_threads,
    )


def limit_threads(n: int) -> None:
    """CPU threads of torch / OpenMP in this process and (through the environment) in every service."""
    import os

    os.environ["OMP_NUM_THREADS"] = str(n)
    os.environ["MKL_NUM_THREADS"] = str(n)
    import torch

    torch.set_num_threads(n)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo; exit code 0 when the loop closed, 1 on an error, 130 on Ctrl-C."""
    opts = parse_args(argv)
    if opts is None:
        return 0
    from axis_adapters.console import quiet_libraries

    quiet_libraries()
    limit_threads(opts.torch_threads)
    from axis_cli import demo_run

    ctx = None
    code = 1
    try:
        ctx = demo_run.start(opts)
        demo_run.run_stages(ctx)
        code = 0
    except KeyboardInterrupt:
        print("\ninterrupted: shutting down", file=sys.stderr, flush=True)
        code = 130
    except Exception as exc:  # the message says what failed and where its log is
        print(f"\ndemo failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        print(f"logs: {opts.data_dir / 'logs'}", file=sys.stderr, flush=True)
    finally:
        keep = opts.keep_running and code != 130
        t0 = time.monotonic()
        if ctx is not None and keep:
            demo_run.leave_running(ctx)
        elif ctx is not None:
            try:
                demo_run.shutdown(ctx)
            except KeyboardInterrupt:
                demo_run.shutdown(ctx)
        if not keep:
            print(f"[demo] everything stopped ({time.monotonic() - t0:.0f}s)", file=sys.stderr, flush=True)
        if code == 0 and ctx is not None and ctx.last_line:
            print(ctx.last_line, flush=True)
    return code
