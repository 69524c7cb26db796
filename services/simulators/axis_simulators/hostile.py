"""Black-box hostile-input run: bad messages of every class through the real broker and the LIMS HTTP API.

``python -m axis_simulators.hostile [--scale N] [--kill-midway]`` (``make hostile``) starts a fresh embedded
stack, runs the inference service, the discrepancy service and the LIMS gateway as processes, and sends, as an
outside client would, the corpus of ``hostile_corpus`` interleaved with good images and user scores: sizes
around and above every limit, control characters in every text field, ids past their limits, epoch and
far-future times, schema violations, forbidden buckets, missing objects, broken and hostile images, duplicates,
re-used event ids over HTTP. Then, through the outputs only (PostgreSQL rows, the dead-letter topic, HTTP
answers, ``/health``), it checks that every good record was applied exactly once, every bad one dead-lettered
exactly once with its own reason (or refused with a 4xx), that nothing answered 5xx and that every partition
still moves (canaries after the corpus), and prints last

``hostile: N bad inputs (K classes), G good interleaved: G applied, N rejected once each, 0 stalls, 0 5xx``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from axis_simulators.chaos_procs import ServiceProc, service_env
from axis_simulators.hostile_corpus import Case, Corpus
from axis_simulators.hostile_verify import Client, HostileReport, any_scored, check_moving, check_outputs

__all__ = ["Client", "HostileReport", "main", "run_hostile"]

API_KEY = "hostile-lims-key"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_hostile(
    data_dir: Path,
    *,
    scale: int = 1,
    kill_midway: bool = False,
    timeout_s: float = 600.0,
    say: Callable[[str], None] = print,
    seed: int = 0,
) -> HostileReport:
    """The whole run against the stack already up in ``data_dir``."""
    import httpx
    from axis_adapters.settings import ServiceSettings
    from axis_stack import stack_info

    from axis_simulators.chaos_verify import dead_letters_of

    t0 = time.monotonic()
    rng = random.Random(seed)
    info = stack_info(data_dir)
    run = uuid.uuid4().hex[:6].upper()
    work = data_dir / f"hostile-{run}"
    inf_port, gw_port, dis_port = _free_port(), _free_port(), _free_port()
    env = {
        **service_env(info.env, work, run),
        "AXIS_INFERENCE__HTTP_PORT": str(inf_port),
        "AXIS_INFERENCE__LAG_POLL_S": "1",
        "AXIS_INFERENCE__STALL_AFTER_S": "90",
        "AXIS_LIMS__PORT": str(gw_port),
        "AXIS_DISCREPANCY__HTTP_PORT": str(dis_port),
        "AXIS_DISCREPANCY__LAG_POLL_S": "1",
        "AXIS_LIMS__API_KEY": API_KEY,
    }
    procs = {
        "inference": ServiceProc("inference", ["-m", "axis_inference"], env, work / "inference.log"),
        "discrepancy": ServiceProc("discrepancy", ["-m", "axis_discrepancy"], env, work / "discrepancy.log"),
        "gateway": ServiceProc("gateway", ["-m", "axis_discrepancy.lims_gateway"], env, work / "gateway.log"),
    }
    settings = ServiceSettings(_env_file=str(info.env_file))  # type: ignore[call-arg]
    client = Client(settings)
    report = HostileReport()
    corpus = Corpus(run)
    inf_url, gw_url = f"http://127.0.0.1:{inf_port}", f"http://127.0.0.1:{gw_port}"
    dis_url = f"http://127.0.0.1:{dis_port}"
    for p in procs.values():
        p.start()
    await client.start()
    http = httpx.AsyncClient(timeout=30)
    try:
        say(f"hostile: run {run}; services starting (logs in {work})")
        await _wait_http(http, f"{inf_url}/health", procs, 240, lambda r: r.json().get("status") in ("ok", "degraded"))
        await _wait_http(http, f"{gw_url}/health", procs, 120, lambda r: r.status_code == 200)
        await _wait_http(http, f"{dis_url}/health", procs, 120, lambda r: r.status_code == 200)
        # phase 1: images, good and bad, interleaved (batches mix good and bad records of every partition)
        good_images = [corpus.good_image(level=60 + i % 150) for i in range(20 * scale)]
        bad_images = [c for _ in range(scale) for c in corpus.image_topic_bad()]
        dups = [
            Case("exact duplicate", "score", c.topic, c.value, c.key, event_id=c.event_id)
            for c in good_images[: 3 * scale]
        ]
        phase1 = good_images + bad_images + dups
        rng.shuffle(phase1)
        await asyncio.to_thread(client.upload, phase1)
        say(f"hostile: sending {len(phase1)} image events ({len(bad_images)} bad)")
        good_ids = [c.event_id for c in good_images if c.event_id]
        for i, case in enumerate(phase1):
            await client.send(case)
            if kill_midway:
                await asyncio.sleep(0.02)  # ~50 events/s: the service is consuming while the kill lands
            if kill_midway and i == len(phase1) // 2:
                sent_good = [c.event_id for c in phase1[: i + 1] if c.expect == "score" and c.event_id]
                await _until(partial(any_scored, client, sent_good), 120, procs, "the first scores")
                done = len(client.scored(sent_good))
                say(f"hostile: kill -9 of the inference service mid-run ({done} good images scored so far), restart")
                procs["inference"].kill9()
                procs["inference"].start()
        await _until(lambda: len(client.scored(good_ids)) == len(good_ids), timeout_s, procs, "good images scored")
        # phase 2: user scores over Kafka and HTTP, for inspections now known
        known = [json.loads(c.value)["inspection_id"] for c in good_images]
        good_users = [corpus.good_user_kafka(known[i % len(known)]) for i in range(10 * scale)]
        bad_users = [c for _ in range(scale) for c in corpus.user_topic_bad(known)]
        phase2 = good_users + bad_users
        rng.shuffle(phase2)
        say(f"hostile: sending {len(phase2)} user scores on Kafka ({len(bad_users)} bad)")
        for case in phase2:
            await client.send(case)
        http_cases = [c for _ in range(scale) for c in corpus.http_cases(known[len(known) // 2 :], API_KEY)]
        say(f"hostile: sending {len(http_cases)} requests to the LIMS gateway")
        statuses: list[tuple[Case, int, str]] = []
        for case in http_cases:
            r = await http.request(
                case.http["method"], gw_url + case.http["path"], headers=case.http["headers"], content=case.http["body"]
            )
            statuses.append((case, r.status_code, r.text[:300]))
        # canaries: good records after everything, on every partition of both topics
        canaries = [corpus.good_image(level=200) for _ in range(12)]
        await asyncio.to_thread(client.upload, canaries)
        for case in canaries:
            await client.send(case)
        user_canaries = [corpus.good_user_kafka(known[i]) for i in range(min(12, len(known)))]
        for case in user_canaries:
            await client.send(case)
        # wait for every effect, then check each input's outcome
        img_ids = good_ids + [c.event_id for c in canaries if c.event_id]
        user_ids = [c.event_id for c in good_users + user_canaries if c.event_id]
        user_ids += [c.event_id for c, code, _ in statuses if c.expect == "apply" and c.event_id]
        bad_cases = bad_images + bad_users
        bad_coords = {(c.topic, c.partition, c.offset): c for c in bad_cases}

        async def all_done() -> bool:
            letters = await dead_letters_of(settings.kafka.bootstrap_servers, "")
            seen = {(d.source_topic, d.partition, d.offset) for d in letters}
            return (
                len(client.scored(img_ids)) == len(set(img_ids))
                and len(client.applied(user_ids)) == len(set(user_ids))
                and set(bad_coords) <= seen
            )

        await _until_async(all_done, timeout_s, procs, "every good record applied and every bad one dead-lettered")
        await asyncio.sleep(3)  # room for a (wrong) second dead letter to show up
        letters = await dead_letters_of(settings.kafka.bootstrap_servers, "")
        check_outputs(
            report, client, letters, good_images, dups, canaries, good_users + user_canaries, statuses, bad_cases
        )
        report.stalls += await check_moving(report, http, [inf_url, dis_url], canaries, user_canaries, client)
    finally:
        await http.aclose()
        await client.stop()
        for p in procs.values():
            p.stop()
    report.seconds = time.monotonic() - t0
    return report


async def _wait_http(
    http: Any, url: str, procs: dict[str, ServiceProc], within_s: float, ok: Callable[[Any], bool]
) -> None:
    deadline = time.monotonic() + within_s
    while True:
        _alive(procs)
        try:
            r = await http.get(url)
            if ok(r):
                return
        except Exception:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready after {within_s:.0f}s")
        await asyncio.sleep(1)


def _alive(procs: dict[str, ServiceProc]) -> None:
    for p in procs.values():
        if p.exited():
            tail = p.log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"{p.name} exited ({p.returncode()}):\n" + "\n".join(tail))


async def _until(check: Callable[[], bool], within_s: float, procs: dict[str, ServiceProc], what: str) -> None:
    async def wrapped() -> bool:
        return await asyncio.to_thread(check)

    await _until_async(wrapped, within_s, procs, what)


async def _until_async(check: Callable[[], Any], within_s: float, procs: dict[str, ServiceProc], what: str) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        _alive(procs)
        if time.monotonic() > deadline:
            return  # the checks then say what is missing
        await asyncio.sleep(1)


def main(argv: list[str] | None = None) -> int:
    """``python -m axis_simulators.hostile``: fresh stack, the hostile run, the verdict, stack down."""
    from axis_stack import down, up

    p = argparse.ArgumentParser(prog="python -m axis_simulators.hostile", description=__doc__.splitlines()[0])
    p.add_argument("--scale", type=int, default=3, help="copies of the corpus (3: over 300 bad inputs)")
    p.add_argument(
        "--kill-midway",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="kill -9 the inference service half-way through the images (default on)",
    )
    p.add_argument("--data-dir", default=None, help="stack data dir (default: a fresh one under /tmp, removed)")
    p.add_argument("--timeout", type=float, default=600.0)
    a = p.parse_args(argv)
    fresh = a.data_dir is None
    data_dir = Path(a.data_dir or tempfile.mkdtemp(prefix="axis-hostile-", dir="/tmp"))
    print(f"hostile: starting the embedded stack in {data_dir}", flush=True)
    up(data_dir, quiet=True)
    try:
        report = asyncio.run(
            run_hostile(
                data_dir,
                scale=a.scale,
                kill_midway=a.kill_midway,
                timeout_s=a.timeout,
                say=lambda s: print(s, flush=True),
            )
        )
    finally:
        down(data_dir, quiet=True)
        if fresh:
            shutil.rmtree(data_dir, ignore_errors=True)
    for problem in report.problems[:30]:
        print(f"hostile: problem: {problem}")
    print(f"hostile: {report.seconds:.0f}s")
    print(report.line(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
