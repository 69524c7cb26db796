"""Chaos run: kill and restart services and servers under load, then count what was lost or doubled.

``python -m axis_simulators.chaos [--events N]`` (``make chaos``) starts a fresh embedded stack with the broker on
its persistent ``s3://`` storage, runs the inference and discrepancy services as subprocesses, has the robot
simulator send N image events while a scientist answers each scored inspection, and meanwhile kill -9s the
inference service (twice) and the discrepancy service, and restarts the broker and PostgreSQL. Afterwards it
checks in PostgreSQL that every image has exactly one score per model version, every inspection one fused score
and every disagreement one open queue item, and that nothing was dead-lettered, and prints
``chaos: N sent, N scored, 0 lost, 0 duplicated, R restarts survived``.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import hashlib
import math
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from axis_adapters.kafka import publish_event
from axis_adapters.retry import RetryPolicy, retry_async
from axis_contracts import UserScored

from axis_simulators.chaos_procs import ServiceProc, service_env
from axis_simulators.chaos_verify import ChaosCounts, count_outcome, dead_letters_of, scored_inspections

DEFAULT_SCHEDULE: tuple[tuple[float, str], ...] = (
    (0.15, "kill:inference"),
    (0.30, "kill:discrepancy"),
    (0.45, "restart:kafka"),
    (0.60, "restart:postgres"),
    (0.75, "kill:inference"),
)
PUBLISH_POLICY = RetryPolicy(attempts=40, base_delay_s=0.2, max_delay_s=2.0)


@dataclass
class ChaosReport:
    """What a chaos run did and found."""

    counts: ChaosCounts
    restarts: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """No loss, no duplicate, nothing dead-lettered, no unplanned crash."""
        c = self.counts
        return c.lost == 0 and c.duplicated == 0 and c.dead_lettered == 0 and not self.crashes and c.sent > 0

    def line(self) -> str:
        """The one-line verdict."""
        c = self.counts
        return (
            f"chaos: {c.sent} sent, {c.scored} scored, {c.lost} lost, {c.duplicated} duplicated, "
            f"{len(self.restarts)} restarts survived"
        )


class RetryingPublisher:
    """A broker publisher that rides out broker restarts (bounded back-off); duplicates are deduped downstream."""

    def __init__(self, broker: Any) -> None:
        self._broker = broker

    async def publish(self, message: Any, topic: str, *, key: bytes | None = None, headers: Any = None) -> Any:
        async def once() -> Any:
            return await asyncio.wait_for(
                self._broker.publish(message, topic=topic, key=key, headers=headers), timeout=15
            )

        return await retry_async(once, policy=PUBLISH_POLICY, what=f"publish to {topic}")


def robot_config(events: int, run: str, seed: int) -> Any:
    """Plates x wells x 2 modes >= events, one inspection each, small images."""
    from axis_simulators.robot import RobotConfig

    plates = max(1, math.ceil(events / 192))
    wells = max(1, math.ceil(events / (2 * plates)))
    return RobotConfig(
        domain="B",
        plates=plates,
        wells=wells,
        inspections=1,
        seed=seed,
        size=(128, 96),
        barcode_prefix=f"CH{run}",
        run_id=f"chaos-{run}",
        render_threads=1,
    )


def human_score(inspection_id: str) -> str:
    """The scientist's (deterministic) class for an inspection: half crystal, half other."""
    return "single_crystals" if hashlib.sha256(inspection_id.encode()).digest()[0] % 2 else "clear"


def user_event(inspection_id: str) -> UserScored:
    """The UserScored for an inspection, with an id derived from it (a resend is a no-op)."""
    return UserScored(
        event_id=uuid.uuid5(uuid.NAMESPACE_URL, f"axis-chaos/{inspection_id}"),
        producer="chaos-scientist",
        inspection_id=inspection_id,
        user_id="chaos-scientist",
        score=human_score(inspection_id),
        scored_at=datetime.now(UTC),
    )


