"""Every AXIS Loop service as a supervised process: started, restarted with back-off, logged with rotation, stopped.

``python -m axis_stack up`` starts the embedded stack, then (unless ``--services none``) one detached supervisor
process (``python -m axis_stack supervise``) that runs the chosen services with the stack's settings:

- each service is a child process in its own process group, its output in ``<data-dir>/logs/<name>.log``
  (rotated at 10 MB, 3 old files kept);
- a child that exits is restarted after a back-off (1 s, doubling up to 60 s; reset once it has run 2 minutes);
- a child whose ``/health`` says ``stalled`` (events wait and nothing progresses) or ``stopped`` (its consumer is
  gone) three checks in a row is
  restarted the same way; ``waiting_for_champion`` is a state, not a failure;
- SIGTERM (``python -m axis_stack down``) stops every child with SIGTERM — each finishes its batch in flight —
  and SIGKILLs what is left after 45 s.

The supervisor writes ``<data-dir>/services.json`` (pids, ports, restarts, last exits) for ``status``; the
services' own settings (ports, the LIMS API key, the ingest folder) are in ``<data-dir>/services.env``.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from axis_stack import procs
from axis_stack.children import STOP_GRACE_S, Child, ChildState, RotatingLog, ServiceSpec, probe_health
from axis_stack.state import parse_env, render_env

__all__ = ["Child", "ChildState", "RotatingLog", "ServiceSpec", "probe_health", "start_services", "stop_services"]

STATE_FILE = "services.json"
ENV_FILE = "services.env"
SUPERVISOR_LOG = "supervisor.log"


SERVICES: dict[str, ServiceSpec] = {
    "inference": ServiceSpec("axis_inference", port_env="AXIS_INFERENCE__HTTP_PORT"),
    "discrepancy": ServiceSpec("axis_discrepancy", port_env="AXIS_DISCREPANCY__HTTP_PORT"),
    "lims-gateway": ServiceSpec("axis_discrepancy.lims_gateway", port_env="AXIS_LIMS__PORT", page="/docs"),
    "curation": ServiceSpec("axis_curation", ("serve", "--port", "{port}"), page="/"),
    "trainer": ServiceSpec("axis_trainer", port_env="AXIS_TRAINER__HTTP_PORT"),
    "patch-maps": ServiceSpec("axis_inference.patchmaps", ("--port", "{port}")),
    "ingest": ServiceSpec("axis_ingest", port_env="AXIS_INGEST__HTTP_PORT"),
    "promote-watch": ServiceSpec("axis_cli.promote_watch", port_env="AXIS_PROMOTE_WATCH__HTTP_PORT"),
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


# ------------------------------------------------------------------------------------------------ the supervisor
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
        job = body.get("current")
        if isinstance(job, dict):  # the trainer's job in progress
            detail.append(f"training {job.get('dataset')}@{job.get('version')} for {job.get('running_s')}s")
        if body.get("status") in ("retrying", "stopped") and body.get("problem"):
            detail.append(str(body["problem"])[:200])
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
