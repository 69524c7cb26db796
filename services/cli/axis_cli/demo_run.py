"""The demo's stages in order, each a function over the typed DemoContext (axis_cli.demo_context).

ctx = start(opts)        # stage 1: the stack -> the context
try:
    run_stages(ctx)      # stages 2-10; each prints what it did and leaves its results on ctx
finally:
    shutdown(ctx)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from axis_cli import demo_foundation, demo_loop, demo_promotion, demo_report, demo_services
from axis_cli.demo_context import DemoClock, DemoContext, DemoOptions

if TYPE_CHECKING:
    from axis_stack import StackInfo

leave_running = demo_services.leave_running
shutdown = demo_services.shutdown


def start(opts: DemoOptions, clock: DemoClock | None = None, *, stack: StackInfo | None = None) -> DemoContext:
    """Stage 1: start the embedded stack on the data dir (or use ``stack``, never stopped) -> the run's context."""
    clock = clock or DemoClock()
    clock.stage(1, "embedded stack (broker, PostgreSQL, S3, MLflow)")
    return demo_services.start_stack(opts, clock, stack=stack)


def run_stages(ctx: DemoContext) -> None:
    """Stages 2 to 10."""
    stage = ctx.clock.stage
    stage(2, f"base model ({ctx.opts.base_model})")
    demo_services.prepare_base(ctx)
    stage(3, "foundation model: trained on domain A (public-dataset stand-in), promoted to champion")
    demo_foundation.train_foundation(ctx)
    stage(4, "services: inference, discrepancy, curation, trainer, LIMS and curator simulators")
    demo_loop.plan_facility(ctx)
    demo_services.start_services(ctx)
    stage(5, "facility B: robot -> inference -> LIMS -> discrepancy -> curators")
    demo_loop.facility_round(ctx)
    stage(6, "datasets: frozen facility-B test set, then a training set (exported as admin)")
    demo_loop.export_datasets(ctx)
    stage(7, "trainer: fine-tunes from the champion on the new dataset, registers a challenger")
    demo_promotion.wait_challenger(ctx)
    stage(8, "promotion: the challenger becomes champion; inference switches without a restart")
    demo_promotion.promote(ctx)
    stage(9, "facility B after the promotion: new plates scored by the new version")
    demo_loop.after_round(ctx)
    stage(10, "measured on the held-out facility-B test set")
    demo_report.report(ctx)
