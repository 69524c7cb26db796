"""The demo's final stage: measure foundation vs new version on the frozen B test set; table, plot, last line."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from axis_cli.demo_context import DemoContext, model_names, need
from axis_cli.demo_eval import ModeModel, VersionEval, evaluate, fetch_images, load_rows
from axis_cli.plots import PlotEntry, loop_figure


def elapsed_text(seconds: float) -> str:
    """``12m03s``."""
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


def _pct(x: float) -> str:
    return f"{100.0 * x:.1f}%"


def loop_line(before: VersionEval, after: VersionEval) -> str:
    """The demo's last line (the numbers are the measured ones): per image, then fused per inspection."""
    b, a = before.metrics, after.metrics
    gain = 100.0 * (a.balanced_accuracy - b.balanced_accuracy)
    line = (
        f"loop: balanced accuracy {_pct(b.balanced_accuracy)} -> {_pct(a.balanced_accuracy)} ({gain:+.1f} points), "
        f"recall {_pct(b.recall)} -> {_pct(a.recall)}, precision {_pct(b.precision)} -> {_pct(a.precision)} "
        f"on {a.n} facility-B test images"
    )
    if before.fused is not None and after.fused is not None:
        fb, fa = before.fused, after.fused
        fgain = 100.0 * (fa.balanced_accuracy - fb.balanced_accuracy)
        line += (
            f"; fused per inspection: balanced accuracy {_pct(fb.balanced_accuracy)} -> {_pct(fa.balanced_accuracy)} "
            f"({fgain:+.1f} points), recall {_pct(fb.recall)} -> {_pct(fa.recall)} on {fa.n} inspections"
        )
    return line


def _fused(e: VersionEval) -> dict[str, Any] | None:
    return e.fused.to_dict() if e.fused is not None else None


def _models(ctx: DemoContext, versions: dict[str, str], root: Path) -> dict[str, ModeModel]:
    from axis_adapters.registry import ModelRegistry

    reg = ModelRegistry(ctx.stack.mlflow_uri)
    out: dict[str, ModeModel] = {}
    for mode, version in versions.items():
        name = model_names()[mode]
        rv = reg.version(name, version)
        bundle = reg.download_bundle(name, version, root / f"{name}-{version}")
        out[mode] = ModeModel(mode=mode, model_name=name, version=version, bundle_dir=bundle, threshold=rv.threshold)
    return out


def _entry(e: VersionEval) -> PlotEntry:
    m = e.metrics
    c = m.confusion
    return PlotEntry(
        name=f"{e.name}\n{e.version_text()}",
        recall=m.recall,
        precision=m.precision,
        balanced_accuracy=m.balanced_accuracy,
        tp=c.tp,
        fn=c.fn,
        fp=c.fp,
        tn=c.tn,
    )


def _table(evals: list[VersionEval]) -> list[str]:
    lines = [f"  {'model':<24} {'versions':<22} {'recall':>8} {'precision':>10} {'bal. acc.':>10} {'n':>6}"]
    for e in evals:
        m = e.metrics
        lines.append(
            f"  {e.name:<24} {e.version_text():<22} {_pct(m.recall):>8} {_pct(m.precision):>10} "
            f"{_pct(m.balanced_accuracy):>10} {m.n:>6}"
        )
        for mode, pm in sorted(e.per_mode.items()):
            lines.append(
                f"  {'  ' + mode:<24} {'':<22} {_pct(pm.recall):>8} {_pct(pm.precision):>10} "
                f"{_pct(pm.balanced_accuracy):>10} {pm.n:>6}"
            )
        if e.fused is not None:
            f = e.fused
            c = f.confusion
            lines.append(
                f"  {'  fused / inspection':<24} {'':<22} {_pct(f.recall):>8} {_pct(f.precision):>10} "
                f"{_pct(f.balanced_accuracy):>10} {f.n:>6}   (TP {c.tp} FN {c.fn} FP {c.fp} TN {c.tn})"
            )
    return lines