async def _scientist(conninfo: str, prefix: str, publisher: Any, done: asyncio.Event, sent: set[str]) -> None:
    """Answer every scored inspection of the run once (PostgreSQL restarts are waited out)."""
    while not done.is_set():
        try:
            ids = await asyncio.to_thread(scored_inspections, conninfo, prefix)
        except Exception:
            ids = []
        for iid in sorted(set(ids) - sent):
            await publish_event(publisher, user_event(iid))
            sent.add(iid)
        try:
            await asyncio.wait_for(done.wait(), timeout=1.0)
        except TimeoutError:
            pass


async def run_chaos(
    data_dir: Path,
    *,
    events: int = 2000,
    schedule: tuple[tuple[float, str], ...] = DEFAULT_SCHEDULE,
    rate: float | None = None,
    timeout_s: float = 900.0,
    say: Callable[[str], None] = print,
    seed: int = 0,
) -> ChaosReport:
    """Run the whole chaos scenario against the stack already up in ``data_dir`` (broker on s3 storage)."""
    from axis_adapters.kafka import make_broker
    from axis_adapters.objectstore import MinioObjectStore
    from axis_adapters.settings import ServiceSettings
    from axis_stack import restart, stack_info

    from axis_simulators.robot import run_robot

    t0 = time.monotonic()
    _dump_tasks_on_sigusr2()
    info = stack_info(data_dir)
    run = uuid.uuid4().hex[:6].upper()
    work = data_dir / f"chaos-{run}"
    env = service_env(info.env, work, run)
    settings = ServiceSettings(_env_file=str(info.env_file))  # type: ignore[call-arg]
    conninfo = settings.postgres.conninfo()
    services = {
        "inference": ServiceProc("inference", ["-m", "axis_inference"], env, work / "inference.log"),
        "discrepancy": ServiceProc("discrepancy", ["-m", "axis_discrepancy"], env, work / "discrepancy.log"),
    }
    for proc in services.values():
        proc.start()
    report = ChaosReport(counts=ChaosCounts())
    broker = make_broker(settings.kafka)
    await broker.start()
    publisher = RetryingPublisher(broker)
    config = robot_config(events, run, seed)
    total = config.plates * config.wells * 2
    progress = {"sent": 0}
    rate = rate if rate is not None else max(5.0, total / 60.0)
    config = config.model_copy(update={"rate": rate})
    say(f"chaos: run {run}: {total} image events at {rate:.0f}/s; data in {data_dir}")
    done = asyncio.Event()
    answered: set[str] = set()
    scientist = asyncio.create_task(_scientist(conninfo, f"CH{run}", publisher, done, answered))
    robot = asyncio.create_task(
        run_robot(
            config,
            store=MinioObjectStore(settings.s3),
            publisher=publisher,
            on_progress=lambda n, _: progress.__setitem__("sent", n),
        )
    )
    pending = sorted(schedule)
    try:
        while pending or not robot.done():
            for proc in services.values():
                if proc.exited():
                    report.crashes.append(f"{proc.name} exited by itself ({proc.returncode()}); restarted")
                    say(f"chaos: {report.crashes[-1]}")
                    proc.start()
            if pending and progress["sent"] >= pending[0][0] * total:
                _, action = pending.pop(0)
                kind, target = action.split(":")
                if kind == "kill":
                    services[target].kill9()
                    services[target].start()
                else:
                    await asyncio.to_thread(restart, data_dir, target)
                report.restarts.append(f"{action} at {progress['sent']}/{total} sent")
                say(f"chaos: {report.restarts[-1]}")
            if robot.done() and robot.exception() is not None:
                raise robot.exception()  # type: ignore[misc]
            await asyncio.sleep(0.2)
        sent = (await robot).events
        say(f"chaos: robot done ({sent} image events sent); waiting for scores and comparisons")
        report.counts = await _wait_settled(conninfo, f"CH{run}", sent, answered, t0 + timeout_s, say, services)
        done.set()
        await scientist
        report.counts.dead_lettered = len(await dead_letters_of(settings.kafka.bootstrap_servers, f"CH{run}"))
    finally:
        done.set()
        scientist.cancel()
        robot.cancel()
        await broker.stop()
        for proc in services.values():
            proc.stop()
    report.seconds = time.monotonic() - t0
    return report


