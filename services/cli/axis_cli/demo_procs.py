"""The demo's service processes: start each `python -m …` entry point with the stack env, log to files, stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PIDS_FILE = "services.json"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tail(path: Path, lines: int = 15) -> str:
    """The last lines of a log file (empty when missing)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class ServiceDied(RuntimeError):
    """A service process exited while the demo needed it."""


@dataclass
class ServiceProc:
    """One running service."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str]


@dataclass
class ServiceSet:
    """Every service the demo started; ``stop_all`` ends exactly these (process groups), newest first."""

    data_dir: Path
    base_env: Mapping[str, str]
    procs: dict[str, ServiceProc] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        """Where each service writes ``<name>.log``."""
        return self.data_dir / "logs"

    def start(self, name: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> ServiceProc:
        """Start ``python <argv>`` in its own process group with the stack env plus ``env``."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{name}.log"
        full_env = {**os.environ, **self.base_env, **(env or {}), "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, *argv]
        with open(log_path, "ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n".encode())
            log.flush()
            popen = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=full_env,
                cwd=str(Path.cwd()),
                start_new_session=True,
            )
        proc = ServiceProc(name=name, popen=popen, log_path=log_path, argv=list(argv))
        self.procs[name] = proc
        self._save()
        return proc

    def check_alive(self) -> None:
        """Raise ServiceDied (with the log's tail) when a started service has exited."""
        for proc in self.procs.values():
            code = proc.popen.poll()
            if code is not None:
                raise ServiceDied(
                    f"service {proc.name} exited with code {code}; see {proc.log_path}:\n{tail(proc.log_path)}"
                )

    def stop(self, name: str, timeout: float = 20.0) -> None:
        """SIGTERM the service's process group, SIGKILL after ``timeout``."""
        proc = self.procs.pop(name, None)
        if proc is None:
            return
        _stop_group(proc.popen.pid, proc.popen.wait, timeout)
        self._save()

    def stop_all(self, timeout: float = 20.0) -> None:
        """Stop every started service (newest first); each gets SIGTERM, then SIGKILL after ``timeout``."""
        for name in reversed(list(self.procs)):
            self.stop(name, timeout)

    def _save(self) -> None:
        path = self.data_dir / "demo" / PIDS_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {n: {"pid": p.popen.pid, "log": str(p.log_path), "argv": p.argv} for n, p in self.procs.items()}
        path.write_text(json.dumps(data, indent=1) + "\n")


def _stop_group(pid: int, wait: Callable[[float], object], timeout: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        wait(5.0)


def stop_recorded(data_dir: Path, timeout: float = 20.0) -> list[str]:
    """Stop the services a ``--keep-running`` demo left behind (recorded in <data-dir>/demo/services.json)."""
    path = data_dir / "demo" / PIDS_FILE
    if not path.exists():
        return []
    stopped: list[str] = []
    for name, rec in json.loads(path.read_text()).items():
        pid = int(rec["pid"])
        if not _is_our_service(pid, rec.get("argv") or []):
            continue

        def wait(t: float, pid: int = pid) -> None:
            deadline = time.monotonic() + t
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.2)
            raise subprocess.TimeoutExpired(str(pid), t)

        _stop_group(pid, wait, timeout)
        stopped.append(name)
    path.unlink()
    return stopped


def _is_our_service(pid: int, argv: Sequence[str]) -> bool:
    """True when ``pid`` still runs the command we recorded (pids get reused)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    text = [c.decode(errors="replace") for c in cmdline if c]
    return bool(argv) and text[-len(argv) :] == list(argv)


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    services: ServiceSet | None = None,
    interval: float = 1.0,
    on_wait: Callable[[], None] | None = None,
) -> None:
    """Poll ``check`` until true; TimeoutError naming ``what``; ServiceDied when a service exits meanwhile."""
    deadline = time.monotonic() + timeout
    while True:
        if services is not None:
            services.check_alive()
        if check():
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        if on_wait is not None:
            on_wait()
        time.sleep(interval)
