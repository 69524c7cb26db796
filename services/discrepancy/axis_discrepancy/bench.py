"""``python -m axis_discrepancy.bench``: N CrystalScored + UserScored pairs through the real broker and PostgreSQL.

Starts the embedded stack (or reuses the one in ``--data-dir`` / ``AXIS_ENV_FILE``), runs the discrepancy service
in-process on bench-only topics and consumer group, sends the pairs in shuffled order (the user score first for
about half), waits until every comparison is in PostgreSQL, then counts rows against what was sent.
The last line printed is ``discrepancy throughput: N pairs/s (M pairs, K disagreements, L lost, D duplicated)``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from axis_adapters.db import aconnect
from axis_adapters.settings import load_settings
from axis_contracts import CrystalScored, DiscrepancyFound, ModeScore, UserScored, topics

from axis_discrepancy.app import RunningService
from axis_discrepancy.cpu import tree_cpu_seconds
from axis_discrepancy.settings import DiscrepancySettings

CRYSTAL = ["microcrystals", "single_crystals"]
OTHER = ["clear", "precipitate", "phase_separation", "denatured"]


@dataclass(frozen=True)
class Pair:
    """One inspection's ML and user score, and whether they are meant to disagree."""

    ml: CrystalScored
    user: UserScored
    disagrees: bool


def make_pairs(n: int, *, prefix: str, disagree_rate: float, seed: int) -> list[Pair]:
    """N inspections with a known ML label and a user score that disagrees with probability ``disagree_rate``."""
    rng = random.Random(seed)
    t0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    pairs = []
    for i in range(n):
        iid = f"{prefix}-{i:06d}"
        p = rng.random()
        imaged = t0 + timedelta(seconds=i)
        mode = ModeScore(
            probability=p,
            threshold=0.5,
            model_name="axis-visible",
            model_version="1",
            image_uri=f"s3://axis-images/bench/{iid}.png",
            image_event_id=uuid.uuid4(),
        )
        plate = f"{prefix}-P{i // 96:04d}"
        well = f"{'ABCDEFGH'[(i % 96) // 12]}{i % 12 + 1}"
        ml = CrystalScored(
            producer="bench",
            plate_barcode=plate,
            well=well,
            inspection_id=iid,
            imaged_at=imaged,
            scores={"visible": mode},
            fused_probability=p,
            label=mode.label,
            threshold=0.5,
            model_name="axis-visible",
            model_version="1",
            scored_at=imaged + timedelta(minutes=5),
        )
        disagrees = rng.random() < disagree_rate
        human_crystal = (mode.label == "crystal") != disagrees
        user = UserScored(
            producer="bench",
            inspection_id=iid,
            user_id=f"user-{i % 7}",
            score=rng.choice(CRYSTAL if human_crystal else OTHER),
            scored_at=imaged + timedelta(hours=1),
        )
        pairs.append(Pair(ml=ml, user=user, disagrees=disagrees))
    return pairs


async def _ensure_topics(bootstrap: str, names: list[str], partitions: int = 3) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        missing = [t for t in names if t not in set(await admin.list_topics())]
        if missing:
            await admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in missing])
    finally:
        await admin.close()


async def _insert_images(settings: DiscrepancySettings, pairs: list[Pair]) -> None:
    """The inspections the discrepancy service would have learnt from ImageCaptured (its own
    ``captured_inspections``), so that user scores name known inspections."""
    async with await aconnect(settings.postgres) as conn:
        async with conn.cursor() as cur:
            async with cur.copy(
                "COPY captured_inspections (inspection_id, plate_barcode, well, drop_no, imaged_at) FROM STDIN"
            ) as copy:
                for p in pairs:
                    await copy.write_row((p.ml.inspection_id, p.ml.plate_barcode, p.ml.well, 1, p.ml.imaged_at))
        await conn.commit()


