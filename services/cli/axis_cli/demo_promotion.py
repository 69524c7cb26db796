"""Demo stages 7 and 8 and the promotions of stage 3: wait for the trainer's challenger, promote, check serving."""

from __future__ import annotations

import time

from axis_cli.demo_context import MODES, DemoContext, model_names
from axis_cli.demo_procs import wait_until


def latest_version(ctx: DemoContext, mode: str) -> int:
    """The newest registered version of a mode's model (0 when none)."""
    from axis_adapters.registry import ModelRegistry

    versions = ModelRegistry(ctx.stack.mlflow_uri).latest_versions(model_names()[mode])
    return int(versions[0].version) if versions else 0


def promote_versions(ctx: DemoContext, versions: dict[str, str], *, reason: str, force: bool = False) -> None:
    """Move ``champion`` with the promote command's functions: gate, alias + tags, audit row, ModelPromoted."""
    from axis_adapters.registry import ModelRegistry
    from axis_adapters.settings import ServiceSettings

    from axis_cli.promote import PromotionRefused, announce, promote, record

    settings = ServiceSettings(_env_file=str(ctx.stack.env_file))  # type: ignore[call-arg]
    registry = ModelRegistry(ctx.stack.mlflow_uri)
    for mode, version in versions.items():
        name = model_names()[mode]
        try:
            result = promote(registry, name, version, by="demo", reason=reason, force=force or ctx.opts.force_promotion)
        except PromotionRefused as exc:
            print(exc.comparison.table(), flush=True)
            raise RuntimeError(
                f"the promotion gate refused {name} v{version}: {exc} (the demo does not force it; "
                "--force-promotion would)"
            ) from None
        metrics = {r.metric: r.candidate for r in result.comparison.rows if r.candidate is not None}
        record(settings, result, by="demo", reason=reason, metrics=metrics)
        ctx.run_async(announce(settings, result, by="demo", reason=reason, metrics=metrics))
        forced = " (forced past the gate)" if result.forced and result.comparison.refused else ""
        ctx.say(f"promoted {name} v{result.previous_version or '-'} -> v{version} (champion){forced}")


def wait_challenger(ctx: DemoContext) -> None:
    """Stage 7: wait until the trainer registered a new version of every mode (from the exported dataset)."""
    from axis_adapters.registry import CHALLENGER, ModelRegistry

    reg = ModelRegistry(ctx.stack.mlflow_uri)
    before = ctx.before_export
    found: dict[str, str] = {}
    last = [0.0]
    log_path = ctx.opts.data_dir / "logs" / "trainer.log"
    offset = ctx.trainer_log_offset

    def registered() -> bool:
        with open(log_path, errors="replace") as fh:
            fh.seek(offset)
            stopped = [line.strip() for line in fh if "training stopped:" in line or "training on " in line]
        if stopped:
            raise RuntimeError(f"the trainer refused the dataset: {stopped[-1][:500]} (see {log_path})")
        for mode in MODES:
            if mode in found:
                continue
            rv = reg.get_alias_version(model_names()[mode], CHALLENGER)
            if rv is not None and int(rv.version) > before[mode]:
                found[mode] = rv.version
                m = rv.metrics
                ctx.say(
                    f"trainer registered {rv.name} v{rv.version} (challenger): test recall "
                    f"{m.get('test_recall', float('nan')):.1%}, balanced accuracy "
                    f"{m.get('test_balanced_accuracy', float('nan')):.1%}"
                )
        if time.monotonic() - last[0] > 30 and len(found) < len(MODES):
            last[0] = time.monotonic()
            ctx.say(f"  training… (see {log_path})")
        return len(found) == len(MODES)

    wait_until(
        registered,
        timeout=ctx.opts.stage_timeout * 2,
        what="the trainer's challenger",
        services=ctx.services,
        interval=2.0,
    )
    ctx.new_versions = found


def promote(ctx: DemoContext) -> None:
    """Stage 8: promote the challengers and wait until inference serves them."""
    versions = ctx.new_versions
    promote_versions(ctx, versions, reason="demo: one Lab-in-the-Loop cycle on facility B")
    wanted = {mode: f"{model_names()[mode]}:{v}" for mode, v in versions.items()}
    url = f"http://127.0.0.1:{ctx.ports['inference']}/health"

    def serving() -> bool:
        import httpx

        try:
            models = httpx.get(url, timeout=5).json().get("models", {})
        except (httpx.HTTPError, ValueError):
            return False
        return all(models.get(mode) == ref for mode, ref in wanted.items())

    wait_until(serving, timeout=ctx.opts.stage_timeout, what=f"inference to serve {wanted}", services=ctx.services)
    ctx.say(f"inference serves {', '.join(wanted.values())} (no restart)")
