"""Stage functions of the demo (they act on a DemoRun): facility plates, waits, exports, promotion, report."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from axis_adapters.objectstore import MinioObjectStore, make_uri
from axis_adapters.settings import S3Settings
from axis_simulators.robot import RobotConfig, RobotRun, plan

from axis_cli.demo_procs import wait_until

if TYPE_CHECKING:
    from axis_cli.demo_run import DemoRun

MODES = ("visible", "uv")


def store_of(run: DemoRun) -> MinioObjectStore:
    """The stack's object store."""
    env = run.stack.env
    return MinioObjectStore(
        S3Settings(
            endpoint=env["AXIS_S3__ENDPOINT"],
            access_key=env["AXIS_S3__ACCESS_KEY"],
            secret_key=env["AXIS_S3__SECRET_KEY"],
            secure=False,
        )
    )


def model_names(run: DemoRun) -> dict[str, str]:
    """mode -> registered model name (the settings' defaults)."""
    from axis_adapters.settings import MlflowSettings

    m = MlflowSettings()
    return {"visible": m.visible_model, "uv": m.uv_model}


def prepare_base(run: DemoRun) -> Path:
    """The local DINOv2 directory every process loads."""
    from axis_cli.demo_data import ensure_base_model

    path = ensure_base_model(run.opts.base_model, run.opts.data_dir / "models")
    run.say(f"base weights in {path}")
    return path


def robot_config(run: DemoRun, part: str, plates: int, seed_offset: int, domain: str = "B") -> RobotConfig:
    """The robot settings of one batch of plates (its own barcodes and seed)."""
    o = run.opts
    prefix = ("PUBA" if domain == "A" else "FACB") + f"-{part}{run.tag}"
    return RobotConfig(
        domain=domain,
        plates=plates,
        wells=o.wells,
        inspections=o.inspections,
        seed=o.seed * 100 + seed_offset,
        run_id=f"demo-{run.tag}/{part}",
        barcode_prefix=prefix,
    )


def plan_facility(run: DemoRun) -> None:
    """Plan every facility-B batch now, so the LIMS simulator knows the truth of all of them."""
    from axis_simulators.robot import ground_truth

    from axis_cli.demo_data import lims_truth

    o = run.opts
    batches = {
        "test": robot_config(run, "T", o.test_plates, 11),
        "loop": robot_config(run, "L", o.plates, 12),
        "after": robot_config(run, "P", o.after_plates, 13),
    }
    plans = {k: plan(c) for k, c in batches.items()}
    docs = [ground_truth(images, run_id=batches[k].run_name(), domain="B") for k, images in plans.items()]
    uri = make_uri("axis-images", f"demo-{run.tag}/lims-truth.json")
    store = store_of(run)
    store.ensure_bucket("axis-images")
    store.put_bytes(uri, json.dumps(lims_truth(docs)).encode(), "application/json")
    run.state.update(batches=batches, plans=plans, lims_truth_uri=uri)
    run.state["plates"] = {k: sorted({im.plate_barcode for im in v}) for k, v in plans.items()}
    sizes = ", ".join(f"{k}: {len(run.state['plates'][k])} plates / {len(v)} images" for k, v in plans.items())
    run.say(f"facility B planned ({sizes}); LIMS truth in {uri}")


def image_robot(run: DemoRun, parts: list[str]) -> list[RobotRun]:
    """Image the planned batches: upload + ImageCaptured, through the stack's broker."""
    from axis_adapters.kafka import make_broker
    from axis_adapters.settings import KafkaSettings
    from axis_simulators.robot import run_robot

    store = store_of(run)

    async def go() -> list[RobotRun]:
        broker = make_broker(KafkaSettings(bootstrap_servers=run.stack.kafka_bootstrap))
        await broker.start()
        try:
            out = []
            for part in parts:
                config = run.state["batches"][part]
                out.append(await run_robot(config, store=store, publisher=broker, images=run.state["plans"][part]))
            return out
        finally:
            await broker.stop()

    runs: list[RobotRun] = run.run_async(go())
    for r in runs:
        run.counts.images_captured += r.events
        run.say(f"robot: {r.events} images of plates {', '.join(r.plates)} in {r.seconds:.0f}s (truth {r.truth_uri})")
    return runs


