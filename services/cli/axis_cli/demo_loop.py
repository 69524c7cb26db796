"""Demo stages 4 to 6 and 9 over the DemoContext: facility-B plates planned, imaged and followed; dataset exports."""

from __future__ import annotations

import json
import time
from typing import Any

from axis_adapters.objectstore import make_uri
from axis_simulators.robot import RobotConfig, RobotRun, plan

from axis_cli.demo_context import MODES, DemoContext, FacilityPlan, model_names, need
from axis_cli.demo_procs import wait_until
from axis_cli.demo_promotion import latest_version


def robot_config(ctx: DemoContext, part: str, plates: int, seed_offset: int, domain: str = "B") -> RobotConfig:
    """The robot settings of one batch of plates (its own barcodes and seed)."""
    o = ctx.opts
    prefix = ("PUBA" if domain == "A" else "FACB") + f"-{part}{ctx.tag}"
    return RobotConfig(
        domain=domain,
        plates=plates,
        wells=o.wells,
        inspections=o.inspections,
        seed=o.seed * 100 + seed_offset,
        run_id=f"demo-{ctx.tag}/{part}",
        barcode_prefix=prefix,
    )


def plan_facility(ctx: DemoContext) -> None:
    """Plan every facility-B batch now, so the LIMS simulator knows the truth of all of them."""
    from axis_simulators.robot import ground_truth

    from axis_cli.demo_data import lims_truth

    o = ctx.opts
    batches = {
        "test": robot_config(ctx, "T", o.test_plates, 11),
        "loop": robot_config(ctx, "L", o.plates, 12),
        "after": robot_config(ctx, "P", o.after_plates, 13),
    }
    plans = {k: plan(c) for k, c in batches.items()}
    docs = [ground_truth(images, run_id=batches[k].run_name(), domain="B") for k, images in plans.items()]
    uri = make_uri("axis-images", f"demo-{ctx.tag}/lims-truth.json")
    store = ctx.store()
    store.ensure_bucket("axis-images")
    store.put_bytes(uri, json.dumps(lims_truth(docs)).encode(), "application/json")
    ctx.facility = facility = FacilityPlan(batches=batches, plans=plans, lims_truth_uri=uri)
    plates = facility.plates
    sizes = ", ".join(f"{k}: {len(plates[k])} plates / {len(v)} images" for k, v in plans.items())
    ctx.say(f"facility B planned ({sizes}); LIMS truth in {uri}")


def image_robot(ctx: DemoContext, parts: list[str]) -> list[RobotRun]:
    """Image the planned batches: upload + ImageCaptured, through the stack's broker."""
    from axis_adapters.kafka import make_broker
    from axis_adapters.settings import KafkaSettings
    from axis_simulators.robot import run_robot

    store = ctx.store()
    facility = need(ctx.facility, "the facility plan")

    async def go() -> list[RobotRun]:
        broker = make_broker(KafkaSettings(bootstrap_servers=ctx.stack.kafka_bootstrap))
        await broker.start()
        try:
            out = []
            for part in parts:
                config = facility.batches[part]
                out.append(await run_robot(config, store=store, publisher=broker, images=facility.plans[part]))
            return out
        finally:
            await broker.stop()

    runs: list[RobotRun] = ctx.run_async(go())
    for r in runs:
        ctx.counts.images_captured += r.events
        ctx.say(f"robot: {r.events} images of plates {', '.join(r.plates)} in {r.seconds:.0f}s (truth {r.truth_uri})")
    return runs


def _n_images(ctx: DemoContext, parts: list[str]) -> tuple[int, int]:
    plans = need(ctx.facility, "the facility plan").plans
    images = sum(len(plans[p]) for p in parts)
    inspections = len({im.inspection_id for p in parts for im in plans[p]})
    return images, inspections


def facility_round(ctx: DemoContext, batches: tuple[str, ...] = ("test", "loop")) -> None:
    """Test + loop plates (or ``batches``) through robot -> inference -> LIMS -> discrepancy -> curators; waits."""
    parts = list(batches)
    planned = need(ctx.facility, "the facility plan").plates
    plates = [p for part in parts for p in planned[part]]
    n_images, n_insp = _n_images(ctx, parts)
    image_robot(ctx, parts)
    db, timeout = ctx.db, ctx.opts.stage_timeout
    last = [0.0]

    def progress(msg: str) -> None:
        if time.monotonic() - last[0] > 15:
            last[0] = time.monotonic()
            ctx.say(msg)

    def scored() -> bool:
        n = db.scored_images(plates)
        progress(f"  scored {n}/{n_images} images")
        return n >= n_images

    wait_until(scored, timeout=timeout, what=f"inference to score {n_images} images", services=ctx.services)
    ctx.say(f"inference: {n_images} images scored ({db.scored_inspections(plates)} inspections fused)")

    def compared() -> bool:
        n, _ = db.compared(plates)
        progress(f"  {n}/{n_insp} inspections user-scored and compared")
        return n >= n_insp

    wait_until(compared, timeout=timeout, what="LIMS scores and comparisons", services=ctx.services)
    n, agree = db.compared(plates)
    ctx.say(f"discrepancy: {n} inspections compared, {agree} agreements, {n - agree} disagreements")

    def queued() -> bool:  # curators see the whole queue in its order, not the first items to arrive
        made, seen = db.queued(plates)
        progress(f"  {seen}/{made} queue items in curation's queue")
        return seen >= made

    wait_until(queued, timeout=timeout, what="curation's queue", services=ctx.services)
    run_curators(ctx)
    c = ctx.counts
    c.images_scored, c.inspections_scored = db.scored_images(plates), db.scored_inspections(plates)
    c.compared, c.agreements = db.compared(plates)
    c.disagreements = c.compared - c.agreements
    c.discrepancy_status = db.discrepancies(plates)
    c.curated_labels = db.curator_labels(plates)
    ctx.say(f"curators: {c.curated_labels} labels; queue {c.discrepancy_status}")


