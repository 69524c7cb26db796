"""One supervised service process: how it is started, probed, restarted with back-off and logged with rotation.

``axis_stack.supervisor`` runs one ``Child`` per service; this module has no knowledge of which services exist.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3
STOP_GRACE_S = 45.0
HEALTH_EVERY_S = 5.0
STALL_STRIKES = 3
# /health states that a restart cures: events wait and nothing progresses, or the consumer is gone
RESTART_STATES = ("stalled", "stopped")


@dataclass(frozen=True)
class ServiceSpec:
    """How one service is started and probed."""

    module: str
    args: tuple[str, ...] = ()
    port_env: str | None = None  # the setting that takes its HTTP port (None: passed as --port)
    health_path: str | None = "/health"
    page: str | None = None  # a page worth showing in status

    def argv(self, port: int | None) -> list[str]:
        """The command line (``{port}`` filled in)."""
        return [sys.executable, "-m", self.module, *(a.replace("{port}", str(port)) for a in self.args)]

    def available(self) -> bool:
        """True when the service's package is installed."""
        return importlib.util.find_spec(self.module) is not None


@dataclass
class ChildState:
    """What ``status`` shows of one service."""

    name: str
    port: int | None = None
    pid: int | None = None
    state: str = "starting"  # starting | running | restarting | stopped
    restarts: int = 0
    last_exit: int | None = None
    last_reason: str = ""
    since: float = field(default_factory=time.time)


class RotatingLog:
    """Appends lines to ``path``, rotating to ``path.1`` … ``path.N`` past ``max_bytes``."""

    def __init__(self, path: Path, max_bytes: int = LOG_MAX_BYTES, backups: int = LOG_BACKUPS) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh: IO[bytes] = open(path, "ab")
        self._lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._lock:
            self._fh.write(data)
            self._fh.flush()
            if self._fh.tell() >= self.max_bytes:
                self._rotate()

    def _rotate(self) -> None:
        self._fh.close()
        for i in range(self.backups, 0, -1):
            src = self.path if i == 1 else self.path.with_name(f"{self.path.name}.{i - 1}")
            if src.exists():
                src.replace(self.path.with_name(f"{self.path.name}.{i}"))
        self._fh = open(self.path, "ab")

    def close(self) -> None:
        with self._lock:
            self._fh.close()


class Child:
    """One supervised service process."""

    def __init__(self, name: str, spec: ServiceSpec, state: ChildState, env: dict[str, str], log: RotatingLog) -> None:
        self.name = name
        self.spec = spec
        self.st = state
        self.env = env
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0
        self.next_start = 0.0
        self.backoff = 1.0
        self.strikes = 0
        self.last_health = 0.0

    def start(self) -> None:
        env = dict(self.env)
        if self.spec.port_env and self.st.port:
            env[self.spec.port_env] = str(self.st.port)
        self.log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name}\n".encode())
        self.proc = subprocess.Popen(
            self.spec.argv(self.st.port),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        threading.Thread(target=self._pump, args=(self.proc,), daemon=True).start()
        self.started_at = time.monotonic()
        self.strikes = 0
        self.st.pid, self.st.state, self.st.since = self.proc.pid, "running", time.time()

    def _pump(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            self.log.write(line)

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """SIGTERM the group, SIGKILL after ``grace_s``; returns the exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            code = proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            code = proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # helpers the service left in its group
            os.killpg(proc.pid, signal.SIGKILL)
        self.st.pid, self.st.last_exit = None, code
        return code

    def schedule_restart(self, reason: str) -> None:
        ran = time.monotonic() - self.started_at
        self.backoff = 1.0 if ran > 120 else min(60.0, self.backoff * 2)
        self.next_start = time.monotonic() + self.backoff
        self.st.state, self.st.last_reason, self.st.restarts = "restarting", reason, self.st.restarts + 1
        self.log.write(f"=== supervisor: {reason}; restarting in {self.backoff:.0f}s\n".encode())

    def tick(self) -> None:
        """Restart what died or stalled; start what is due."""
        if self.proc is None:
            if time.monotonic() >= self.next_start:
                self.start()
            return
        code = self.proc.poll()
        if code is not None:
            self.proc = None
            self.st.pid, self.st.last_exit = None, code
            self.schedule_restart(f"{self.name} exited with status {code}")
            return
        if self.spec.health_path and time.monotonic() - self.last_health >= HEALTH_EVERY_S:
            self.last_health = time.monotonic()
            status = probe_health(self.st.port, self.spec.health_path).get("status")
            if status in RESTART_STATES:
                self.strikes += 1
                if self.strikes >= STALL_STRIKES:
                    self.stop()
                    self.schedule_restart(f"{self.name} reported {status} {STALL_STRIKES} times in a row")
            else:
                self.strikes = 0


def probe_health(port: int | None, path: str = "/health", timeout: float = 2.0) -> dict[str, Any]:
    """The JSON of a service's /health (``{"status": "unreachable"}`` when it does not answer)."""
    import httpx

    if port is None:
        return {"status": "unknown"}
    try:
        r = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=timeout)
        body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
    except (httpx.HTTPError, ValueError):
        return {"status": "unreachable"}
    if not isinstance(body, dict):
        body = {}
    body.setdefault("status", "ok" if r.status_code == 200 else f"http {r.status_code}")
    return body