def _n_images(run: DemoRun, parts: list[str]) -> tuple[int, int]:
    plans = run.state["plans"]
    images = sum(len(plans[p]) for p in parts)
    inspections = len({im.inspection_id for p in parts for im in plans[p]})
    return images, inspections


def facility_round(run: DemoRun) -> None:
    """Test + loop plates through robot -> inference -> LIMS -> discrepancy -> curators; waits for each."""
    parts = ["test", "loop"]
    plates = [p for part in parts for p in run.state["plates"][part]]
    n_images, n_insp = _n_images(run, parts)
    image_robot(run, parts)
    db, timeout = run.db, run.opts.stage_timeout
    last = [0.0]

    def progress(msg: str) -> None:
        if time.monotonic() - last[0] > 15:
            last[0] = time.monotonic()
            run.say(msg)

    def scored() -> bool:
        n = db.scored_images(plates)
        progress(f"  scored {n}/{n_images} images")
        return n >= n_images

    wait_until(scored, timeout=timeout, what=f"inference to score {n_images} images", services=run.services)
    run.say(f"inference: {n_images} images scored ({db.scored_inspections(plates)} inspections fused)")

    def compared() -> bool:
        n, _ = db.compared(plates)
        progress(f"  {n}/{n_insp} inspections user-scored and compared")
        return n >= n_insp

    wait_until(compared, timeout=timeout, what="LIMS scores and comparisons", services=run.services)
    n, agree = db.compared(plates)
    run.say(f"discrepancy: {n} inspections compared, {agree} agreements, {n - agree} disagreements")

    run_curators(run)
    c = run.counts
    c.images_scored, c.inspections_scored = db.scored_images(plates), db.scored_inspections(plates)
    c.compared, c.agreements = db.compared(plates)
    c.disagreements = c.compared - c.agreements
    c.discrepancy_status = db.discrepancies(plates)
    c.curated_labels = db.curator_labels(plates)
    run.say(f"curators: {c.curated_labels} labels; queue {c.discrepancy_status}")


def _stage_summary(removed_by_stage: Any) -> str:
    if isinstance(removed_by_stage, dict):
        return ", ".join(f"{k} -{v}" for k, v in removed_by_stage.items() if v)
    return str(removed_by_stage)


def export_datasets(run: DemoRun) -> None:
    """The frozen test set (test plates only, guarded), then the training set from everything else."""
    test = run.admin.export(f"facility-b-test-{run.tag}", purpose="test", plates=run.state["plates"]["test"])
    run.counts.test_set = test
    run.say(
        f"test set {test['name']} v{test['version']}: counts {test['counts']}; "
        f"QC removed: {_stage_summary(test.get('removed_by_stage')) or 'nothing'}"
    )
    run.state["before_export"] = {m: _latest_version(run, m) for m in MODES}
    trainer_log = run.opts.data_dir / "logs" / "trainer.log"
    run.state["trainer_log_offset"] = trainer_log.stat().st_size if trainer_log.exists() else 0
    train = run.admin.export(
        f"facility-b-{run.tag}", purpose="train", plates=run.state["plates"]["loop"], config=train_config(run)
    )
    run.counts.train_set = train
    run.say(
        f"training set {train['name']} v{train['version']}: counts {train['counts']}; "
        f"QC removed: {_stage_summary(train.get('removed_by_stage')) or 'nothing'}; "
        f"DatasetExported published: {train.get('published')}"
    )


def train_config(run: DemoRun) -> dict[str, Any]:
    """Dataset config overrides of the demo's training export (seeded split)."""
    val_ratio = max(0.2, 1.0 / max(1, run.opts.plates))  # a validation plate even with two loop plates
    split = {"seed": run.opts.seed, "train_ratio": 1.0 - val_ratio, "val_ratio": val_ratio}
    return {"split": split, "similarity": {"max_distance": run.opts.similarity_distance}}


def _latest_version(run: DemoRun, mode: str) -> int:
    from axis_adapters.registry import ModelRegistry

    versions = ModelRegistry(run.stack.mlflow_uri).latest_versions(model_names(run)[mode])
    return int(versions[0].version) if versions else 0


