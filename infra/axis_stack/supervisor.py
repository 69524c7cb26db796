"""Every AXIS Loop service as a supervised process: started, restarted with back-off, logged with rotation, stopped.

``python -m axis_stack up`` starts the embedded stack, then (unless ``--services none``) one detached supervisor
process (``python -m axis_stack supervise``) that runs the chosen services with the stack's settings:

- each service is a child process in its own process group, its output in ``<data-dir>/logs/<name>.log``
  (rotated at 10 MB, 3 old files kept);
- a child that exits is restarted after a back-off (1 s, doubling up to 60 s; reset once it has run 2 minutes);
- a child whose ``/health`` says ``stalled`` three checks in a row (events wait and nothing progresses) is
  restarted the same way; ``waiting_for_champion`` is a state, not a failure;
- SIGTERM (``python -m axis_stack down``) stops every child with SIGTERM — each finishes its batch in flight —
  and SIGKILLs what is left after 45 s.

The supervisor writes ``<data-dir>/services.json`` (pids, ports, restarts, last exits) for ``status``; the
services' own settings (ports, the LIMS API key, the ingest folder) are in ``<data-dir>/services.env``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from axis_stack import procs
from axis_stack.state import parse_env, render_env

STATE_FILE = "services.json"
ENV_FILE = "services.env"
SUPERVISOR_LOG = "supervisor.log"
LOG_MAX_BYTES = 10 * 1024 * 1024
LOG_BACKUPS = 3
STOP_GRACE_S = 45.0
HEALTH_EVERY_S = 5.0
STALL_STRIKES = 3


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


SERVICES: dict[str, ServiceSpec] = {
    "inference": ServiceSpec("axis_inference", port_env="AXIS_INFERENCE__HTTP_PORT"),
    "discrepancy": ServiceSpec("axis_discrepancy", port_env="AXIS_DISCREPANCY__HTTP_PORT"),
    "lims-gateway": ServiceSpec("axis_discrepancy.lims_gateway", port_env="AXIS_LIMS__PORT", page="/docs"),
    "curation": ServiceSpec("axis_curation", ("serve", "--port", "{port}"), page="/"),
    "trainer": ServiceSpec("axis_trainer", health_path=None),
    "patch-maps": ServiceSpec("axis_inference.patchmaps", ("--port", "{port}")),
    "ingest": ServiceSpec("axis_ingest", port_env="AXIS_INGEST__HTTP_PORT"),
    "promote-watch": ServiceSpec("axis_cli.promote_watch", health_path=None),
}


def known_services() -> list[str]:
    """Services whose packages are installed, in start order."""
    return [name for name, spec in SERVICES.items() if spec.available()]


def parse_selection(text: str | None) -> list[str]:
    """``all`` / ``none`` / a comma-separated subset; raises ValueError naming an unknown service."""
    if text is None or text.strip() in ("", "all"):
        return known_services()
    if text.strip() == "none":
        return []
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVICES]
    if unknown:
        raise ValueError(f"unknown services {unknown}; choose from {', '.join(SERVICES)} (or all / none)")
    missing = [n for n in names if not SERVICES[n].available()]
    if missing:
        raise ValueError(f"services {missing} are not installed in this environment")
    return names


# ------------------------------------------------------------------------------------------------ state files
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


def read_state(data_dir: Path) -> dict[str, Any]:
    """The supervisor's state file (empty when there is none)."""
    path = data_dir / STATE_FILE
    try:
        return dict(json.loads(path.read_text()))
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(path)


