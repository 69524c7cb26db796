"""The whole Lab-in-the-Loop on the embedded stack, small: robot -> ... -> trainer -> promotion -> new scores."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import psycopg
import pytest

if TYPE_CHECKING:
    from axis_stack import StackInfo

pytestmark = pytest.mark.e2e


def test_one_loop_registers_promotes_and_scores_with_the_new_version(stack: StackInfo, tmp_path: Path) -> None:
    from axis_adapters.registry import ModelRegistry
    from axis_cli import demo_run
    from axis_cli.demo_context import DemoOptions, need

    opts = DemoOptions(
        data_dir=tmp_path,
        seed=3,
        foundation_plates=3,
        test_plates=1,
        plates=2,
        after_plates=1,
        wells=24,
        inspections=2,
        foundation_steps=60,
        steps=60,
        stage_timeout=240,
        force_promotion=True,  # a few training steps need not beat the champion; the demo itself never forces
    )
    ctx = demo_run.start(opts, stack=stack)
    try:
        demo_run.run_stages(ctx)
    finally:
        demo_run.shutdown(ctx)

    registry = ModelRegistry(stack.mlflow_uri)
    after_plates = need(ctx.facility, "the facility plan").plates["after"]
    with psycopg.connect(stack.postgres_conninfo()) as conn:
        for mode, name in (("visible", "axis-visible"), ("uv", "axis-uv")):
            foundation = ctx.foundation_versions[mode]
            champion = registry.champion(name)
            assert champion is not None
            assert int(champion.version) > int(foundation), f"{name}: no newer version became champion"
            rows = conn.execute(
                "SELECT DISTINCT s.model_version FROM image_scores s JOIN images i USING (image_event_id) "
                "WHERE i.plate_barcode = ANY(%s) AND i.imaging_mode = %s",
                [after_plates, mode],
            ).fetchall()
            assert rows == [(champion.version,)], f"{mode} images after the promotion were scored by {rows}"
    assert (tmp_path / "demo" / "loop.png").stat().st_size > 0
    assert ctx.last_line.startswith("loop: balanced accuracy ")
