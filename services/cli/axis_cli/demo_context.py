"""What the demo's stages share: the options, a typed context each stage reads and fills, and its clock.

Every stage is a function ``stage(ctx: DemoContext) -> None`` in one of the demo_* modules; axis_cli.demo_run
runs them in order. This module imports no other stage module, so the demo's import graph has no cycle.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from axis_adapters.objectstore import MinioObjectStore
    from axis_simulators.robot import RobotConfig
    from axis_stack import StackInfo
    from axis_synth import PlannedImage

    from axis_cli.demo_db import LoopDb
    from axis_cli.demo_http import CurationClient
    from axis_cli.demo_procs import ServiceSet

MODES = ("visible", "uv")
T = TypeVar("T")


@dataclass(frozen=True)
class DemoOptions:
    """Sizes and switches of one demo run."""

    data_dir: Path
    seed: int = 0
    keep_running: bool = False
    base_model: str = "tiny"
    foundation_plates: int = 4
    test_plates: int = 2
    plates: int = 6
    after_plates: int = 1
    wells: int = 96
    inspections: int = 3
    foundation_steps: int = 400
    steps: int = 900
    epochs: int = 30
    target_recall: float = 0.8
    similarity_distance: int = 2
    lims_error_rate: float = 0.05
    uncertain_share: float = 0.1
    stage_timeout: float = 600.0
    force_promotion: bool = False
    torch_threads: int = 1
    curator_budget: int | None = None  # labels each simulated curator gives at most (None: the whole queue)


@dataclass
class DemoClock:
    """The run's start time and tag; prints progress lines with the elapsed time."""

    t0: float = field(default_factory=time.monotonic)
    tag: str = field(default_factory=lambda: f"{time.strftime('%m%d%H%M')}{secrets.token_hex(1)}")

    def elapsed(self) -> float:
        """Seconds since the demo started."""
        return time.monotonic() - self.t0

    def say(self, msg: str) -> None:
        """One progress line with the elapsed time."""
        print(f"[{self.elapsed():6.1f}s] {msg}", flush=True)

    def stage(self, n: int, title: str) -> None:
        """A stage header."""
        print(f"\n[{self.elapsed():6.1f}s] == {n}. {title}", flush=True)


@dataclass
class StageCounts:
    """Counts per stage for the final table."""

    images_captured: int = 0
    images_scored: int = 0
    inspections_scored: int = 0
    compared: int = 0
    agreements: int = 0
    disagreements: int = 0
    curated_labels: int = 0
    discrepancy_status: dict[str, int] = field(default_factory=dict)
    test_set: dict[str, Any] = field(default_factory=dict)  # the curation API's export answer (JSON)
    train_set: dict[str, Any] = field(default_factory=dict)
    after_images: int = 0


@dataclass(frozen=True)
class FacilityPlan:
    """Facility B's batches of plates (test, loop, after), planned before any is imaged."""

    batches: dict[str, RobotConfig]
    plans: dict[str, list[PlannedImage]]
    lims_truth_uri: str

    @property
    def plates(self) -> dict[str, list[str]]:
        """Batch -> its plate barcodes."""
        return {k: sorted({im.plate_barcode for im in v}) for k, v in self.plans.items()}


@dataclass
class DemoContext:
    """One demo run: the stack it runs on and what each stage left for the next ones."""

    opts: DemoOptions
    clock: DemoClock
    stack: StackInfo
    db: LoopDb
    stack_started: bool  # this run started the stack (and stops it at the end)
    base_path: Path | None = None  # stage 2: the local DINOv2 every process loads
    foundation_versions: dict[str, str] = field(default_factory=dict)  # stage 3: mode -> version
    facility: FacilityPlan | None = None  # stage 4
    services: ServiceSet | None = None  # stage 4: the service processes
    ports: dict[str, int] = field(default_factory=dict)
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)  # service -> env added at its start
    curation_url: str = ""
    admin: CurationClient | None = None  # stage 4: the admin's client of the curation API
    before_export: dict[str, int] = field(default_factory=dict)  # stage 6: mode -> latest version before
    trainer_log_offset: int = 0
    new_versions: dict[str, str] = field(default_factory=dict)  # stage 7: mode -> the challenger's version
    counts: StageCounts = field(default_factory=StageCounts)
    last_line: str = ""  # stage 10: the demo's last line

    @property
    def tag(self) -> str:
        """This run's tag (plate barcodes, dataset names, account suffixes)."""
        return self.clock.tag

    @property
    def accounts_file(self) -> Path:
        """Passwords of the demo's accounts (owner-only file in the data dir)."""
        return self.opts.data_dir / "demo" / "accounts.json"

    def elapsed(self) -> float:
        """Seconds since the demo started."""
        return self.clock.elapsed()

    def say(self, msg: str) -> None:
        """One progress line with the elapsed time."""
        self.clock.say(msg)

    def env(self) -> dict[str, str]:
        """The stack env every service and simulator gets."""
        return {**self.stack.env, "AXIS_ENV_FILE": str(self.stack.env_file)}

    def store(self) -> MinioObjectStore:
        """The stack's object store."""
        from axis_adapters.objectstore import MinioObjectStore
        from axis_adapters.settings import S3Settings

        env = self.stack.env
        return MinioObjectStore(
            S3Settings(
                endpoint=env["AXIS_S3__ENDPOINT"],
                access_key=env["AXIS_S3__ACCESS_KEY"],
                secret_key=env["AXIS_S3__SECRET_KEY"],
                secure=False,
            )
        )

    def run_async(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine to completion from the demo's synchronous stages."""
        return asyncio.run(coro)

    def save_summary(self, summary: dict[str, Any]) -> Path:
        """Write <data-dir>/demo/summary.json."""
        path = self.opts.data_dir / "demo" / "summary.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1, default=str) + "\n")
        return path


def model_names() -> dict[str, str]:
    """mode -> registered model name (the settings' defaults)."""
    from axis_adapters.settings import MlflowSettings

    m = MlflowSettings()
    return {"visible": m.visible_model, "uv": m.uv_model}


def need(value: T | None, what: str) -> T:
    """``value``, or a RuntimeError saying which earlier stage has not run."""
    if value is None:
        raise RuntimeError(f"the demo's stages ran out of order: {what} is not there yet")
    return value