def services_env(data_dir: Path) -> dict[str, str]:
    """The services' own settings (created once per data dir: a random LIMS API key, the ingest folder)."""
    path = data_dir / ENV_FILE
    env = parse_env(path.read_text()) if path.exists() else {}
    changed = False
    token = secrets.token_urlsafe(24)
    defaults = {
        "AXIS_LIMS__API_KEY": secrets.token_urlsafe(24),
        "AXIS_INGEST__WATCH_DIR": str(data_dir / "inbox"),
        # the inference side's token (/metrics, the patch-map server), handed to curation for the overlay
        "AXIS_INFERENCE__METRICS_TOKEN": token,
        "AXIS_CURATION__PATCHMAP_TOKEN": token,
    }
    for k, v in defaults.items():
        if k not in env:
            env[k] = v
            changed = True
    if changed:
        path.write_text(render_env(env))
        path.chmod(0o600)
    Path(env["AXIS_INGEST__WATCH_DIR"]).mkdir(parents=True, exist_ok=True)  # where the imagers' files go
    return env


# ------------------------------------------------------------------------------------------------ log rotation
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


# ------------------------------------------------------------------------------------------------ the supervisor
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
            if probe_health(self.st.port, self.spec.health_path).get("status") == "stalled":
                self.strikes += 1
                if self.strikes >= STALL_STRIKES:
                    self.stop()
                    self.schedule_restart(f"{self.name} reported stalled {STALL_STRIKES} times in a row")
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


