"""The demo's stages, in order; each prints what it did and leaves its results on the DemoRun."""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axis_cli import demo_foundation, demo_loop, demo_report
from axis_cli.demo import DemoOptions
from axis_cli.demo_db import LoopDb
from axis_cli.demo_procs import ServiceSet, free_port, wait_until


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
    test_set: dict[str, Any] = field(default_factory=dict)
    train_set: dict[str, Any] = field(default_factory=dict)
    after_images: int = 0


class DemoRun:
    """One demo run; ``execute`` runs every stage, ``shutdown`` stops what it started."""

    def __init__(self, opts: DemoOptions, *, stack: Any = None) -> None:
        self.opts = opts
        self.given_stack = stack
        self.t0 = time.monotonic()
        self.tag = f"{time.strftime('%m%d%H%M')}{secrets.token_hex(1)}"
        self.stack_started = False
        self.stack: Any = None
        self.services: ServiceSet | None = None
        self.ports: dict[str, int] = {}
        self.counts = StageCounts()
        self.last_line = ""
        self.base_path: Path | None = None
        self.state: dict[str, Any] = {}

    @property
    def accounts_file(self) -> Path:
        """Passwords of the demo's accounts (owner-only file in the data dir)."""
        return self.opts.data_dir / "demo" / "accounts.json"

    def elapsed(self) -> float:
        """Seconds since the demo started."""
        return time.monotonic() - self.t0

    # -- output ------------------------------------------------------------------------------------
    def say(self, msg: str) -> None:
        """One progress line with the elapsed time."""
        print(f"[{time.monotonic() - self.t0:6.1f}s] {msg}", flush=True)

    def stage(self, n: int, title: str) -> None:
        """A stage header."""
        print(f"\n[{time.monotonic() - self.t0:6.1f}s] == {n}. {title}", flush=True)

    # -- lifecycle ---------------------------------------------------------------------------------
    def execute(self) -> None:
        """All stages."""
        self.stage(1, "embedded stack (broker, PostgreSQL, S3, MLflow)")
        self.start_stack()
        self.stage(2, f"base model ({self.opts.base_model})")
        self.base_path = demo_loop.prepare_base(self)
        self.stage(3, "foundation model: trained on domain A (public-dataset stand-in), promoted to champion")
        demo_foundation.train_foundation(self)
        self.stage(4, "services: inference, discrepancy, curation, trainer, LIMS and curator simulators")
        demo_loop.plan_facility(self)
        self.start_services()
        self.stage(5, "facility B: robot -> inference -> LIMS -> discrepancy -> curators")
        demo_loop.facility_round(self)
        self.stage(6, "datasets: frozen facility-B test set, then a training set (exported as admin)")
        demo_loop.export_datasets(self)
        self.stage(7, "trainer: fine-tunes from the champion on the new dataset, registers a challenger")
        demo_loop.wait_challenger(self)
        self.stage(8, "promotion: the challenger becomes champion; inference switches without a restart")
        demo_loop.promote(self)
        self.stage(9, "facility B after the promotion: new plates scored by the new version")
        demo_loop.after_round(self)
        self.stage(10, "measured on the held-out facility-B test set")
        demo_report.report(self)

    def start_stack(self) -> None:
        """axis_stack.up on the data dir (remember whether this run started it)."""
        from axis_stack import status, up

        data_dir = self.opts.data_dir
        if self.given_stack is not None:  # e.g. the tests' session stack: used, never stopped
            self.stack = self.given_stack
            self.db = LoopDb(self.stack.postgres_conninfo())
            self.say(f"using the running stack of {self.stack.data_dir}")
            return
        try:
            already = all(s.healthy for s in status(data_dir).values())
        except Exception:
            already = False
        self.stack = up(data_dir)
        self.stack_started = not already
        self.db = LoopDb(self.stack.postgres_conninfo())
        self.say(f"stack {'started' if self.stack_started else 'already up'}; settings in {self.stack.env_file}")

    def env(self) -> dict[str, str]:
        """The stack env every service and simulator gets."""
        assert self.stack is not None
        return {**self.stack.env, "AXIS_ENV_FILE": str(self.stack.env_file)}

    def start_services(self) -> None:
        """Every service as a subprocess with logs in <data-dir>/logs/."""
        from axis_cli.demo_http import ADMIN_USER, CurationClient, create_account, ensure_account

        assert self.base_path is not None
        data = self.opts.data_dir
        threads = str(self.opts.torch_threads)
        self.services = services = ServiceSet(
            data, {**self.env(), "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        )
        self.ports = {"inference": free_port(), "curation": free_port(), "discrepancy": free_port()}
        common = {"AXIS_MODEL__BASE_PATH": str(self.base_path)}
        services.start(
            "inference",
            ["-m", "axis_inference"],
            {
                **common,
                "AXIS_INFERENCE__HTTP_PORT": str(self.ports["inference"]),
                "AXIS_INFERENCE__POLL_SECONDS": "2",
                "AXIS_INFERENCE__VARIANT": "fp32",
                "AXIS_INFERENCE__CACHE_DIR": str(data / "cache" / "inference"),
            },
        )
        services.start(
            "discrepancy", ["-m", "axis_discrepancy"], {"AXIS_DISCREPANCY__HTTP_PORT": str(self.ports["discrepancy"])}
        )
        curation_env = {"AXIS_CURATION__BCRYPT_ROUNDS": "4", "AXIS_CURATION__CONSENSUS_MIN": "2"}
        services.start(
            "curation", ["-m", "axis_curation", "serve", "--port", str(self.ports["curation"])], curation_env
        )
        self.curation_url = f"http://127.0.0.1:{self.ports['curation']}"
        probe = CurationClient(self.curation_url)
        wait_until(probe.healthy, timeout=120, what="the curation service", services=services)
        probe.close()
        admin_user, admin_password = ensure_account(
            self.accounts_file,
            ADMIN_USER,
            base_url=self.curation_url,
            create=lambda user, pw: create_account({**self.env(), **curation_env}, user, "admin", pw),
            suffix=self.tag,
        )
        self.admin = CurationClient.login(self.curation_url, admin_user, admin_password)
        demo_loop.start_loop_services(self, common, curation_env)
        self.say(f"services up: {', '.join(services.procs)}; logs in {services.log_dir}")

    def leave_running(self) -> None:
        """--keep-running: say where everything is and how to stop it."""
        print(f"\nleft running (stop with: python -m axis_cli demo --stop --data-dir {self.opts.data_dir})", flush=True)
        if self.services is not None:
            for name, proc in self.services.procs.items():
                print(f"  {name:<12} pid {proc.popen.pid}  log {proc.log_path}", flush=True)

    def shutdown(self) -> None:
        """Stop the services, then the stack when this run started it."""
        if self.services is not None:
            self.services.stop_all()
            self.services = None
        admin = getattr(self, "admin", None)
        if admin is not None:
            admin.close()
            del self.admin
        if self.stack is not None and self.stack_started:
            from axis_stack import down

            down(self.opts.data_dir, quiet=True)
            self.stack = None

    def run_async(self, coro: Any) -> Any:
        """Run a coroutine to completion from the demo's synchronous stages."""
        return asyncio.run(coro)

    def save_summary(self, summary: dict[str, Any]) -> Path:
        """Write <data-dir>/demo/summary.json."""
        path = self.opts.data_dir / "demo" / "summary.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(summary, indent=1, default=str) + "\n")
        return path
