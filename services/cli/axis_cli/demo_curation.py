"""``python -m axis_cli.demo_curation`` (``make experiment-curation``): does curating likely-wrong agreements pay?

The demo's loop (its stage functions, axis_cli.demo_*), on one embedded stack with the real services, run twice per
seed with the same curator budget; the two arms differ only in the discrepancy service's routing setting:

* disagreements only: ``AXIS_DISCREPANCY__ROUTING__AGREEMENTS_PER_DAY`` off;
* with uncertain agreements: the service also routes up to ``--agreements`` likely-wrong agreements into the queue.

Per seed: the foundation is trained on domain A and promoted (the demo's stage 3, once); a frozen facility-B test
set is rendered (ground-truth labels, the same for both arms). Per arm: the demo's facility-B loop plates (same
pixels in both arms, fresh barcodes) go robot -> inference -> LIMS -> discrepancy -> two simulated curators
labelling the queue in its order (expected value of a label) up to the budget, then the curation export, the
trainer's fine-tune from the champion (the foundation: nothing is promoted here) and its challenger measured fused
per inspection on the test set. The LIMS users' errors are drawn per drop and inspection independently of the
barcodes, so both arms see the same wrong user scores. docs/curation-routing.md says what it measures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from axis_cli.demo_context import DemoContext, DemoOptions
    from axis_cli.demo_eval import VersionEval

from axis_cli.demo_curation_eval import TestSet, measure, test_set

CLEANERS = ("sim-cleaner-1", "sim-cleaner-2")


@dataclass(frozen=True)
class ExperimentOptions:
    """Sizes of one experiment (two arms per seed)."""

    data_dir: Path = Path(".axis/experiment-curation")
    seeds: tuple[int, ...] = (0, 1)
    budget: int = 30  # curator labels per arm, shared by the two curators (consensus of two: budget / 2 items)
    agreements: int = 0  # routed agreements allowed per arm; 0: budget / 2 (as many as the curators can decide)
    max_queue_share: float = 0.5
    foundation_plates: int = 4
    plates: int = 3
    test_plates: int = 2
    wells: int = 24
    inspections: int = 2
    foundation_steps: int = 120
    steps: int = 80
    lims_error_rate: float = 0.05
    uncertain_share: float = 0.1
    foundation_per_seed: bool = False  # train the foundation for every seed (else once, with the first seed)

    @property
    def agreements_per_arm(self) -> int:
        """The routing arm's agreement allowance."""
        return self.agreements or max(1, self.budget // 2)


def neutral_key(inspection_id: str, barcode_prefix: str) -> str:
    """An inspection's id without its run's barcode prefix: the same drop and inspection in every arm."""
    return inspection_id.removeprefix(barcode_prefix + "-")


def erred_truth(truth: Mapping[str, str], barcode_prefix: str, *, error_rate: float, seed: int) -> dict[str, str]:
    """The LIMS truth with the LIMS simulator's own human errors applied, seeded per neutral key (not per barcode)."""
    from axis_simulators.lims import LimsSimulator

    by_key = {neutral_key(iid, barcode_prefix): cls for iid, cls in truth.items()}
    sim = LimsSimulator(truth=by_key, publisher=None, error_rate=error_rate, seed=seed)  # type: ignore[arg-type]
    return {iid: sim.decide(neutral_key(iid, barcode_prefix)) or cls for iid, cls in truth.items()}


def routing_allowance(routed_today: int, per_arm: int) -> int:
    """``agreements_per_day`` for an arm: the day's budget counts every agreement routed today, also earlier arms'."""
    return routed_today + per_arm


def result_line(budget: int, seeds: Sequence[int], before: float, only: float, routed: float) -> str:
    """The experiment's last line (fractions in, percentages out)."""
    return (
        f"curation budget {budget}: balanced accuracy (fused) {before:.1%} -> {only:.1%} (disagreements only) "
        f"vs {before:.1%} -> {routed:.1%} (with uncertain agreements), seeds {' '.join(str(s) for s in seeds)}"
    )


def demo_options(o: ExperimentOptions, seed: int) -> DemoOptions:
    """The demo's options for one seed (sizes of the experiment; the LIMS errors are applied beforehand)."""
    from axis_cli.demo_context import DemoOptions

    return DemoOptions(
        data_dir=o.data_dir.resolve(),
        seed=seed,
        foundation_plates=o.foundation_plates,
        test_plates=o.test_plates,
        plates=o.plates,
        after_plates=1,
        wells=o.wells,
        inspections=o.inspections,
        foundation_steps=o.foundation_steps,
        steps=o.steps,
        lims_error_rate=0.0,
        uncertain_share=o.uncertain_share,
        curator_budget=o.budget // 2,
    )


@dataclass(frozen=True)
class ArmResult:
    """What one arm queued and curated, and its challenger on the test set."""

    queue: dict[str, int]
    evaluation: VersionEval
    refused: str = ""  # the trainer's reason when it refused the arm's dataset (the foundation stays champion)

    @property
    def balanced_accuracy(self) -> float:
        """Fused per-inspection balanced accuracy."""
        e = self.evaluation
        return e.fused.balanced_accuracy if e.fused is not None else e.metrics.balanced_accuracy


_QUEUE = (
    "SELECT count(*) FILTER (WHERE reason = 'disagreement'), count(*) FILTER (WHERE reason <> 'disagreement'), "
    "count(*) FILTER (WHERE status = 'resolved'), "
    "count(*) FILTER (WHERE status = 'resolved' AND reason <> 'disagreement'), "
    "count(*) FILTER (WHERE status = 'resolved' AND resolved_label IN ('crystal', 'other') "
    "AND resolved_label <> ml_label), "
    "count(*) FILTER (WHERE status = 'resolved' AND reason <> 'disagreement' AND resolved_label <> human_label) "
    "FROM curation.discrepancies WHERE plate_barcode = ANY(%s)"
)


def queue_counts(ctx: DemoContext, plates: Sequence[str]) -> dict[str, int]:
    """The arm's queue: disagreements, routed agreements, resolved items, of them agreements, ML labels overturned."""
    import psycopg

    keys = ("disagreements", "routed", "resolved", "resolved_agreements", "model_overturned", "agreements_wrong")
    with psycopg.connect(ctx.stack.postgres_conninfo(), autocommit=True) as conn:
        row = conn.execute(_QUEUE, [list(plates)]).fetchone() or (0,) * len(keys)
    return {k: int(v or 0) for k, v in zip(keys, row, strict=True)}


def routed_today(ctx: DemoContext) -> int:
    """Agreements routed today (UTC), counted as the discrepancy service counts its budget."""
    import psycopg
    from axis_discrepancy.discrepancy_repo import budget_spent

    async def go() -> int:
        async with await psycopg.AsyncConnection.connect(ctx.stack.postgres_conninfo()) as conn:
            return (await budget_spent(conn)).routed_today

    return asyncio.run(go())


def write_lims_truth(ctx: DemoContext, o: ExperimentOptions) -> None:
    """Replace the planned LIMS truth by the erred one (the LIMS simulator then runs with error rate 0)."""
    from axis_cli.demo_context import need

    facility = need(ctx.facility, "the facility plan")
    store = ctx.store()
    truth = json.loads(store.get_bytes(facility.lims_truth_uri))
    prefixes = {c.barcode_prefix or "" for c in facility.batches.values()}
    erred: dict[str, str] = {}
    for prefix in sorted(prefixes):
        part = {k: v for k, v in truth.items() if k.startswith(prefix + "-")}
        erred |= erred_truth(part, prefix, error_rate=o.lims_error_rate, seed=ctx.opts.seed)
    changed = sum(erred[k] != truth[k] for k in erred)
    store.put_bytes(facility.lims_truth_uri, json.dumps(erred).encode(), "application/json")
    ctx.say(f"LIMS users err on {changed} of {len(erred)} inspections (drawn per drop, the same in both arms)")


def clear_queue(ctx: DemoContext) -> int:
    """Take the arm's leftovers out of the queue: two fresh accounts answer ``uncertain`` on every open item.

    Two ``uncertain`` make an item unresolved (it leaves the queue, counts for no user's reliability), so the next
    arm's curators see only their own plates' items. The arm's training set is exported before this.
    """
    import httpx
    from axis_simulators.curator import login, simulate_curator

    from axis_cli.demo_context import need
    from axis_cli.demo_http import ensure_account

    admin = need(ctx.admin, "the admin's curation client")
    total = 0
    for base in CLEANERS:
        user, password = ensure_account(
            ctx.accounts_file,
            base,
            base_url=ctx.curation_url,
            create=lambda u, pw: admin.create_account(u, pw, "curator"),
            suffix=ctx.tag,
        )
        for attempt in range(4):  # a dropped connection (e.g. a 500 of the service) is retried; labelled items stay
            try:
                with login(ctx.curation_url, user, password) as client:
                    total += simulate_curator(client, {}).total
                break
            except httpx.TransportError as exc:
                ctx.say(f"  {user}: {exc!r}; again ({attempt + 1})")
                time.sleep(2)
    return total


def run_arm(
    o: ExperimentOptions, seed: int, arm: str, base: DemoContext, test: TestSet, before: VersionEval
) -> ArmResult:
    """One pass of the demo's loop (stages 4-7) with routing off or on; the challenger measured on the test set."""
    from axis_cli import demo_loop, demo_promotion, demo_services
    from axis_cli.demo_context import DemoClock, need

    route = arm == "with uncertain agreements"
    per_day = routing_allowance(routed_today(base), o.agreements_per_arm) if route else 0
    clock = DemoClock(t0=base.clock.t0, tag=f"{base.tag}{'r' if route else 'd'}")
    ctx = demo_services.start_stack(base.opts, clock, stack=base.stack)
    ctx.base_path, ctx.foundation_versions = base.base_path, base.foundation_versions
    ctx.service_env = {
        "discrepancy": {
            "AXIS_DISCREPANCY__ROUTING__AGREEMENTS_PER_DAY": str(per_day),
            "AXIS_DISCREPANCY__ROUTING__MAX_QUEUE_SHARE": str(o.max_queue_share),
        },
        "trainer": {"AXIS_TRAINER__TEST_MANIFEST_URI": test.manifest_uri},
    }
    refused = ""
    try:
        clock.stage(
            4,
            f"seed {seed}, {arm}: services (agreements_per_day {per_day}: {o.agreements_per_arm if route else 0} "
            "for this arm, the rest routed earlier today)",
        )
        demo_loop.plan_facility(ctx)
        write_lims_truth(ctx, o)
        demo_services.start_services(ctx)
        clock.stage(5, f"seed {seed}, {arm}: facility B loop plates, curators {o.budget // 2} labels each")
        demo_loop.facility_round(ctx, batches=("loop",))
        plates = need(ctx.facility, "the facility plan").plates["loop"]
        queue = queue_counts(ctx, plates)
        ctx.say(f"queue of the loop plates: {queue}")
        clock.stage(6, f"seed {seed}, {arm}: training set exported")
        demo_loop.export_datasets(ctx, test_set=False)
        ctx.say(f"left in the queue, answered uncertain by {', '.join(CLEANERS)}: {clear_queue(ctx)} labels")
        clock.stage(7, f"seed {seed}, {arm}: trainer fine-tunes from the foundation (champion)")
        try:
            demo_promotion.wait_challenger(ctx)
        except RuntimeError as exc:  # as in the loop itself: no challenger, the champion serves on
            if "the trainer refused the dataset" not in str(exc):
                raise
            refused = str(exc)
    finally:
        demo_services.shutdown(ctx)
    if refused:
        ctx.say(f"seed {seed}, {arm}: {refused}; measured: the foundation, still champion")
        return ArmResult(queue, before, refused)
    ev = measure(ctx, arm, ctx.new_versions, test)
    result = ArmResult(queue, ev)
    ctx.say(f"seed {seed}, {arm}: fused balanced accuracy {result.balanced_accuracy:.1%} ({ev.version_text()})")
    return result


def seed_context(o: ExperimentOptions, seed: int, first: DemoContext) -> DemoContext:
    """The context of one seed on the running stack; the foundation trained for it, or the first seed's reused."""
    from axis_cli import demo_foundation, demo_services
    from axis_cli.demo_context import DemoClock

    if seed == o.seeds[0]:
        ctx = first
    else:
        clock = DemoClock(t0=first.clock.t0, tag=f"{first.tag[:-1]}{seed}")
        ctx = demo_services.start_stack(demo_options(o, seed), clock, stack=first.stack)
        ctx.base_path = first.base_path
    if seed == o.seeds[0] or o.foundation_per_seed:
        ctx.clock.stage(3, f"seed {seed}: foundation model trained on domain A, promoted to champion")
        demo_foundation.train_foundation(ctx)
    else:
        ctx.foundation_versions = first.foundation_versions  # still the champion: the arms promote nothing
    return ctx


def run_seed(o: ExperimentOptions, ctx: DemoContext) -> tuple[float, list[ArmResult]]:
    """The seed's frozen test set and the foundation on it, then both arms."""
    seed = ctx.opts.seed
    test = test_set(ctx)
    before = measure(ctx, "foundation", ctx.foundation_versions, test)
    x = before.fused.balanced_accuracy if before.fused is not None else before.metrics.balanced_accuracy
    ctx.say(f"frozen test set {test.manifest_uri}: {len(test.rows)} images; foundation fused balanced accuracy {x:.1%}")
    arms = [run_arm(o, seed, arm, ctx, test, before) for arm in ("disagreements only", "with uncertain agreements")]
    return x, arms


def parse_args(argv: Sequence[str] | None = None) -> ExperimentOptions:
    """Options from the command line."""
    d = ExperimentOptions()
    p = argparse.ArgumentParser(prog="python -m axis_cli.demo_curation", description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, default=d.data_dir, help="the experiment's own embedded stack")
    p.add_argument("--seeds", type=int, nargs="+", default=list(d.seeds))
    p.add_argument("--budget", type=int, default=d.budget, help="curator labels per arm (two curators)")
    p.add_argument("--agreements", type=int, default=d.agreements, help="routed agreements per arm (0: budget/2)")
    for name in ("plates", "test_plates", "foundation_plates", "wells", "inspections", "steps", "foundation_steps"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    p.add_argument("--lims-error-rate", type=float, default=d.lims_error_rate)
    p.add_argument("--foundation-per-seed", action="store_true", help="train a foundation for every seed")
    a = p.parse_args(argv)
    return ExperimentOptions(
        data_dir=a.data_dir,
        seeds=tuple(a.seeds),
        budget=a.budget,
        agreements=a.agreements,
        plates=a.plates,
        test_plates=a.test_plates,
        foundation_plates=a.foundation_plates,
        wells=a.wells,
        inspections=a.inspections,
        steps=a.steps,
        foundation_steps=a.foundation_steps,
        lims_error_rate=a.lims_error_rate,
        foundation_per_seed=a.foundation_per_seed,
    )


def _arm_text(r: ArmResult) -> str:
    q = r.queue
    return (
        f"{r.balanced_accuracy:.1%} (queue {q['disagreements']} disagreements + {q['routed']} agreements; "
        f"{q['resolved']} decided, {q['resolved_agreements']} of them agreements ({q['agreements_wrong']} wrong), "
        f"{q['model_overturned']} overturning the model)" + (f"; {r.refused}" if r.refused else "")
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run both arms on every seed; the last line compares them."""
    from axis_adapters.console import quiet_libraries

    from axis_cli import demo_run, demo_services
    from axis_cli.demo_context import DemoClock
    from axis_cli.demo_report import elapsed_text

    o = parse_args(argv)
    quiet_libraries()
    clock = DemoClock(tag=f"{time.strftime('%m%d%H%M')}s{o.seeds[0]}")
    first = demo_run.start(demo_options(o, o.seeds[0]), clock)
    results: list[tuple[int, float, list[ArmResult]]] = []
    try:
        clock.stage(2, f"base model ({first.opts.base_model})")
        demo_services.prepare_base(first)
        for seed in o.seeds:
            x, arms = run_seed(o, seed_context(o, seed, first))
            results.append((seed, x, arms))
    finally:
        demo_services.shutdown(first)  # stops the stack when this run started it
    print("", flush=True)
    for seed, x, (only, routed) in results:
        print(f"seed {seed}: foundation {x:.1%}", flush=True)
        print(f"  disagreements only         {_arm_text(only)}", flush=True)
        print(f"  with uncertain agreements  {_arm_text(routed)}", flush=True)
    n = len(results)
    summary: dict[str, Any] = {"options": {k: str(v) for k, v in vars(o).items()}, "seeds": []}
    for seed, x, arms in results:
        summary["seeds"].append(
            {"seed": seed, "foundation": x, "arms": [{"ba": r.balanced_accuracy, **r.queue} for r in arms]}
        )
    path = o.data_dir / "demo" / "experiment-curation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"done in {elapsed_text(first.elapsed())}; figures in {path}", flush=True)
    print(
        result_line(
            o.budget,
            o.seeds,
            sum(r[1] for r in results) / n,
            sum(r[2][0].balanced_accuracy for r in results) / n,
            sum(r[2][1].balanced_accuracy for r in results) / n,
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