async def _send(bootstrap: str, messages: list[tuple[str, bytes | None, bytes]]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=20, max_batch_size=512 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for topic, key, value in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _count(settings: DiscrepancySettings, prefix: str) -> dict[str, int]:
    like = prefix + "-%"
    async with await aconnect(settings.postgres, autocommit=True) as conn:
        cur = await conn.execute(
            "SELECT (SELECT count(*) FROM comparisons WHERE inspection_id LIKE %(p)s), "
            "(SELECT count(*) FROM comparisons WHERE inspection_id LIKE %(p)s AND NOT agrees), "
            "(SELECT count(*) FROM comparison_history WHERE inspection_id LIKE %(p)s), "
            "(SELECT count(*) FROM discrepancies WHERE inspection_id LIKE %(p)s AND reason = 'disagreement'), "
            "(SELECT count(*) FROM discrepancies WHERE inspection_id LIKE %(p)s AND reason = 'disagreement' "
            "AND published_at IS NOT NULL), "
            "(SELECT count(*) FROM user_scores WHERE inspection_id LIKE %(p)s), "
            "(SELECT count(*) FROM ml_score_history WHERE inspection_id LIKE %(p)s)",
            {"p": like},
        )
        row = await cur.fetchone()
    assert row is not None
    keys = ["comparisons", "disagreements", "history", "items", "published", "user_scores", "ml_scores"]
    return dict(zip(keys, (int(v) for v in row), strict=True))


async def _wait_for(settings: DiscrepancySettings, prefix: str, comparisons: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (await _count(settings, prefix))["comparisons"] >= comparisons:
            return
        await asyncio.sleep(0.05)


async def _found_on_topic(bootstrap: str, prefix: str, expect: int, timeout_s: float) -> int:
    """DiscrepancyFound events of this run on the topic (read from the start, no consumer group)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topics.DISCREPANCY_FOUND, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    seen: dict[str, int] = {}
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and sum(seen.values()) < expect:
            batch = await consumer.getmany(timeout_ms=500, max_records=5000)
            for recs in batch.values():
                for rec in recs:
                    ev = DiscrepancyFound.model_validate_json(rec.value or b"{}")
                    if ev.inspection_id.startswith(prefix + "-"):
                        seen[ev.inspection_id] = seen.get(ev.inspection_id, 0) + 1
        await asyncio.sleep(0.5)  # a late duplicate would show up now
        for recs in (await consumer.getmany(timeout_ms=500)).values():
            for rec in recs:
                ev = DiscrepancyFound.model_validate_json(rec.value or b"{}")
                if ev.inspection_id.startswith(prefix + "-"):
                    seen[ev.inspection_id] = seen.get(ev.inspection_id, 0) + 1
    finally:
        await consumer.stop()
    return sum(seen.values())


async def run_bench(
    settings: DiscrepancySettings, *, pairs_n: int, disagree_rate: float, seed: int, stack_pids: Sequence[int] = ()
) -> int:
    """Run the benchmark against a running stack; print the table and the result line; 0 when all arrived once."""
    run_id = uuid.uuid4().hex[:8]
    prefix = f"bench-{run_id}"
    opts = settings.discrepancy.model_copy(
        update={
            "group_id": f"axis-discrepancy-bench-{run_id}",
            "crystal_scored_topic": f"bench-{run_id}.crystal-scored",
            "user_scored_topic": f"bench-{run_id}.user-scored",
            "image_captured_topic": None,
            "curator_labelled_topic": None,
        }
    )
    settings = settings.model_copy(update={"discrepancy": opts})
    bootstrap = settings.kafka.bootstrap_servers
    await _ensure_topics(bootstrap, [opts.crystal_scored_topic, opts.user_scored_topic])

    warm = make_pairs(1, prefix=prefix + "w", disagree_rate=0.0, seed=seed + 1)
    pairs = make_pairs(pairs_n, prefix=prefix, disagree_rate=disagree_rate, seed=seed)
    await _insert_images(settings, warm + pairs)
    rng = random.Random(seed)
    messages: list[tuple[str, bytes | None, bytes]] = []
    for p in pairs:
        ml = (opts.crystal_scored_topic, p.ml.key().encode(), p.ml.to_bytes())
        user_key = p.user.key()
        user = (opts.user_scored_topic, user_key.encode() if user_key else None, p.user.to_bytes())
        messages.extend([user, ml] if rng.random() < 0.5 else [ml, user])
    rng.shuffle(messages)
    expected_k = sum(p.disagrees for p in pairs)

    service = await RunningService.start(settings, log_level=logging.DEBUG)  # no access log line per batch
    try:
        # warm-up: the group has joined and the pool is open once one pair has gone through
        w = warm[0]
        await _send(
            bootstrap,
            [(opts.crystal_scored_topic, None, w.ml.to_bytes()), (opts.user_scored_topic, None, w.user.to_bytes())],
        )
        await _wait_for(settings, prefix + "w", 1)

        cpu0, own0 = tree_cpu_seconds([os.getpid(), *stack_pids]), tree_cpu_seconds([os.getpid()])
        t0 = time.perf_counter()
        await _send(bootstrap, messages)
        t_sent = time.perf_counter() - t0
        deadline = time.monotonic() + max(60.0, pairs_n / 50)
        counts = await _count(settings, prefix)
        while counts["comparisons"] < pairs_n or counts["published"] < counts["items"]:
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
            counts = await _count(settings, prefix)
        elapsed = time.perf_counter() - t0
        cpu, own = tree_cpu_seconds([os.getpid(), *stack_pids]) - cpu0, tree_cpu_seconds([os.getpid()]) - own0
        await asyncio.sleep(1.0)  # anything arriving late would be a duplicate
        counts = await _count(settings, prefix)
    finally:
        await service.stop()
    on_topic = await _found_on_topic(bootstrap, prefix, expected_k, timeout_s=30)

    lost = max(0, pairs_n - counts["comparisons"]) + max(0, expected_k - on_topic)
    duplicated = (
        max(0, counts["history"] - pairs_n)
        + max(0, counts["items"] - expected_k)
        + max(0, counts["user_scores"] - pairs_n)
        + max(0, counts["ml_scores"] - pairs_n)
        + max(0, on_topic - expected_k)
    )
    rate = counts["comparisons"] / elapsed if elapsed > 0 else 0.0
    rows = [
        ("pairs sent", pairs_n, pairs_n),
        ("messages sent", 2 * pairs_n, 2 * pairs_n),
        ("comparisons in PostgreSQL", pairs_n, counts["comparisons"]),
        ("comparison history rows", pairs_n, counts["history"]),
        ("disagreements (comparisons)", expected_k, counts["disagreements"]),
        ("curation queue items", expected_k, counts["items"]),
        ("DiscrepancyFound on the topic", expected_k, on_topic),
    ]
    print(f"{'':32}{'expected':>10}{'found':>10}")
    for name, exp, got in rows:
        print(f"{name:32}{exp:>10}{got:>10}")
    print(f"send time {t_sent:.2f} s; all comparisons stored after {elapsed:.2f} s (batches of <= {opts.max_records})")
    if cpu > 0:
        who = "this process + broker + PostgreSQL + S3 + MLflow" if stack_pids else "this process only"
        cores = os.cpu_count() or 1
        # the service is one Python thread: it cannot go faster than its own CPU time, nor all of it than cores allow
        bound = pairs_n / max(cpu / cores, own, 1e-9)
        print(
            f"CPU used meanwhile ({who}): {cpu:.2f} s, of which this process {own:.2f} s "
            f"({1000 * cpu / max(1, pairs_n):.2f} ms per pair); load average {os.getloadavg()[0]:.1f} on {cores} "
            f"cores; CPU-bound estimate with idle cores: {bound:.0f} pairs/s"
        )
    wrong = counts["disagreements"] != expected_k
    if wrong:
        print(f"WRONG: {counts['disagreements']} disagreements stored, {expected_k} expected")
    print(
        f"discrepancy throughput: {rate:.0f} pairs/s ({counts['comparisons']} pairs, {counts['disagreements']} "
        f"disagreements, {lost} lost, {duplicated} duplicated)",
        flush=True,
    )
    return 0 if (lost == 0 and duplicated == 0 and not wrong) else 1


def _pids_of_env_file(env_file: Path) -> list[int]:
    """The stack's server pids when the env file sits in an axis_stack data dir (else none: CPU of this process)."""
    try:
        import axis_stack

        return list(axis_stack.stack_info(env_file.parent).pids.values())
    except Exception:
        return []


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse arguments, bring up (or reuse) the stack, run, stop what was started."""
    ap = argparse.ArgumentParser(prog="python -m axis_discrepancy.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=5000, help="number of score + user-score pairs (default 5000)")
    ap.add_argument("--disagree-rate", type=float, default=0.08, help="fraction of pairs that disagree")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--data-dir", type=Path, default=None, help="reuse (or start and keep) the stack in this folder")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("faststream").setLevel(logging.WARNING)

    started: Path | None = None
    temp: str | None = None
    env_file = os.environ.get("AXIS_ENV_FILE")
    try:
        if args.data_dir is not None or not env_file:
            import axis_stack

            data_dir = args.data_dir or Path(temp := tempfile.mkdtemp(prefix="axis-bench-", dir="/tmp"))
            was_up = all(s.healthy for s in axis_stack.status(data_dir).values())
            info = axis_stack.up(data_dir, quiet=True)
            if not was_up and args.data_dir is None:
                started = data_dir
            elif not was_up:
                print(f"started the stack in {data_dir}; it keeps running (stop: python -m axis_stack down)")
            os.environ["AXIS_ENV_FILE"] = str(info.env_file)
            pids = list(info.pids.values())
        else:
            pids = _pids_of_env_file(Path(env_file))
        settings = load_settings(DiscrepancySettings)
        return asyncio.run(
            run_bench(settings, pairs_n=args.pairs, disagree_rate=args.disagree_rate, seed=args.seed, stack_pids=pids)
        )
    finally:
        if started is not None:
            import axis_stack

            axis_stack.down(started, quiet=True)
        if temp is not None:
            shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
