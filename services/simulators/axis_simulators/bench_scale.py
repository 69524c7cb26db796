"""``python -m axis_simulators.bench_scale [--scale S]`` (``make bench-scale``): a facility's year, then measured.

Starts a fresh embedded stack (the code behind ``make up``), measures write throughput on it while it is empty,
fills it with a year of a high-throughput facility (``axis_simulators.scale_fill``: 1.0M images / 509k
inspections over 5,000 plates at scale 1), then measures with the data in place: plate map (96 and 1,536 wells),
well history and queue page over HTTP from the curation service's own server process, statistics by plate / user /
week / model version from the LIMS gateway's server process, the audit of one image, the same throughput runs
again, an export of >= 200k candidates through the curation export command (wall time, peak memory, objects),
database size per service and object-store bytes per dataset version. Prints a table and, last,
``scale: 1.0M images, plate map p95 X ms, queue p95 Y ms, stats p95 Z ms, export 200k in T s (peak M MB),
throughput full/empty R``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from axis_simulators import scale_measure as m
from axis_simulators.scale_fill import CURATORS, CapturingPublisher, FillPlan, FillResult, fill, label_all

PASSWORD = "bench-scale-password"
FILL_RECORD = "bench-scale-fill.json"
GOALS = {"plate map": 200.0, "queue": 200.0, "stats": 500.0, "export_s": 600.0, "export_mb": 2048.0, "ratio": 0.8}


def say(text: str) -> None:
    """Progress on stdout, at once."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def _free_port() -> int:
    from axis_curation.server import free_port

    return free_port()