def _stage_summary(removed_by_stage: Any) -> str:
    if isinstance(removed_by_stage, dict):
        return ", ".join(f"{k} -{v}" for k, v in removed_by_stage.items() if v)
    return str(removed_by_stage)


def export_datasets(ctx: DemoContext, *, test_set: bool = True) -> None:
    """The frozen test set (test plates only, guarded; unless not ``test_set``), then the training set."""
    admin = need(ctx.admin, "the admin's curation client")
    plates = need(ctx.facility, "the facility plan").plates
    if test_set:
        test = admin.export(f"facility-b-test-{ctx.tag}", purpose="test", plates=plates["test"])
        ctx.counts.test_set = test
        ctx.say(
            f"test set {test['name']} v{test['version']}: counts {test['counts']}; "
            f"QC removed: {_stage_summary(test.get('removed_by_stage')) or 'nothing'}"
        )
    ctx.before_export = {m: latest_version(ctx, m) for m in MODES}
    trainer_log = ctx.opts.data_dir / "logs" / "trainer.log"
    ctx.trainer_log_offset = trainer_log.stat().st_size if trainer_log.exists() else 0
    train = admin.export(f"facility-b-{ctx.tag}", purpose="train", plates=plates["loop"], config=train_config(ctx))
    ctx.counts.train_set = train
    ctx.say(
        f"training set {train['name']} v{train['version']}: counts {train['counts']}; "
        f"QC removed: {_stage_summary(train.get('removed_by_stage')) or 'nothing'}; "
        f"DatasetExported published: {train.get('published')}"
    )


def train_config(ctx: DemoContext) -> dict[str, Any]:
    """Dataset config overrides of the demo's training export (seeded split)."""
    val_ratio = max(0.2, 1.0 / max(1, ctx.opts.plates))  # a validation plate even with two loop plates
    split = {"seed": ctx.opts.seed, "train_ratio": 1.0 - val_ratio, "val_ratio": val_ratio}
    return {"split": split, "similarity": {"max_distance": ctx.opts.similarity_distance}}


def scored_versions(ctx: DemoContext, plates: list[str]) -> dict[str, set[str]]:
    """model name -> versions that scored images of the plates."""
    out: dict[str, set[str]] = {}
    for (name, version), _n in ctx.db.versions_on(plates).items():
        out.setdefault(name, set()).add(version)
    return out


def after_round(ctx: DemoContext) -> None:
    """Image the after-promotion plates and check every image carries the new version."""
    plates = need(ctx.facility, "the facility plan").plates["after"]
    n_images, _ = _n_images(ctx, ["after"])
    image_robot(ctx, ["after"])
    champions = ctx.new_versions
    wanted = {model_names()[m]: v for m, v in champions.items()}

    def done() -> bool:
        return ctx.db.scored_images(plates) >= n_images

    wait_until(done, timeout=ctx.opts.stage_timeout, what="scores of the after-promotion plates", services=ctx.services)
    missing = ctx.db.unscored_by(plates, wanted)
    ctx.counts.after_images = n_images
    used = ctx.db.versions_on(plates)
    shown = ", ".join(f"{n} v{v}: {c}" for (n, v), c in sorted(used.items()))
    if missing:
        raise RuntimeError(f"{missing} images of {plates} were not scored by the new version {wanted} ({shown})")
    ctx.say(f"after promotion: {n_images} images, all scored by the new version ({shown})")


CURATORS = ("sim-curator-1", "sim-curator-2")


def run_curators(ctx: DemoContext) -> None:
    """Two simulated curators work through their queues via the curation HTTP API (consensus needs two)."""
    import subprocess
    import sys

    from axis_cli.demo_http import ensure_account

    o = ctx.opts
    truth_path = o.data_dir / "demo" / f"curator-truth-{ctx.tag}.json"
    if not truth_path.exists():
        plans = need(ctx.facility, "the facility plan").plans
        truth = {im.inspection_id: im.label for images in plans.values() for im in images}
        truth_path.parent.mkdir(parents=True, exist_ok=True)
        truth_path.write_text(json.dumps(truth))
    admin = need(ctx.admin, "the admin's curation client")
    accounts = [
        ensure_account(
            ctx.accounts_file,
            base,
            base_url=ctx.curation_url,
            create=lambda user, pw: admin.create_account(user, pw, "curator"),
            suffix=ctx.tag,
        )
        for base in CURATORS
    ]
    passwords = dict(accounts)
    procs = []
    for i, user in enumerate(passwords):
        log_path = o.data_dir / "logs" / f"{user}.log"
        argv = [sys.executable, "-m", "axis_simulators.curator", "--url", ctx.curation_url, "--user", user]
        argv += ["--truth", str(truth_path), "--uncertain", str(o.uncertain_share), "--seed", str(o.seed * 10 + i)]
        if o.curator_budget is not None:
            argv += ["--max-items", str(o.curator_budget)]
        with open(log_path, "ab") as log:
            env = {**ctx.env(), "AXIS_CURATOR_PASSWORD": passwords[user]}
            procs.append((user, log_path, subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env)))
    for user, log_path, proc in procs:
        try:
            code = proc.wait(timeout=o.stage_timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise TimeoutError(f"curator simulator {user} did not finish; see {log_path}") from None
        if code != 0:
            raise RuntimeError(f"curator simulator {user} exited with {code}; see {log_path}")
        lines = log_path.read_text(errors="replace").strip().splitlines()
        ctx.say(f"curator {user}: {lines[-1] if lines else '(no output)'}")
