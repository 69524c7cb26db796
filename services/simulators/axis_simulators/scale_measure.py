"""Measurements of ``make bench-scale``: latencies over HTTP, write throughput, the export, sizes.

Latencies are p50 / p95 over repeated calls on varying targets. Throughput runs the services' own batch code on
fresh inspections (discrepancy: ``DiscrepancyService.handle``; inference: the repository calls the scoring
pipeline makes per batch, without a model) so that the same run on an empty and a full stack can be compared.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from axis_adapters.kafka import RawRecord
from axis_contracts import ImageCaptured, UserScored, topics
from axis_contracts.wells import PlateType, wells_of
from axis_inference.pipeline import fuse_batch
from axis_inference.scores_repo import ImageScore, PgScoresRepo

from axis_simulators.scale_fill import CRYSTAL, INFERENCE, OTHER, T0

# which service owns a table while everything still lives in ``public`` (after issue 14: the schema says it)
OWNERS = {
    "inference": ("images", "image_scores", "inspection_scores"),
    "discrepancy": (
        "ml_scores",
        "ml_score_history",
        "user_scores",
        "comparisons",
        "comparison_history",
        "discrepancies",
        "lims_gateway_requests",
    ),  # fmt: skip
    "curation": ("accounts", "auth_sessions", "curator_labels", "datasets", "test_set_plates"),
}


@dataclass(frozen=True)
class Latency:
    """p50 / p95 of one kind of call, with the mean response size."""

    name: str
    p50_ms: float
    p95_ms: float
    calls: int
    mean_bytes: float = 0.0


def percentiles(name: str, seconds: Sequence[float], sizes: Sequence[int] = ()) -> Latency:
    """p50 and p95 (nearest rank) in milliseconds."""
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    mean = statistics.fmean(sizes) if sizes else 0.0
    return Latency(name, 1000 * statistics.median(ordered), 1000 * p95, len(ordered), mean)


def time_calls(name: str, targets: Sequence[Any], call: Callable[[Any], int], repeat: int) -> Latency:
    """Call ``call(target)`` ``repeat`` times over the targets (after one warm-up call each of the first two)."""
    for t in targets[:2]:
        call(t)
    seconds, sizes = [], []
    for i in range(repeat):
        t0 = time.perf_counter()
        sizes.append(call(targets[i % len(targets)]))
        seconds.append(time.perf_counter() - t0)
    return percentiles(name, seconds, sizes)


def http_getter(client: httpx.Client, headers: dict[str, str]) -> Callable[[str], int]:
    """GET a path; fails loudly on a non-200 (a wrong figure is worse than none); returns the body size."""

    def get(path: str) -> int:
        r = client.get(path, headers=headers)
        if r.status_code != 200:
            raise RuntimeError(f"GET {path}: {r.status_code} {r.text[:300]}")
        return len(r.content)

    return get


class ServerProcess:
    """A service's own server as a child process (``python -m ...``), answering /health on a free port."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], url: str, log_path: str) -> None:
        self.url = url
        self._log = open(log_path, "ab")
        self._proc = subprocess.Popen([sys.executable, *argv], env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"{' '.join(argv)} exited with {self._proc.returncode}; see {log_path}")
            try:
                if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"{' '.join(argv)} did not answer on {url}; see {log_path}")

    def stop(self) -> None:
        """Terminate the child and wait for it."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._log.close()


# throughput ------------------------------------------------------------------------------------------------------
def _tp_scores(prefix: str, n: int, at_offset: timedelta) -> list[ImageScore]:
    wells = wells_of(PlateType.WELLS_96)
    out = []
    for i in range(n):
        plate, well = f"{prefix}-P{i // 96:04d}", wells[i % 96]
        at = T0 + at_offset + timedelta(seconds=i)
        for mode, p in (("visible", (i * 37 % 100) / 100), ("uv", (i * 53 % 100) / 100)):
            e = ImageCaptured(
                producer="axis-robot",
                plate_barcode=plate,
                well=well,
                inspection_id=f"{prefix}-{i:06d}",
                imaged_at=at,
                imaging_mode=mode,
                image_uri=f"s3://axis-images/{prefix}/{i:06d}-{mode}.png",
            )
            out.append(ImageScore(e, p, 0.5, f"axis-{mode}", "1", at + timedelta(minutes=5)))
    return out


async def inference_throughput(pool: Any, prefix: str, n: int, batch: int) -> float:
    """Images/s of the pipeline's per-batch repository calls (processed, add, lock, fuse, put, mark)."""
    repo = PgScoresRepo(pool)
    scores = _tp_scores(prefix, n, timedelta(days=300))
    t0 = time.perf_counter()
    for i in range(0, len(scores), batch):
        chunk = scores[i : i + batch]
        await repo.processed(INFERENCE, [s.event.event_id for s in chunk])
        async with repo.transaction() as tx:
            await tx.add_scores(chunk)
            stored = await tx.lock_inspections([s.event.inspection_id for s in chunk])
            for fused in fuse_batch(stored, chunk, producer=INFERENCE):
                await tx.put_inspection(fused)
            await tx.mark_processed(INFERENCE, [s.event.event_id for s in chunk])
    return len(scores) / (time.perf_counter() - t0)


