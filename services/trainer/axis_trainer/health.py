"""What the trainer's ``/health`` and ``/metrics`` show: the job in progress, the jobs done by outcome.

A training job legitimately holds the consumer for hours, so "no progress" is never a stall here: the trainer is
unhealthy only when its subscriber stopped consuming (``stopped``, 503; the supervisor restarts it).

    jobs = JobLog()
    jobs.begin("train", "v3")        # a DatasetExported is being trained on
    jobs.end("registered")           # registered | dead_lettered | test_set | skipped | duplicate | retried
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

OUTCOMES = ("registered", "dead_lettered", "test_set", "skipped", "duplicate", "retried")


@dataclass
class JobLog:
    """The trainer's job in progress and the count of finished jobs per outcome."""

    clock: Callable[[], float] = time.time
    current: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)

    def begin(self, dataset: str, version: str) -> None:
        """A job on ``dataset@version`` started."""
        self.current = {"dataset": dataset, "version": version, "started_at": self.clock()}

    def end(self, outcome: str, detail: str = "") -> None:
        """The job in progress ended with ``outcome`` (one of OUTCOMES)."""
        now = self.clock()
        job = self.current or {"dataset": None, "version": None, "started_at": now}
        took = max(0.0, now - job["started_at"])
        self.outcomes[outcome] += 1
        self.seconds[outcome] += took
        self.last = {**job, "outcome": outcome, "detail": detail, "seconds": round(took, 1)}
        self.current = None

    def as_dict(self) -> dict[str, Any]:
        """The job part of /health."""
        current = None
        if self.current is not None:
            current = {**self.current, "running_s": round(self.clock() - self.current["started_at"], 1)}
        return {"current": current, "last": self.last, "jobs_by_outcome": {o: self.outcomes[o] for o in OUTCOMES}}

    def health(self, consumer_problem: str | None) -> tuple[bool, dict[str, Any]]:
        """(ok, body): ``stopped`` when the consumer is gone, else ``training`` or ``ok`` (idle)."""
        status = "stopped" if consumer_problem else "training" if self.current is not None else "ok"
        return status != "stopped", {"status": status, "problem": consumer_problem, **self.as_dict()}

    def prometheus(self, consumer_problem: str | None) -> str:
        """/metrics: jobs and their seconds by outcome, whether a job runs and for how long, consumer up."""
        lines = ["# TYPE axis_trainer_jobs_total counter"]
        lines += [f'axis_trainer_jobs_total{{outcome="{o}"}} {self.outcomes[o]}' for o in OUTCOMES]
        lines.append("# TYPE axis_trainer_job_seconds_total counter")
        lines += [f'axis_trainer_job_seconds_total{{outcome="{o}"}} {self.seconds[o]:.1f}' for o in OUTCOMES]
        running = 0.0 if self.current is None else self.clock() - self.current["started_at"]
        lines += [
            "# TYPE axis_trainer_job_running gauge",
            f"axis_trainer_job_running {0 if self.current is None else 1}",
            "# TYPE axis_trainer_job_running_seconds gauge",
            f"axis_trainer_job_running_seconds {running:.1f}",
            "# TYPE axis_trainer_consumer_up gauge",
            f"axis_trainer_consumer_up {0 if consumer_problem else 1}",
        ]
        return "\n".join(lines) + "\n"