def scored_versions(run: DemoRun, plates: list[str]) -> dict[str, set[str]]:
    """model name -> versions that scored images of the plates."""
    out: dict[str, set[str]] = {}
    for (name, version), _n in run.db.versions_on(plates).items():
        out.setdefault(name, set()).add(version)
    return out


def after_round(run: DemoRun) -> None:
    """Image the after-promotion plates and check every image carries the new version."""
    plates = run.state["plates"]["after"]
    n_images, _ = _n_images(run, ["after"])
    image_robot(run, ["after"])
    champions = run.state["new_versions"]
    wanted = {model_names(run)[m]: v for m, v in champions.items()}

    def done() -> bool:
        return run.db.scored_images(plates) >= n_images

    wait_until(done, timeout=run.opts.stage_timeout, what="scores of the after-promotion plates", services=run.services)
    missing = run.db.unscored_by(plates, wanted)
    run.counts.after_images = n_images
    used = run.db.versions_on(plates)
    shown = ", ".join(f"{n} v{v}: {c}" for (n, v), c in sorted(used.items()))
    if missing:
        raise RuntimeError(f"{missing} images of {plates} were not scored by the new version {wanted} ({shown})")
    run.say(f"after promotion: {n_images} images, all scored by the new version ({shown})")


def elapsed_text(seconds: float) -> str:
    """``12m03s``."""
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def start_loop_services(run: DemoRun, common: dict[str, str], curation_env: dict[str, str]) -> None:
    """Trainer, LIMS simulator and curator simulator (the curation service is already up)."""
    services = run.services
    assert services is not None
    o = run.opts
    services.start(
        "lims-simulator",
        ["-m", "axis_simulators.lims"],
        {
            "AXIS_LIMS_SIM__TRUTH_URI": run.state["lims_truth_uri"],
            "AXIS_LIMS_SIM__ERROR_RATE": str(o.lims_error_rate),
            "AXIS_LIMS_SIM__SEED": str(o.seed),
        },
    )
    services.start(
        "trainer",
        ["-m", "axis_trainer"],
        {
            **common,
            "AXIS_TRAINER__MAX_STEPS": str(o.steps),
            "AXIS_TRAINER__EPOCHS": str(o.epochs),
            "AXIS_TRAINER__SEED": str(o.seed),
            "AXIS_TRAINER__WORK_DIR": str(o.data_dir / "cache" / "trainer"),
            "AXIS_TRAINER__TORCH_THREADS": str(o.torch_threads),
            "AXIS_TRAINER__TARGET_RECALL": str(o.target_recall),
        },
    )


CURATORS = ("sim-curator-1", "sim-curator-2")


def run_curators(run: DemoRun) -> None:
    """Two simulated curators work through their queues via the curation HTTP API (consensus needs two)."""
    import subprocess
    import sys

    from axis_cli.demo_http import ensure_account

    o = run.opts
    truth_path = o.data_dir / "demo" / f"curator-truth-{run.tag}.json"
    if not truth_path.exists():
        truth = {im.inspection_id: im.label for images in run.state["plans"].values() for im in images}
        truth_path.parent.mkdir(parents=True, exist_ok=True)
        truth_path.write_text(json.dumps(truth))
    accounts = [
        ensure_account(
            run.accounts_file,
            base,
            base_url=run.curation_url,
            create=lambda user, pw: run.admin.create_account(user, pw, "curator"),
            suffix=run.tag,
        )
        for base in CURATORS
    ]
    passwords = dict(accounts)
    procs = []
    for i, user in enumerate(passwords):
        log_path = o.data_dir / "logs" / f"{user}.log"
        argv = [sys.executable, "-m", "axis_simulators.curator", "--url", run.curation_url, "--user", user]
        argv += ["--truth", str(truth_path), "--uncertain", str(o.uncertain_share), "--seed", str(o.seed * 10 + i)]
        with open(log_path, "ab") as log:
            env = {**run.env(), "AXIS_CURATOR_PASSWORD": passwords[user]}
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
        run.say(f"curator {user}: {lines[-1] if lines else '(no output)'}")