def account_lines(ctx: DemoContext) -> list[str]:
    """The demo's logins for the pages (with a read-only scientist made now), as the owner-only file keeps them."""
    from axis_cli.demo_http import ADMIN_USER, ensure_account

    admin = ctx.admin
    if admin is not None:
        try:
            ensure_account(
                ctx.accounts_file,
                "demo-scientist",
                base_url=ctx.curation_url,
                create=lambda user, pw: admin.create_account(user, pw, "scientist"),
                suffix=ctx.tag,
            )
        except RuntimeError as exc:
            print(f"could not create the demo's scientist account: {exc}", flush=True)
    known = json.loads(ctx.accounts_file.read_text()) if ctx.accounts_file.exists() else {}
    roles = {ADMIN_USER: "admin", "demo-scientist": "scientist (read-only)"}
    lines = [f"  logins         (user / password / role; kept in {ctx.accounts_file}, see docs/curation.md)"]
    for base, (user, password) in sorted(known.items(), key=lambda kv: kv[0] != ADMIN_USER):
        lines.append(f"    {user} / {password} / {roles.get(base, 'curator')}")
    return lines


def report(ctx: DemoContext) -> None:
    """Evaluate both generations on the test manifest, write the plot and summary, print the table."""
    test = ctx.counts.test_set
    plates = need(ctx.facility, "the facility plan").plates
    base_path = need(ctx.base_path, "the base model (stage 2)")
    store = ctx.store()
    rows = load_rows(store.get_bytes(test["manifest_uri"]))
    images = fetch_images(rows, store.get_bytes)
    with tempfile.TemporaryDirectory(prefix="axis-demo-eval-") as tmp:
        before = evaluate(
            "foundation (domain A)",
            _models(ctx, ctx.foundation_versions, Path(tmp)),
            rows,
            images,
            base_path=str(base_path),
        )
        after = evaluate(
            "after one loop",
            _models(ctx, ctx.new_versions, Path(tmp)),
            rows,
            images,
            base_path=str(base_path),
        )
    plot = loop_figure([_entry(before), _entry(after)], ctx.opts.data_dir / "demo" / "loop.png")
    c = ctx.counts
    train = c.train_set
    qc = train.get("removed_by_stage") or {}
    lines = [
        "",
        f"Lab-in-the-Loop demo (seed {ctx.opts.seed}, {elapsed_text(ctx.elapsed())})",
        "",
        f"Held-out facility-B test set {test['name']} v{test['version']} ({len(rows)} images, labels from "
        "agreements and curated disagreements; per image, each mode at its own threshold, and fused per inspection "
        "= max over its modes, as the LIMS sees it):",
        *_table([before, after]),
        "",
        "Counts per stage:",
        f"  images captured (robot)        {c.images_captured}",
        f"  images scored (inference)      {c.images_scored} ({c.inspections_scored} inspections fused)",
        f"  inspections user-scored (LIMS) {c.compared}: {c.agreements} agreements, {c.disagreements} disagreements",
        f"  curated                        {c.curated_labels} curator labels; queue {c.discrepancy_status}",
        f"  training set                   {train.get('name')} v{train.get('version')}: {train.get('counts')}",
        f"  dataset QC removed             {', '.join(f'{k} {v}' for k, v in qc.items()) or 'nothing'}",
        f"  model versions                 foundation {before.version_text()} -> champion {after.version_text()}",
        f"  after promotion                {c.after_images} new images, all scored by the new version",
        "",
        "Where to look:",
        f"  plate map      {ctx.curation_url}/plates/{plates['after'][0]}",
        f"  curator queue  {ctx.curation_url}/curate",
        f"  datasets       {ctx.curation_url}/datasets",
        f"  MLflow UI      {ctx.stack.mlflow_uri}",
        f"  plot           {plot}",
        f"  logs           {ctx.opts.data_dir / 'logs'}",
        *account_lines(ctx),
    ]
    print("\n".join(lines), flush=True)
    ctx.last_line = loop_line(before, after)
    summary: dict[str, Any] = {
        "seed": ctx.opts.seed,
        "elapsed_s": round(ctx.elapsed(), 1),
        "test_set": {k: test.get(k) for k in ("name", "version", "manifest_uri", "counts")},
        "train_set": {k: train.get(k) for k in ("name", "version", "manifest_uri", "counts", "removed_by_stage")},
        "foundation": {"versions": before.versions, **before.metrics.scalars(), "fused": _fused(before)},
        "new": {"versions": after.versions, **after.metrics.scalars(), "fused": _fused(after)},
        "counts": {k: v for k, v in vars(c).items() if k not in ("test_set", "train_set")},
        "plot": str(plot),
        "last_line": ctx.last_line,
    }
    ctx.say(f"summary in {ctx.save_summary(summary)}")
