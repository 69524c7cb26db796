"""Service subprocesses for the chaos run: start, kill -9, stop gracefully, and their environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO


class ServiceProc:
    """One ``python -m <service>`` subprocess in its own process group, output appended to a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log_fh: IO[bytes] | None = None

    def start(self) -> None:
        """Start (again); the previous process must be gone."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        if self._log_fh is None:
            self._log_fh = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, *self.args],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.starts += 1

    def exited(self) -> bool:
        """True when the process ended without being asked to."""
        return self.proc is not None and self.proc.poll() is not None

    def returncode(self) -> int | None:
        """Exit status of the last process (None while it runs)."""
        return None if self.proc is None else self.proc.poll()

    def kill9(self) -> None:
        """SIGKILL the whole process group (no clean-up of any kind) and reap it."""
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        self.proc = None

    def terminate(self, timeout: float = 30.0) -> int | None:
        """SIGTERM and wait up to ``timeout`` s; returns the exit status, or None when it had to be killed."""
        if self.proc is None:
            return None
        proc, self.proc = self.proc, None
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            return proc.wait(timeout=timeout)
        except ProcessLookupError:
            return proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            return None

    def stop(self) -> None:
        """Graceful stop, then close the log."""
        self.terminate()
        if self._log_fh is not None:
            self._log_fh.close()
            self._log_fh = None


def make_bootstrap_bundle(dest: Path, seed: int = 1) -> Path:
    """A visible + UV bundle on the tiny seeded base (same base weights in every process)."""
    from axis_inference.seeding import make_classifier
    from axis_model.bundle import save_bundle
    from axis_model.spec import BaseSpec

    if not (dest / "bundle.json").exists():
        save_bundle(make_classifier(BaseSpec.tiny(), seed=seed), dest)
    return dest


def service_env(stack_env: dict[str, str], work: Path, run: str) -> dict[str, str]:
    """Environment of the chaos services: the stack's settings, a bootstrap model, short back-offs."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("AXIS_")}
    bundle = make_bootstrap_bundle(work / "bundle")
    return {
        **base,
        **stack_env,
        "AXIS_ENV_FILE": str(work / "no-env-file"),
        "AXIS_MLFLOW__VISIBLE_MODEL": f"chaos-visible-{run}",  # never registered: the bootstrap bundle scores
        "AXIS_MLFLOW__UV_MODEL": f"chaos-uv-{run}",
        "AXIS_INFERENCE__BOOTSTRAP_BUNDLE": str(bundle),
        "AXIS_INFERENCE__CACHE_DIR": str(work / "model-cache"),
        "AXIS_INFERENCE__HTTP_PORT": "0",
        "AXIS_INFERENCE__POLL_SECONDS": "30",
        "AXIS_INFERENCE__BATCH_SIZE": "16",
        "AXIS_INFERENCE__RETRY_BACKOFF_S": "0.2",
        "AXIS_INFERENCE__RETRY_BACKOFF_MAX_S": "2",
        "AXIS_INFERENCE__SHUTDOWN_TIMEOUT_S": "10",
        "AXIS_DISCREPANCY__RETRY_DELAY_S": "0.5",
        "AXIS_DISCREPANCY__HTTP_PORT": "0",
        "PYTHONUNBUFFERED": "1",
    }