def supervise(data_dir: Path, names: list[str]) -> int:
    """Run the services until SIGTERM/SIGINT; the body of ``python -m axis_stack supervise``."""
    from axis_stack.state import load_state, stack_env

    state = load_state(data_dir)
    if state is None:
        print(f"no stack in {data_dir}: run `python -m axis_stack up` first", file=sys.stderr)
        return 1
    base = {k: v for k, v in os.environ.items()}
    env = {**base, **stack_env(state), **services_env(data_dir), "PYTHONUNBUFFERED": "1"}
    env["AXIS_ENV_FILE"] = str(data_dir / "stack.env")
    old = read_state(data_dir).get("services", {})
    children: dict[str, Child] = {}
    for name in names:
        spec = SERVICES[name]
        port = old.get(name, {}).get("port") if spec.health_path or "{port}" in spec.args else None
        if (spec.health_path or "{port}" in " ".join(spec.args)) and (port is None or not procs.port_is_free(port)):
            port = procs.free_port()
        st = ChildState(name=name, port=port, restarts=int(old.get(name, {}).get("restarts", 0)))
        children[name] = Child(name, spec, st, env, RotatingLog(data_dir / "logs" / f"{name}.log"))
    if "patch-maps" in children and "curation" in children:  # the curator pages draw the maps it serves
        env["AXIS_CURATION__PATCHMAP_URL"] = f"http://127.0.0.1:{children['patch-maps'].st.port}"
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    def save(running: bool) -> None:
        _write_json(
            data_dir / STATE_FILE,
            {
                "supervisor": {"pid": os.getpid(), "running": running, "updated": time.time()},
                "services": {n: asdict(c.st) for n, c in children.items()},
            },
        )

    print(f"supervising {', '.join(names)} (logs in {data_dir / 'logs'})", flush=True)
    try:
        while not stop.is_set():
            for child in children.values():
                child.tick()
            save(True)
            stop.wait(1.0)
    finally:
        print("stopping: every service finishes its batch in flight", flush=True)
        threads = [threading.Thread(target=c.stop) for c in children.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for c in children.values():
            c.st.state = "stopped"
            c.log.close()
        save(False)
        print("all services stopped", flush=True)
    return 0


# ------------------------------------------------------------------------------------------------ control side
def supervisor_record(data_dir: Path) -> procs.ProcRecord | None:
    """The running supervisor of ``data_dir`` (None when none runs)."""
    path = data_dir / "supervisor.pid.json"
    try:
        rec = procs.ProcRecord(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None
    return rec if procs.is_alive(rec) else None


def start_services(data_dir: Path, names: list[str], *, say: Any = print, env: dict[str, str] | None = None) -> bool:
    """Start the supervisor with ``names`` unless one runs already (then a no-op); True when it started one.

    ``env`` (default: this process's environment) is what the supervisor and every service inherit.
    """
    data_dir = Path(data_dir).resolve()
    running = supervisor_record(data_dir)
    if running is not None:
        current = sorted(read_state(data_dir).get("services", {}))
        say(f"services already supervised (pid {running.pid}): {', '.join(current) or 'none'}")
        if sorted(names) != current:
            say("  (to run another set: `make down`, then `make up SERVICES=…`)")
        return False
    if not names:
        return False
    argv = [sys.executable, "-m", "axis_stack", "supervise", "--data-dir", str(data_dir), "--services", ",".join(names)]
    rec = procs.spawn(argv, log_path=data_dir / "logs" / SUPERVISOR_LOG, env=dict(os.environ if env is None else env))
    (data_dir / "supervisor.pid.json").write_text(json.dumps(asdict(rec)))
    say(f"services supervised (pid {rec.pid}): {', '.join(names)}; logs in {data_dir / 'logs'}")
    return True


def stop_services(data_dir: Path, *, say: Any = print) -> bool:
    """Stop the supervisor (it stops every service gracefully first); True when one was running."""
    data_dir = Path(data_dir).resolve()
    rec = supervisor_record(data_dir)
    if rec is None:
        return False
    say("services stopping (each finishes its batch in flight)")
    procs.stop_group(rec, timeout=STOP_GRACE_S + 15)
    say("services stopped")
    return True


@dataclass
class ServiceRow:
    """One line of ``status``."""

    name: str
    state: str
    pid: int | None
    port: int | None
    health: str
    lag: str
    detail: str


def service_rows(data_dir: Path) -> Iterator[ServiceRow]:
    """What each supervised service is doing: process state, /health, consumer lag, models, pages."""
    data = read_state(Path(data_dir).resolve())
    alive = supervisor_record(Path(data_dir).resolve()) is not None
    for name, st in data.get("services", {}).items():
        spec = SERVICES.get(name)
        state = st.get("state", "?") if alive else "stopped"
        port = st.get("port")
        body = probe_health(port, spec.health_path) if spec and spec.health_path and alive else {}
        lag = body.get("consumer", {}).get("lag_total") if isinstance(body.get("consumer"), dict) else None
        detail = []
        if body.get("models"):
            detail.append("models " + ", ".join(f"{m}={v}" for m, v in body["models"].items()))
        if body.get("status") == "waiting_for_champion":
            detail.append(
                "no champion yet: `python -m axis_cli register BUNDLE_DIR` (a local bundle or published AXIS adapters)"
                " or `make demo` for the demo's foundation model"
            )
        consumer: dict[str, Any] = body["consumer"] if isinstance(body.get("consumer"), dict) else {}
        if consumer.get("oldest_unprocessed_age_s"):
            detail.append(f"oldest unprocessed {consumer['oldest_unprocessed_age_s']}s")
        if body.get("stalled"):
            detail.append(str(body["stalled"]))
        if body.get("dead_lettered_by_reason"):
            detail.append("dead letters " + ", ".join(f"{r}={n}" for r, n in body["dead_lettered_by_reason"].items()))
        if spec and spec.page and port and alive:
            detail.append(f"http://127.0.0.1:{port}{spec.page}")
        if st.get("restarts"):
            detail.append(f"{st['restarts']} restarts (last: {st.get('last_reason', '')})")
        yield ServiceRow(
            name,
            state,
            st.get("pid"),
            port,
            str(body.get("status", "-")) if body else "-",
            "-" if lag is None else str(lag),
            "; ".join(detail),
        )


def main(argv: list[str] | None = None) -> int:
    """``python -m axis_stack supervise --data-dir D --services a,b``."""
    p = argparse.ArgumentParser(prog="python -m axis_stack supervise")
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--services", default="all")
    a = p.parse_args(argv)
    return supervise(Path(a.data_dir).resolve(), parse_selection(a.services))