async def discrepancy_throughput(service: Any, prefix: str, n: int, batch: int, disagree_every: int = 12) -> float:
    """Pairs/s of ``DiscrepancyService.handle`` on N fresh CrystalScored + UserScored pairs (ML first in a batch)."""
    scores = _tp_scores(prefix, n, timedelta(days=301))
    fused = fuse_batch({}, scores, producer=INFERENCE)
    records: list[RawRecord] = []
    for i, c in enumerate(fused):
        crystal = (c.label == "crystal") != (i % disagree_every == 0)
        user = UserScored(
            producer="axis-lims-gateway",
            inspection_id=c.inspection_id,
            user_id=f"user-{i % 40:02d}",
            score=CRYSTAL[i % 2] if crystal else OTHER[i % 4],
            scored_at=c.imaged_at + timedelta(hours=2),
        )
        records.append(RawRecord(topics.CRYSTAL_SCORED, 0, None, c.key().encode(), c.to_bytes()))
        records.append(RawRecord(topics.USER_SCORED, 0, None, None, user.to_bytes()))
    t0 = time.perf_counter()
    for i in range(0, len(records), batch):
        await service.handle(records[i : i + batch])
    return n / (time.perf_counter() - t0)


# export ----------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportFigures:
    """One export through the curation service's export code (its CLI, the exporter the API uses)."""

    wall_s: float
    peak_rss_mb: float
    candidates: int
    rows: int
    objects: int
    object_bytes: int
    returncode: int


def run_export(
    env: dict[str, str], name: str, plates: Sequence[str], store: Any, bucket: str, log: str
) -> ExportFigures:
    """``python -m axis_curation export`` as a child; its own peak RSS from wait4; objects read back from S3."""
    argv = [sys.executable, "-m", "axis_curation", "export", "--name", name, "--version", "1",
            "--plates", ",".join(plates), "--no-publish", "--created-by", "bench-scale"]  # fmt: skip
    with open(log, "ab") as out:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    keys = store.list_keys(bucket, f"{name}/1/")
    sizes = {k: len(store.get_bytes(f"s3://{bucket}/{k}")) for k in keys}
    candidates = rows = 0
    report_key = f"{name}/1/qc_report.json"
    if report_key in sizes:
        report = json.loads(store.get_bytes(f"s3://{bucket}/{report_key}"))
        candidates = int(report["stages"][0]["before"]["total"])
        rows = int(report["stages"][-1]["after"]["total"])
    return ExportFigures(
        wall, usage.ru_maxrss / 1024, candidates, rows, len(keys), sum(sizes.values()), proc.returncode
    )


def bucket_bytes(store: Any, bucket: str, depth: int = 2) -> dict[str, tuple[int, int]]:
    """(objects, bytes) per key prefix of ``depth`` parts (name/version in the datasets bucket)."""
    out: dict[str, tuple[int, int]] = {}
    for key in store.list_keys(bucket, ""):
        prefix = "/".join(key.split("/")[:depth])
        n, b = out.get(prefix, (0, 0))
        out[prefix] = (n + 1, b + len(store.get_bytes(f"s3://{bucket}/{key}")))
    return out


def table_sizes(conn: Any) -> list[tuple[str, str, int, int]]:
    """(service, table, rows estimate, bytes incl. indexes and TOAST) of every user table, largest first."""
    owner = {t: svc for svc, tables in OWNERS.items() for t in tables}
    rows = conn.execute(
        "SELECT schemaname, relname, n_live_tup, pg_total_relation_size(relid) FROM pg_stat_user_tables"
    ).fetchall()
    out = []
    for schema, table, live, size in rows:
        service = schema if schema != "public" else owner.get(table, "shared")
        out.append((service, table, int(live), int(size)))
    return sorted(out, key=lambda r: -r[3])
