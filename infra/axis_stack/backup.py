"""Backup and restore of an embedded stack: PostgreSQL dumps of its databases plus a copy of every bucket.

    python -m axis_stack backup  --data-dir .axis --to backups/2026-12-02
    python -m axis_stack restore --data-dir .axis --from backups/2026-12-02

``backup`` writes ``<to>/postgres/<db>.dump`` (``pg_dump -Fc`` of ``axis`` and ``mlflow``), ``<to>/s3/<bucket>/<key>``
for every object of every bucket, and ``<to>/backup.json`` (counts, sizes, time). Stop the services first
(``python -m axis_stack up --services none`` keeps only the servers; or ``make down`` then ``make up SERVICES=none``)
for a consistent copy. ``restore`` loads the dumps into the running stack (``pg_restore --clean --if-exists``) and
uploads the objects; the broker's topics are not in a backup (they are rebuilt by the services' next events, and
with Tansu's s3 storage they live in the ``axis-tansu`` bucket, which is copied like the others).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

from axis_stack.components import _minio, pg_bin
from axis_stack.state import StackState, load_state

DATABASES = ("axis", "mlflow")


def _state(data_dir: Path) -> StackState:
    state = load_state(Path(data_dir).resolve())
    if state is None:
        raise RuntimeError(f"no stack in {data_dir}: run `python -m axis_stack up --data-dir {data_dir}` first")
    return state


def _pg_env(state: StackState) -> dict[str, str]:
    return {**os.environ, "PGPASSWORD": state.pg_password}


def backup(data_dir: Path, dest: Path, *, say: Any = print) -> dict[str, Any]:
    """Dump the databases and copy every bucket into ``dest`` (created; must be empty)."""
    state = _state(data_dir)
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise ValueError(f"{dest} is not empty: back up into a new folder")
    (dest / "postgres").mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    port = str(state.ports["postgres"])
    for db in DATABASES:
        out = dest / "postgres" / f"{db}.dump"
        subprocess.run(
            [pg_bin("pg_dump"), "-Fc", "-h", "127.0.0.1", "-p", port, "-U", "axis", "-d", db, "-f", str(out)],
            env=_pg_env(state),
            check=True,
            capture_output=True,
        )
        say(f"postgres: {db} -> {out} ({out.stat().st_size} bytes)")
    client = _minio(state)
    objects: dict[str, int] = {}
    size = 0
    for bucket in client.list_buckets():
        n = 0
        for obj in client.list_objects(bucket.name, recursive=True):
            target = dest / "s3" / bucket.name / str(obj.object_name)
            target.parent.mkdir(parents=True, exist_ok=True)
            client.fget_object(bucket.name, str(obj.object_name), str(target))
            n += 1
            size += target.stat().st_size
        objects[bucket.name] = n
        say(f"s3: {bucket.name}: {n} objects")
    summary = {"databases": list(DATABASES), "objects": objects, "bytes": size, "seconds": round(time.time() - t0, 1)}
    (dest / "backup.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def restore(data_dir: Path, src: Path, *, say: Any = print) -> dict[str, Any]:
    """Load a backup into the running stack of ``data_dir`` (databases replaced, objects uploaded)."""
    state = _state(data_dir)
    src = Path(src)
    summary = json.loads((src / "backup.json").read_text())
    port = str(state.ports["postgres"])
    for db in summary["databases"]:
        dump = src / "postgres" / f"{db}.dump"
        subprocess.run(
            [
                pg_bin("pg_restore"),
                "--clean",
                "--if-exists",
                "--no-owner",
                "-h",
                "127.0.0.1",
                "-p",
                port,
                "-U",
                "axis",
                "-d",
                db,
                str(dump),
            ],
            env=_pg_env(state),
            check=True,
            capture_output=True,
        )
        say(f"postgres: {db} restored from {dump}")
    client = _minio(state)
    restored: dict[str, int] = {}
    root = src / "s3"
    for bucket_dir in sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []:
        if not client.bucket_exists(bucket_dir.name):
            client.make_bucket(bucket_dir.name)
        n = 0
        for path in sorted(p for p in bucket_dir.rglob("*") if p.is_file()):
            client.fput_object(bucket_dir.name, path.relative_to(bucket_dir).as_posix(), str(path))
            n += 1
        restored[bucket_dir.name] = n
        say(f"s3: {bucket_dir.name}: {n} objects restored")
    return {"objects": restored}
