"""Process bookkeeping for the embedded stack: start detached, identify by (pid, start time), stop for good."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


class StartupFailed(RuntimeError):
    """A server died while we waited for it: waiting longer cannot help."""


@dataclass(frozen=True)
class ProcRecord:
    """A process the stack started: pid plus its kernel start time, so a reused pid is never mistaken for it."""

    pid: int
    start_time: int

    def to_json(self) -> dict[str, int]:
        """Plain dict for the state file."""
        return {"pid": self.pid, "start_time": self.start_time}


def start_time_of(pid: int) -> int | None:
    """Kernel start time of ``pid`` in clock ticks since boot, or None when no such process exists."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    if fields[0] == "Z":  # a zombie has exited already
        return None
    return int(fields[19])


def _proc_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (ppid, pgid, start time) of every live (non-zombie) process."""
    table: dict[int, tuple[int, int, int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            table[int(entry.name)] = (int(fields[1]), int(fields[2]), int(fields[19]))
    return table


def record_of(pid: int) -> ProcRecord:
    """Record a just-started process."""
    start = start_time_of(pid)
    if start is None:
        raise RuntimeError(f"process {pid} exited right after it was started")
    return ProcRecord(pid, start)


def is_alive(rec: ProcRecord) -> bool:
    """True when the recorded process is still the same running process."""
    return start_time_of(rec.pid) == rec.start_time


def group_members(rec: ProcRecord) -> list[int]:
    """Live pids of ``rec``: itself, its process group and its descendants (started no earlier than it)."""
    table = _proc_table()
    members = []
    for pid, (_, pgid, start) in table.items():
        if start < rec.start_time:
            continue
        if pid == rec.pid or pgid == rec.pid or _descends_from(pid, rec.pid, table):
            members.append(pid)
    if rec.pid in members and table[rec.pid][2] != rec.start_time:
        members.remove(rec.pid)  # a reused pid, not ours
    return members


def _descends_from(pid: int, ancestor: int, table: dict[int, tuple[int, int, int]]) -> bool:
    seen = 0
    while pid in table and seen < 64:
        pid = table[pid][0]
        if pid == ancestor:
            return True
        seen += 1
    return False


def spawn(argv: list[str], *, log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> ProcRecord:
    """Start ``argv`` detached in its own session (it outlives the caller), output appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    return record_of(proc.pid)


def stop_group(rec: ProcRecord, *, timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``rec``, SIGKILL whatever is left after ``timeout`` seconds; reap it."""
    members = group_members(rec)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in members:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + (timeout if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            _reap(rec.pid)
            members = group_members(rec)
            if not members:
                _await_reaped(rec.pid)
                return
            time.sleep(0.1)
    if members:
        raise RuntimeError(f"processes {members} survived SIGKILL")


def _await_reaped(pid: int, timeout: float = 5.0) -> None:
    """Give init a moment to reap an exited server (a zombie still shows up to `kill -0` pid checks)."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and start_time_of(pid) is None and time.monotonic() < deadline:
        _reap(pid)
        time.sleep(0.1)


def _reap(pid: int) -> None:
    """Collect ``pid`` if it is an exited child of ours, so it does not linger as a zombie.

    Only that pid: waiting on any child (-1) would also reap other children of the caller (e.g. services a
    chaos run started with Popen), whose exit status would then be lost.
    """
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True when 127.0.0.1:``port`` can be bound."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the servers do: connections of a just-stopped server in TIME_WAIT do not block the port.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    interval: float = 0.25,
    retry_on: tuple[type[Exception], ...] = (Exception,),
) -> None:
    """Call ``check()`` until it returns True or ``timeout`` passes; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except StartupFailed:
            raise
        except retry_on as exc:  # such a failure means "not ready yet"
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout:.0f} s (last error: {last!r})")