class Bench:
    """One run: the stack's settings, adapters and the figures collected so far."""

    def __init__(self, scale: float, repeat: int, data_dir: Path) -> None:
        from axis_adapters.settings import ServiceSettings, load_settings
        from axis_curation.settings import CurationSettings
        from axis_discrepancy.settings import DiscrepancySettings
        from axis_inference.settings import InferenceSettings

        self.scale, self.repeat, self.data_dir = scale, repeat, data_dir
        self.plan = FillPlan.of(scale)
        self.disc = load_settings(DiscrepancySettings)  # each service's own database role and schema
        self.cur = load_settings(CurationSettings)
        self.inf = load_settings(InferenceSettings)
        self.admin = load_settings(ServiceSettings)  # operator tools (audit, sizes) see every schema
        self.publisher = CapturingPublisher()
        self.latencies: list[m.Latency] = []
        self.throughput: dict[str, dict[str, float]] = {}
        self.export: m.ExportFigures | None = None
        self.fill: FillResult | None = None
        self.env = dict(os.environ, AXIS_CURATION__BOOTSTRAP_ADMIN="false", AXIS_CURATION__BCRYPT_ROUNDS="4")

    # adapters ----------------------------------------------------------------------------------------------------
    async def _service(self, pool: Any) -> Any:
        from axis_discrepancy.service import DiscrepancyService

        return DiscrepancyService(
            pool=pool,
            publisher=self.publisher,
            scheme=self.disc.lims.score_scheme,
            crystal_topic=self.disc.discrepancy.crystal_scored_topic,
            user_topic=self.disc.discrepancy.user_scored_topic,
        )

    def _store(self) -> Any:
        from axis_adapters.objectstore import MinioObjectStore

        return MinioObjectStore(self.cur.s3)

    async def throughput_run(self, label: str) -> None:
        """Discrepancy pairs/s and inference bookkeeping images/s on fresh inspections."""
        from axis_adapters.db import async_pool

        n = max(500, round(2000 * min(1.0, self.scale * 4)))
        pool = await async_pool(self.disc.postgres, max_size=4)
        ipool = await async_pool(self.inf.postgres, max_size=4)
        try:
            service = await self._service(pool)
            batch = self.disc.discrepancy.max_records
            # the median of three runs: the machine is shared, one run can catch a busy moment
            disc = statistics.median(
                [await m.discrepancy_throughput(service, f"TP{label}{i}", n, batch) for i in range(3)]
            )
            inf = statistics.median([await m.inference_throughput(ipool, f"TI{label}{i}", n, 16) for i in range(3)])
            self.publisher.take()  # these inspections are not part of the year
        finally:
            await pool.close()
            await ipool.close()
        self.throughput[label] = {"discrepancy pairs/s": disc, "inference images/s": inf}
        say(f"throughput ({label} stack): discrepancy {disc:,.0f} pairs/s, inference bookkeeping {inf:,.0f} images/s")

    # fill --------------------------------------------------------------------------------------------------------
    async def fill_stack(self) -> None:
        """The year's data through each service's write path, then the curator labels."""
        from axis_adapters.db import async_pool, connect, sync_pool
        from axis_curation.auth import Authenticator, PostgresAccountStore
        from axis_curation.consensus import ConsensusRule, Vote, decide
        from axis_curation.curation_repo import CurationRepo

        p = self.plan
        say(f"fill: {p.plates:,} plates ({p.plates_1536} of 1,536 wells), {p.inspections:,} inspections, "
            f"{2 * p.inspections:,} images; export target {p.export_candidates:,} candidates")  # fmt: skip
        pool = await async_pool(self.disc.postgres, max_size=4)
        ipool = await async_pool(self.inf.postgres, max_size=3)
        cpool = await async_pool(self.cur.postgres, max_size=3)
        try:
            service = await self._service(pool)
            self.fill = await fill(
                p, pool=pool, inference_pool=ipool, curation_pool=cpool, service=service, publisher=self.publisher,
                s3=self.cur.s3, bucket=self.cur.s3.images_bucket, progress=say,
            )  # fmt: skip
        finally:
            for each in (pool, ipool, cpool):
                await each.close()
        spool = sync_pool(self.cur.postgres, max_size=4)
        try:
            auth = Authenticator(PostgresAccountStore(spool), bcrypt_rounds=4)
            for name in (*CURATORS, "scale-reader"):
                auth.create_account(name, PASSWORD, "curator")
            rule = ConsensusRule(self.cur.curation.consensus_min)

            def decider(votes: list[tuple[str, str, datetime]]) -> tuple[str, str | None]:
                d = decide([Vote(c, lab, at) for c, lab, at in votes], rule)  # type: ignore[arg-type]
                return d.status, d.resolved_label

            t0 = time.perf_counter()
            for done in label_all(CurationRepo(spool), decider):
                say(f"labels: {done:,} curator labels")
            self.fill.labels = done
            self.fill.add_time("curator labels", time.perf_counter() - t0)
        finally:
            spool.close()
        t0 = time.perf_counter()
        with connect(self.admin.postgres, autocommit=True) as conn:
            # What autovacuum does within minutes of a bulk load (statistics, visibility map), done now rather than
            # under the measurements: a year's rows arrive over a year, with autovacuum keeping up as they come.
            # (Left to autovacuum, its workers vacuumed the freshly loaded GBs while the reads and the "full"
            # throughput ran: 1,536-well maps ~360 ms p95 right after the fill, 118-180 ms on the same stack
            # later, cold caches included; discrepancy 822 pairs/s then, 1,332-1,549 on the same stack later.)
            conn.execute("VACUUM (ANALYZE)")
        self.fill.add_time("VACUUM ANALYZE", time.perf_counter() - t0)
        t0 = time.perf_counter()
        with connect(self.admin.postgres, autocommit=True) as conn:
            conn.execute("CHECKPOINT")  # the load's and the vacuum's dirty pages written out before the reads
        os.sync()
        self.fill.add_time("checkpoint", time.perf_counter() - t0)
        say("fill done: " + ", ".join(f"{k} {v:.0f} s" for k, v in self.fill.seconds.items()))
        (self.data_dir / FILL_RECORD).write_text(json.dumps(dataclasses.asdict(self.fill)))

    def load_fill(self) -> None:
        """What an earlier run with --keep wrote into this stack (for --reads-only)."""
        raw = json.loads((self.data_dir / FILL_RECORD).read_text())
        self.plan = FillPlan(**raw.pop("plan"))
        self.fill = FillResult(plan=self.plan, **raw)

    # reads -------------------------------------------------------------------------------------------------------
    def http_latencies(self) -> None:
        """Plate maps, well history, queue (curation server) and stats (LIMS gateway), each p50 / p95."""
        assert self.fill is not None
        env_file = os.environ["AXIS_ENV_FILE"]
        cport, gport = _free_port(), _free_port()
        env = dict(self.env, AXIS_ENV_FILE=env_file, AXIS_LIMS__PORT=str(gport))
        log = str(self.data_dir / "bench-scale-servers.log")
        cur = m.ServerProcess(
            ["-m", "axis_curation", "serve", "--port", str(cport)], env, f"http://127.0.0.1:{cport}", log
        )
        try:
            gw = m.ServerProcess(["-m", "axis_discrepancy.lims_gateway"], env, f"http://127.0.0.1:{gport}", log)
            try:
                self._curation_calls(cur.url)
                self._stats_calls(gw.url)
            finally:
                gw.stop()
        finally:
            cur.stop()

    def _curation_calls(self, url: str) -> None:
        assert self.fill is not None
        with httpx.Client(base_url=url, timeout=120) as client:
            r = client.post("/v1/tokens", json={"username": CURATORS[1], "password": PASSWORD})
            r.raise_for_status()
            get = m.http_getter(client, {"Authorization": f"Bearer {r.json()['access_token']}"})
            step = max(1, len(self.fill.plates_96) // self.repeat)
            p96 = self.fill.plates_96[::step]
            p1536 = self.fill.plates_1536
            wells = [f"/v1/plates/{b}/wells/{('A1', 'D7', 'H12')[i % 3]}" for i, b in enumerate(p96)]
            for name, targets in (
                ("plate map 96 wells", [f"/v1/plates/{b}" for b in p96]),
                ("plate map 1536 wells", [f"/v1/plates/{b}" for b in p1536]),
                ("well history", wells),
                ("queue page (50)", ["/v1/queue"]),
            ):
                self.latencies.append(m.time_calls(name, targets, get, self.repeat))
                say(_latency_line(self.latencies[-1]))

    def _stats_calls(self, url: str) -> None:
        key = self.disc.lims.api_key.get_secret_value()
        with httpx.Client(base_url=url, timeout=120) as client:
            get = m.http_getter(client, {"X-API-Key": key})
            for by in ("plate", "user", "week", "model_version"):
                self.latencies.append(m.time_calls(f"stats by {by}", [f"/v1/stats?by={by}"], get, self.repeat))
                say(_latency_line(self.latencies[-1]))

    def audit_latency(self) -> None:
        """``axis_cli audit`` of one image by URI (the function the CLI runs), over varying images."""
        from axis_adapters.db import connect
        from axis_cli.audit import audit

        assert self.fill is not None
        uris = [f"s3://{self.cur.s3.images_bucket}/scale/{b}/B3-visible.png" for b in self.fill.plates_96[::97]]
        with connect(self.admin.postgres, autocommit=True) as conn:
            self.latencies.append(
                m.time_calls("audit of one image", uris, lambda u: len(audit(conn, image_uri=u)), self.repeat)
            )
        say(_latency_line(self.latencies[-1]))

    def export_run(self) -> None:
        """One export of the export plates; wall, peak RSS, objects, bytes."""
        assert self.fill is not None
        env = dict(self.env, AXIS_ENV_FILE=os.environ["AXIS_ENV_FILE"])
        say(f"export: {len(self.fill.export_plates):,} plates, about {self.fill.candidates:,} agreement candidates")
        self.export = m.run_export(
            env,
            "scale",
            self.fill.export_plates,
            self._store(),
            self.cur.s3.datasets_bucket,
            str(self.data_dir / "bench-scale-export.log"),
        )
        e = self.export
        say(f"export: exit {e.returncode}, {e.candidates:,} candidates -> {e.rows:,} rows in {e.wall_s:.1f} s, "
            f"peak {e.peak_rss_mb:.0f} MB, {e.objects} objects, {e.object_bytes / 1e6:.1f} MB")  # fmt: skip

    # report ------------------------------------------------------------------------------------------------------
    def report(self) -> int:
        """Print the tables and the last line; 0 when every figure was measured."""
        from axis_adapters.db import connect

        assert self.fill is not None and self.export is not None
        f = self.fill
        print("\n== data written ==")
        for k, v in (("images", f.images), ("inspections", f.inspections), ("user scores", f.user_scores),
                     ("curator labels", f.labels), ("image objects (export plates)", f.image_objects)):  # fmt: skip
            print(f"  {k:34}{v:>14,}")
        print("\n== latency (ms) ==                       p50       p95   calls   mean bytes   goal p95")
        for lat in self.latencies:
            goal = _goal(lat.name)
            print(f"  {lat.name:34}{lat.p50_ms:>8.1f}{lat.p95_ms:>10.1f}{lat.calls:>8}{lat.mean_bytes:>13,.0f}"
                  f"{goal if goal else '':>11}")  # fmt: skip
        print("\n== throughput ==                       empty       full   full/empty")
        ratios = []
        for key in self.throughput.get("empty", {}):
            empty, full = self.throughput["empty"][key], self.throughput["full"][key]
            ratios.append(full / empty)
            print(f"  {key:30}{empty:>10,.0f}{full:>11,.0f}{full / empty:>12.2f}")
        e = self.export
        print(f"\n== export == {e.candidates:,} candidates -> {e.rows:,} manifest rows; wall {e.wall_s:.1f} s; "
              f"peak RSS {e.peak_rss_mb:.0f} MB; {e.objects} objects, {e.object_bytes:,} bytes")  # fmt: skip
        print("\n== database size per service ==")
        with connect(self.admin.postgres, autocommit=True) as conn:
            sizes = m.table_sizes(conn)
        per_service: dict[str, int] = {}
        for svc, _table, _rows, size in sizes:
            per_service[svc] = per_service.get(svc, 0) + size
        for svc, size in sorted(per_service.items(), key=lambda kv: -kv[1]):
            tables = ", ".join(
                f"{t} {s / 2**20:.0f} MB ({r:,} rows)" for sv, t, r, s in sizes if sv == svc and s > 2**20
            )
            print(f"  {svc:12}{size / 2**20:>9.0f} MB   {tables}")
        print("\n== object store ==")
        print(f"  images bucket (export plates): {f.image_objects:,} objects")
        for prefix, (n, b) in m.bucket_bytes(self._store(), self.cur.s3.datasets_bucket).items():
            print(f"  dataset version {prefix}: {n} objects, {b / 2**20:.1f} MB")
        plate = max((x.p95_ms for x in self.latencies if x.name.startswith("plate map")), default=0.0)
        queue = max((x.p95_ms for x in self.latencies if x.name.startswith("queue")), default=0.0)
        stats = max((x.p95_ms for x in self.latencies if x.name.startswith("stats")), default=0.0)
        ratio = min(ratios, default=0.0)
        print(
            f"scale: {f.images / 1e6:.1f}M images, plate map p95 {plate:.0f} ms, queue p95 {queue:.0f} ms, "
            f"stats p95 {stats:.0f} ms, export {e.candidates / 1000:.0f}k in {e.wall_s:.0f} s "
            f"(peak {e.peak_rss_mb:.0f} MB), throughput full/empty {ratio:.2f}",
            flush=True,
        )
        return 0 if e.returncode == 0 else 1


def _goal(name: str) -> str:
    for key in ("plate map", "queue", "stats"):
        if name.startswith(key):
            return f"<= {GOALS[key]:.0f}"
    return ""


def _latency_line(lat: m.Latency) -> str:
    return f"{lat.name}: p50 {lat.p50_ms:.1f} ms, p95 {lat.p95_ms:.1f} ms ({lat.calls} calls, {lat.mean_bytes:,.0f} B)"


async def _writes(bench: Bench) -> None:
    await bench.throughput_run("empty")
    await bench.fill_stack()


def reads(bench: Bench) -> int:
    """Only the read latencies, on a stack filled by an earlier run (after a fix: the same data, re-measured)."""
    bench.load_fill()
    bench.http_latencies()
    bench.audit_latency()
    print("\n== latency (ms) ==                       p50       p95   calls   mean bytes   goal p95")
    for lat in bench.latencies:
        print(f"  {lat.name:34}{lat.p50_ms:>8.1f}{lat.p95_ms:>10.1f}{lat.calls:>8}{lat.mean_bytes:>13,.0f}")
    return 0


def run(bench: Bench) -> int:
    """All steps, in order."""
    t0 = time.perf_counter()
    asyncio.run(_writes(bench))
    bench.http_latencies()
    bench.audit_latency()
    asyncio.run(bench.throughput_run("full"))
    bench.export_run()
    say(f"measured; {time.perf_counter() - t0:.0f} s since the stack was up")
    return bench.report()


def main(argv: list[str] | None = None) -> int:
    """Entry point: a fresh stack in a temporary folder (or --data-dir), the run, the stack stopped."""
    ap = argparse.ArgumentParser(prog="python -m axis_simulators.bench_scale", description=__doc__.splitlines()[0])
    ap.add_argument(
        "--scale",
        type=float,
        default=float(os.environ.get("SCALE", "1.0")),
        help="fraction of a facility's year (1.0: 5,000 plates, 1.0M images; default $SCALE or 1)",
    )
    ap.add_argument("--repeat", type=int, default=40, help="calls per latency figure (default 40)")
    ap.add_argument("--data-dir", type=Path, default=None, help="stack folder (must be new; default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="leave the stack running afterwards (stop: axis_stack down)")
    ap.add_argument("--reads-only", action="store_true", help="re-measure the reads on the stack of a --keep run")
    args = ap.parse_args(argv)
    if args.reads_only and args.data_dir is None:
        ap.error("--reads-only needs the --data-dir of an earlier run with --keep")
    logging.basicConfig(level=logging.WARNING)
    import axis_stack

    t0 = time.perf_counter()
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="axis-scale-", dir="/tmp"))
    say(f"{'using the filled' if args.reads_only else 'starting a fresh'} stack in {data_dir}")
    info = axis_stack.up(data_dir, quiet=True)  # also applies migrations added since
    os.environ["AXIS_ENV_FILE"] = str(info.env_file)
    try:
        bench = Bench(args.scale, args.repeat, data_dir)
        code = reads(bench) if args.reads_only else run(bench)
        say(f"bench-scale took {time.perf_counter() - t0:.0f} s in all")
        return code
    finally:
        if not args.keep:
            axis_stack.down(data_dir, quiet=True)
            if args.data_dir is None:
                shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