async def _wait_settled(
    conninfo: str,
    prefix: str,
    total: int,
    answered: set[str],
    deadline: float,
    say: Callable[[str], None],
    services: dict[str, ServiceProc],
) -> ChaosCounts:
    """Poll until every image is scored and every inspection compared (or the deadline); return the counts."""
    last = ChaosCounts()
    while time.monotonic() < deadline:
        for proc in services.values():
            if proc.exited():
                say(f"chaos: {proc.name} exited by itself ({proc.returncode()}); restarted")
                proc.start()
        try:
            last = await asyncio.to_thread(count_outcome, conninfo, prefix, total)
        except Exception as exc:  # PostgreSQL may still be coming back
            say(f"chaos: counting failed ({type(exc).__name__}); retrying")
            await asyncio.sleep(1)
            continue
        if last.scored >= total and last.compared >= last.inspections == len(answered) and last.unpublished == 0:
            await asyncio.sleep(2)  # let stragglers (redelivered duplicates) land before the final count
            return await asyncio.to_thread(count_outcome, conninfo, prefix, total)
        await asyncio.sleep(1)
    say("chaos: timed out waiting for the pipeline to settle")
    return last


def _dump_tasks_on_sigusr2() -> None:
    """`kill -USR2 <pid>` prints where every asyncio task of the run is waiting (for stuck runs)."""

    def dump() -> None:
        for task in asyncio.all_tasks():
            task.print_stack(limit=8, file=sys.stderr)

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, dump)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread (tests): no dump
        pass


def main(argv: list[str] | None = None) -> int:
    """``python -m axis_simulators.chaos``: fresh stack (broker on s3 storage), chaos run, verdict, stack down."""
    from axis_stack import down, up

    p = argparse.ArgumentParser(prog="python -m axis_simulators.chaos", description=__doc__.splitlines()[0])
    p.add_argument("--events", type=int, default=2000, help="image events the robot sends (default 2000)")
    p.add_argument("--rate", type=float, default=None, help="images per second (default: events / 60 s)")
    p.add_argument("--data-dir", default=None, help="stack data dir (default: a fresh one under /tmp, removed)")
    p.add_argument("--keep", action="store_true", help="leave the stack running and its data dir in place")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for the pipeline to settle")
    a = p.parse_args(argv)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1 <pid>` prints every thread's stack (stuck runs)
    fresh = a.data_dir is None
    data_dir = Path(a.data_dir or tempfile.mkdtemp(prefix="axis-chaos-", dir="/tmp"))
    print(f"chaos: starting the embedded stack in {data_dir} (broker storage s3)", flush=True)
    up(data_dir, kafka_storage="s3", quiet=True)
    try:
        report = asyncio.run(
            run_chaos(data_dir, events=a.events, rate=a.rate, timeout_s=a.timeout, say=lambda s: print(s, flush=True))
        )
    finally:
        if not a.keep:
            down(data_dir, quiet=True)
            if fresh:
                shutil.rmtree(data_dir, ignore_errors=True)
    c = report.counts
    print(
        f"chaos: {c.inspections} inspections, {c.fused} fused scores, {c.disagreements} disagreements, "
        f"{c.queue_items} open queue items, {c.dead_lettered} dead letters, {len(report.crashes)} unplanned "
        f"crashes, {report.seconds:.0f}s"
    )
    for problem in c.problems[:20]:
        print(f"chaos: problem: {problem}")
    print(report.line(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
