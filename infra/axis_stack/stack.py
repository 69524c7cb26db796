"""Start, check and stop the embedded stack: broker, PostgreSQL, S3 server and MLflow on 127.0.0.1."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from axis_stack import components as comp
from axis_stack import procs
from axis_stack.components import StackState
from axis_stack.procs import ProcRecord
from axis_stack.schemas import migrate_all
from axis_stack.state import COMPONENTS, load_state, locked, new_state, save_state, stack_env, write_env_file


@dataclass(frozen=True)
class ComponentStatus:
    """Health of one server of the stack."""

    name: str
    pid: int | None
    port: int | None
    healthy: bool
    detail: str


@dataclass(frozen=True)
class StackInfo:
    """How to reach a running stack; ``env`` holds exactly what ``stack.env`` holds."""

    data_dir: Path
    env: dict[str, str]
    kafka_bootstrap: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    mlflow_uri: str
    postgres_host: str
    postgres_port: int
    postgres_user: str
    postgres_password: str
    postgres_dbname: str
    env_file: Path
    pids: dict[str, int] = field(default_factory=dict)

    def role_passwords(self) -> dict[str, str]:
        """Each service's database role password (service name -> password), from the env file's AXIS_ROLES__*."""
        prefix = "AXIS_ROLES__"
        return {k[len(prefix) :].lower(): v for k, v in self.env.items() if k.startswith(prefix)}

    def postgres_conninfo(self, dbname: str | None = None) -> str:
        """libpq conninfo of the axis database (or ``dbname``) as the axis role."""
        return (
            f"host={self.postgres_host} port={self.postgres_port} user={self.postgres_user} "
            f"password={self.postgres_password} dbname={dbname or self.postgres_dbname}"
        )


@dataclass(frozen=True)
class _Spec:
    start: Callable[[StackState], ProcRecord]
    check: Callable[[StackState], str]
    provision: Callable[[StackState], None] | None
    timeout: float


SPECS: dict[str, _Spec] = {
    "postgres": _Spec(comp.start_postgres, comp.check_postgres, comp.provision_postgres, 60),
    "s3": _Spec(comp.start_s3, comp.check_s3, comp.provision_s3, 60),
    "kafka": _Spec(comp.start_kafka, comp.check_kafka, comp.provision_kafka, 60),
    "mlflow": _Spec(comp.start_mlflow, comp.check_mlflow, None, 120),
}


class _Progress:
    def __init__(self, quiet: bool) -> None:
        self.t0 = time.monotonic()
        self.quiet = quiet

    def say(self, msg: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - self.t0:6.1f}s] {msg}", flush=True)


def info_of(state: StackState) -> StackInfo:
    """StackInfo for a state (whether or not its servers run)."""
    env = stack_env(state)
    return StackInfo(
        data_dir=state.data_dir,
        env=env,
        kafka_bootstrap=env["AXIS_KAFKA__BOOTSTRAP_SERVERS"],
        s3_endpoint=env["AXIS_S3__ENDPOINT"],
        s3_access_key=state.s3_access_key,
        s3_secret_key=state.s3_secret_key,
        mlflow_uri=env["AXIS_MLFLOW__TRACKING_URI"],
        postgres_host="127.0.0.1",
        postgres_port=state.ports["postgres"],
        postgres_user="axis",
        postgres_password=state.pg_password,
        postgres_dbname="axis",
        env_file=state.data_dir / "stack.env",
        pids={name: rec.pid for name, rec in state.procs.items()},
    )


def _health(state: StackState, name: str) -> ComponentStatus:
    rec = state.procs.get(name)
    port = state.ports.get(name)
    if rec is None:
        return ComponentStatus(name, None, port, False, "not started")
    if not procs.is_alive(rec):
        return ComponentStatus(name, rec.pid, port, False, f"not running (pid {rec.pid} is gone)")
    try:
        return ComponentStatus(name, rec.pid, port, True, SPECS[name].check(state))
    except Exception as exc:  # a failing check is the answer, not an error
        return ComponentStatus(name, rec.pid, port, False, f"unhealthy: {exc!r}"[:200])


def _wait_ready(state: StackState, name: str, progress: _Progress) -> None:
    spec = SPECS[name]
    rec = state.procs[name]

    def ready() -> bool:
        if not procs.is_alive(rec):
            log = state.logs / f"{name}.log"
            raise procs.StartupFailed(f"{name} exited during start-up; see {log}")
        if spec.provision is not None:
            spec.provision(state)
        spec.check(state)
        return True

    try:
        procs.wait_until(ready, timeout=spec.timeout, what=name)
    except TimeoutError as exc:
        raise RuntimeError(f"{exc}; see {state.logs / (name + '.log')}") from exc
    progress.say(f"{name:<8} healthy on 127.0.0.1:{state.ports[name]} (pid {rec.pid})")


def _launch(state: StackState, name: str, progress: _Progress) -> None:
    old = state.procs.pop(name, None)
    if old is not None:
        _stop(state, name, old)
    port = state.ports[name]
    try:  # a server that was just stopped may hold its port a moment longer
        procs.wait_until(lambda: procs.port_is_free(port), timeout=10, what=f"port {port}", interval=0.2)
    except TimeoutError:
        raise RuntimeError(f"port {port} for {name} is taken by another process; free it or choose ports") from None
    progress.say(f"{name:<8} starting on 127.0.0.1:{state.ports[name]}")
    state.procs[name] = SPECS[name].start(state)
    save_state(state)


def _stop(state: StackState, name: str, rec: ProcRecord) -> None:
    if name == "postgres":
        comp.stop_postgres(state, rec)
    else:
        procs.stop_group(rec)


def up(
    data_dir: Path,
    *,
    kafka_storage: str | None = None,
    ports: dict[str, int] | None = None,
    quiet: bool = False,
) -> StackInfo:
    """Start whatever of the stack is not healthy in ``data_dir`` (a no-op when all is), provision it, return it.

    ``kafka_storage`` None keeps the data dir's broker storage (a new data dir gets the default).
    """
    data_dir = Path(data_dir).resolve()
    progress = _Progress(quiet)
    if kafka_storage is not None and kafka_storage not in comp.KAFKA_STORAGES:
        raise ValueError(f"kafka_storage must be one of {comp.KAFKA_STORAGES}, not {kafka_storage!r}")
    with locked(data_dir):
        (data_dir / "logs").mkdir(parents=True, exist_ok=True)
        known = load_state(data_dir)
        if kafka_storage is None:
            kafka_storage = known.kafka_storage if known is not None else comp.DEFAULT_KAFKA_STORAGE
        state = known or new_state(data_dir, ports, kafka_storage)
        if ports:
            state.ports.update(ports)
        storage_changed = state.kafka_storage != kafka_storage
        state.kafka_storage = kafka_storage
        health = {name: _health(state, name) for name in COMPONENTS}
        if all(h.healthy for h in health.values()) and not storage_changed:
            progress.say("stack already up: nothing to do")
            write_env_file(state)
            return info_of(state)
        todo = [n for n in COMPONENTS if not health[n].healthy or (n == "kafka" and storage_changed)]
        if "s3" in todo and kafka_storage == "s3" and state.s3_server == "moto" and "kafka" not in todo:
            todo.append("kafka")  # its log lived in moto's S3 server, which keeps nothing across a restart
        started: list[str] = []
        try:
            _bring_up(state, todo, started, progress)
        except BaseException:
            progress.say(f"start-up failed: stopping what this call started ({', '.join(started) or 'nothing'})")
            for name in reversed(started):
                rec = state.procs.pop(name, None)
                if rec is not None:
                    _stop(state, name, rec)
            save_state(state)
            raise
        env_path = write_env_file(state)
        progress.say(f"stack up; settings in {env_path}")
        return info_of(state)


def _bring_up(state: StackState, todo: list[str], started: list[str], progress: _Progress) -> None:
    # Launch early what others wait on, so that start-ups overlap: S3 first, PostgreSQL (blocking) meanwhile.
    order = ["s3", "postgres", "kafka", "mlflow"]
    for name in order:
        if name == "kafka" and state.kafka_storage == "s3" and "s3" in todo:
            _wait_ready(state, "s3", progress)
            todo = [n for n in todo if n != "s3"]
        if name == "mlflow" and "postgres" in todo:
            _wait_ready(state, "postgres", progress)
            todo = [n for n in todo if n != "postgres"]
        if name in todo:
            _launch(state, name, progress)
            started.append(name)
    for name in order:
        if name in todo:
            _wait_ready(state, name, progress)
        elif name in SPECS and SPECS[name].provision is not None and name not in started:
            SPECS[name].provision(state)  # type: ignore[misc]
    applied = migrate_all(state.pg_conninfo(), state.role_passwords)
    progress.say(f"migrations: {', '.join(applied) if applied else 'all applied already'}")


def stack_info(data_dir: Path) -> StackInfo:
    """StackInfo of the stack already started in ``data_dir`` (starts nothing; raises when there is none)."""
    return info_of(_require_state(Path(data_dir).resolve()))


def status(data_dir: Path) -> dict[str, ComponentStatus]:
    """Health of every server of the stack in ``data_dir``."""
    state = load_state(Path(data_dir).resolve())
    if state is None:
        return {name: ComponentStatus(name, None, None, False, "never started here") for name in COMPONENTS}
    return {name: _health(state, name) for name in COMPONENTS}


def down(data_dir: Path, *, quiet: bool = False) -> list[str]:
    """Stop exactly the processes this data dir's `up` started; return the names stopped."""
    data_dir = Path(data_dir).resolve()
    progress = _Progress(quiet)
    with locked(data_dir):
        state = load_state(data_dir)
        if state is None:
            progress.say("nothing to stop: the stack was never started here")
            return []
        stopped = []
        for name in reversed(COMPONENTS):
            rec = state.procs.pop(name, None)
            if rec is None:
                continue
            _stop(state, name, rec)
            save_state(state)
            stopped.append(name)
            progress.say(f"{name:<8} stopped (pid {rec.pid})")
        return stopped