def promote_versions(run: DemoRun, versions: dict[str, str], *, reason: str, force: bool = False) -> None:
    """Move ``champion`` with the promote command's functions: gate, alias + tags, audit row, ModelPromoted."""
    from axis_adapters.registry import ModelRegistry
    from axis_adapters.settings import ServiceSettings

    from axis_cli.promote import PromotionRefused, announce, promote, record

    settings = ServiceSettings(_env_file=str(run.stack.env_file))  # type: ignore[call-arg]
    registry = ModelRegistry(run.stack.mlflow_uri)
    for mode, version in versions.items():
        name = model_names(run)[mode]
        try:
            result = promote(registry, name, version, by="demo", reason=reason, force=force or run.opts.force_promotion)
        except PromotionRefused as exc:
            print(exc.comparison.table(), flush=True)
            raise RuntimeError(
                f"the promotion gate refused {name} v{version}: {exc} (the demo does not force it; "
                "--force-promotion would)"
            ) from None
        metrics = {r.metric: r.candidate for r in result.comparison.rows if r.candidate is not None}
        record(settings, result, by="demo", reason=reason, metrics=metrics)
        run.run_async(announce(settings, result, by="demo", reason=reason, metrics=metrics))
        forced = " (forced past the gate)" if result.forced and result.comparison.refused else ""
        run.say(f"promoted {name} v{result.previous_version or '-'} -> v{version} (champion){forced}")


def wait_challenger(run: DemoRun) -> None:
    """Wait until the trainer registered a new version of every mode (from the exported dataset)."""
    from axis_adapters.registry import CHALLENGER, ModelRegistry

    reg = ModelRegistry(run.stack.mlflow_uri)
    before = run.state["before_export"]
    found: dict[str, str] = {}
    last = [0.0]
    log_path = run.opts.data_dir / "logs" / "trainer.log"
    offset = run.state.get("trainer_log_offset", 0)

    def registered() -> bool:
        with open(log_path, errors="replace") as fh:
            fh.seek(offset)
            stopped = [line.strip() for line in fh if "training stopped:" in line or "training on " in line]
        if stopped:
            raise RuntimeError(f"the trainer refused the dataset: {stopped[-1][:500]} (see {log_path})")
        for mode in MODES:
            if mode in found:
                continue
            rv = reg.get_alias_version(model_names(run)[mode], CHALLENGER)
            if rv is not None and int(rv.version) > before[mode]:
                found[mode] = rv.version
                m = rv.metrics
                run.say(
                    f"trainer registered {rv.name} v{rv.version} (challenger): test recall "
                    f"{m.get('test_recall', float('nan')):.1%}, balanced accuracy "
                    f"{m.get('test_balanced_accuracy', float('nan')):.1%}"
                )
        if time.monotonic() - last[0] > 30 and len(found) < len(MODES):
            last[0] = time.monotonic()
            run.say(f"  training… (see {run.opts.data_dir / 'logs' / 'trainer.log'})")
        return len(found) == len(MODES)

    wait_until(
        registered,
        timeout=run.opts.stage_timeout * 2,
        what="the trainer's challenger",
        services=run.services,
        interval=2.0,
    )
    run.state["new_versions"] = found


def promote(run: DemoRun) -> None:
    """Promote the challengers and wait until inference serves them."""
    versions = run.state["new_versions"]
    promote_versions(run, versions, reason="demo: one Lab-in-the-Loop cycle on facility B")
    wanted = {mode: f"{model_names(run)[mode]}:{v}" for mode, v in versions.items()}
    url = f"http://127.0.0.1:{run.ports['inference']}/health"

    def serving() -> bool:
        import httpx

        try:
            models = httpx.get(url, timeout=5).json().get("models", {})
        except (httpx.HTTPError, ValueError):
            return False
        return all(models.get(mode) == ref for mode, ref in wanted.items())

    wait_until(serving, timeout=run.opts.stage_timeout, what=f"inference to serve {wanted}", services=run.services)
    run.say(f"inference serves {', '.join(wanted.values())} (no restart)")
