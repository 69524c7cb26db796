"""The data dir on disk: state file (ports, credentials, pids), env file, lock."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from axis_stack import procs
from axis_stack.components import StackState, default_s3_server
from axis_stack.procs import ProcRecord
from axis_stack.schemas import SCHEMAS, new_role_passwords

COMPONENTS: tuple[str, ...] = ("postgres", "s3", "kafka", "mlflow")
STATE_FILE = "stack.json"
ENV_FILE = "stack.env"
S3_ACCESS_KEY = "axis-dev-access"

ENV_KEYS: tuple[str, ...] = (
    "AXIS_ENV",
    "AXIS_KAFKA__BOOTSTRAP_SERVERS",
    "AXIS_POSTGRES__HOST",
    "AXIS_POSTGRES__PORT",
    "AXIS_POSTGRES__USER",
    "AXIS_POSTGRES__PASSWORD",
    "AXIS_POSTGRES__DBNAME",
    "AXIS_S3__ENDPOINT",
    "AXIS_S3__ACCESS_KEY",
    "AXIS_S3__SECRET_KEY",
    "AXIS_S3__SECURE",
    "AXIS_MLFLOW__TRACKING_URI",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    # one database role per service (axis_stack.schemas): AXIS_ROLES__<SERVICE> = its password
    *(f"AXIS_ROLES__{name.upper()}" for name in SCHEMAS),
)


def new_password() -> str:
    """A random dev password (URL- and conninfo-safe characters only)."""
    return secrets.token_hex(16)


def load_state(data_dir: Path) -> StackState | None:
    """The saved state of ``data_dir``, or None when the stack was never started there."""
    path = data_dir / STATE_FILE
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    return StackState(
        data_dir=data_dir,
        ports={k: int(v) for k, v in raw["ports"].items()},
        pg_password=raw["pg_password"],
        s3_access_key=raw["s3_access_key"],
        s3_secret_key=raw["s3_secret_key"],
        kafka_storage=raw.get("kafka_storage", "memory"),
        # Data dirs from before the durable S3 server had moto, which kept nothing: they get localbucket now.
        s3_server=raw.get("s3_server", "localbucket"),
        procs={name: ProcRecord(int(r["pid"]), int(r["start_time"])) for name, r in raw.get("procs", {}).items()},
        role_passwords={**new_role_passwords(), **raw.get("role_passwords", {})},
    )


def new_state(data_dir: Path, ports: dict[str, int] | None, kafka_storage: str) -> StackState:
    """Fresh state: configured ports (else free ones) and newly generated credentials."""
    chosen: dict[str, int] = {}
    for name in COMPONENTS:
        chosen[name] = (ports or {}).get(name) or procs.free_port()
    return StackState(
        data_dir=data_dir,
        ports=chosen,
        pg_password=new_password(),
        s3_access_key=S3_ACCESS_KEY,
        s3_secret_key=new_password(),
        kafka_storage=kafka_storage,
        s3_server=default_s3_server(),
        role_passwords=new_role_passwords(),
    )


def save_state(state: StackState) -> None:
    """Write the state file atomically, readable by the owner only (it holds the dev passwords)."""
    raw = {
        "ports": state.ports,
        "pg_password": state.pg_password,
        "s3_access_key": state.s3_access_key,
        "s3_secret_key": state.s3_secret_key,
        "kafka_storage": state.kafka_storage,
        "s3_server": state.s3_server,
        "role_passwords": state.role_passwords,
        "procs": {name: rec.to_json() for name, rec in state.procs.items()},
    }
    _write_private(state.data_dir / STATE_FILE, json.dumps(raw, indent=2) + "\n")


def stack_env(state: StackState) -> dict[str, str]:
    """The connection settings services read (AXIS_ prefix, ``__`` between nested groups), plus MLflow/AWS ones."""
    s3 = f"127.0.0.1:{state.ports['s3']}"
    mlflow = f"http://127.0.0.1:{state.ports['mlflow']}"
    return {
        "AXIS_ENV": "dev",
        "AXIS_KAFKA__BOOTSTRAP_SERVERS": f"127.0.0.1:{state.ports['kafka']}",
        "AXIS_POSTGRES__HOST": "127.0.0.1",
        "AXIS_POSTGRES__PORT": str(state.ports["postgres"]),
        "AXIS_POSTGRES__USER": "axis",
        "AXIS_POSTGRES__PASSWORD": state.pg_password,
        "AXIS_POSTGRES__DBNAME": "axis",
        "AXIS_S3__ENDPOINT": s3,
        "AXIS_S3__ACCESS_KEY": state.s3_access_key,
        "AXIS_S3__SECRET_KEY": state.s3_secret_key,
        "AXIS_S3__SECURE": "false",
        "AXIS_MLFLOW__TRACKING_URI": mlflow,
        "MLFLOW_TRACKING_URI": mlflow,
        "MLFLOW_S3_ENDPOINT_URL": f"http://{s3}",
        "AWS_ACCESS_KEY_ID": state.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": state.s3_secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        # each service connects as its own role (ServiceSettings.service_schema picks its password from here)
        **{
            f"AXIS_ROLES__{name.upper()}": state.role_passwords[name]
            for name in SCHEMAS
            if name in state.role_passwords
        },
    }


def render_env(env: dict[str, str]) -> str:
    """Dotenv text, one KEY=value per line in a stable order."""
    lines = ["# Written by `python -m axis_stack up`; read by services through AXIS_ENV_FILE."]
    lines += [f"{key}={env[key]}" for key in ENV_KEYS if key in env]
    lines += [f"{key}={value}" for key, value in env.items() if key not in ENV_KEYS]
    return "\n".join(lines) + "\n"


def parse_env(text: str) -> dict[str, str]:
    """Read dotenv text written by ``render_env`` (KEY=value lines, # comments)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip()
    return out


def write_env_file(state: StackState) -> Path:
    """Write ``<data_dir>/stack.env`` and return its path."""
    path = state.data_dir / ENV_FILE
    _write_private(path, render_env(stack_env(state)))
    return path


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def locked(data_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the data dir so that two `up`/`down` never interleave."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(data_dir / ".lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