def stop_component(data_dir: Path, component: str) -> None:
    """Stop one server (chaos tests); its port and data stay reserved in the state."""
    _check_name(component)
    data_dir = Path(data_dir).resolve()
    with locked(data_dir):
        state = _require_state(data_dir)
        rec = state.procs.pop(component, None)
        if rec is not None:
            _stop(state, component, rec)
        save_state(state)


def start_component(data_dir: Path, component: str, *, quiet: bool = True) -> None:
    """(Re)start one server on its recorded port and provision it again (buckets, topics)."""
    _check_name(component)
    data_dir = Path(data_dir).resolve()
    progress = _Progress(quiet)
    with locked(data_dir):
        state = _require_state(data_dir)
        _launch(state, component, progress)
        _wait_ready(state, component, progress)


def restart(data_dir: Path, component: str, *, quiet: bool = True) -> None:
    """Stop then start one server, same port."""
    stop_component(data_dir, component)
    start_component(data_dir, component, quiet=quiet)


def _check_name(component: str) -> None:
    if component not in COMPONENTS:
        raise ValueError(f"unknown component {component!r}; one of {', '.join(COMPONENTS)}")


def _require_state(data_dir: Path) -> StackState:
    state = load_state(data_dir)
    if state is None:
        raise RuntimeError(f"no stack in {data_dir}: run `python -m axis_stack up --data-dir {data_dir}` first")
    return state
