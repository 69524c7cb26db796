"""Dataset exports as background jobs: a runner thread in the curation service claims queued jobs and runs them.

A job's stages (``export.STAGES``): reading the candidate rows (streamed), measuring the images that pass label
consensus, building (QC stages, split), writing the objects, registering the version (one transaction with the
job's success). Progress goes to the job row at most every ``interval_s``. A service that stops cleanly puts its
running job back in the queue; one that is killed leaves it running with its lock released, and the next runner
to start claims it again and restarts it from the beginning (the objects are rewritten at the same keys; the
version is registered only at the end). DatasetExported is published after registration, and re-sent at the
next start when the service died in between.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from axis_adapters.kafka import Publisher, publish_event
from axis_adapters.objectstore import ObjectStoreUnavailable
from pydantic import ValidationError

from axis_curation.curation_repo import DatasetExists, DatasetRecord
from axis_curation.export import DatasetExporter, ExportRequest, event_for, frozen_test_set
from axis_curation.export_jobs_repo import Claim, ExportJob, ExportJobsRepo

log = logging.getLogger(__name__)


class Interrupted(Exception):
    """The runner is stopping: leave the job for the next start."""


class JobProgress:
    """Progress of a claimed job, written to its row (throttled); raises Interrupted once the runner stops."""

    def __init__(self, claim: Claim, stop: threading.Event, *, interval_s: float = 0.5) -> None:
        self.claim = claim
        self.stop = stop
        self.interval_s = interval_s
        self.name = ""
        self.done = 0
        self.total = 0
        self._started = time.monotonic()
        self._written = 0.0

    def _finished(self) -> dict[str, Any] | None:
        if not self.name:
            return None
        return {"stage": self.name, "items": self.done, "seconds": round(time.monotonic() - self._started, 3)}

    def stage(self, name: str, total: int) -> None:
        """Close the current stage (into the job's stage log) and begin ``name``."""
        finished = self._finished()
        self.name, self.done, self.total, self._started = name, 0, total, time.monotonic()
        self._write(finished)

    def advance(self, n: int = 1) -> None:
        """Count ``n`` items; write the row for a batch (n > 1), else when ``interval_s`` has passed."""
        self.done += n
        if self.stop.is_set():
            raise Interrupted(f"stopped during {self.name}")
        if n > 1 or time.monotonic() - self._written >= self.interval_s:
            self._write(None)

    def close(self) -> None:
        """Append the last stage to the log."""
        self._write(self._finished())
        self.name = ""

    def _write(self, finished: dict[str, Any] | None) -> None:
        ExportJobsRepo.progress(self.claim, self.name, self.done, self.total, finished)
        self._written = time.monotonic()


def describe(exc: BaseException) -> str:
    """What went wrong, for the job's message."""
    if isinstance(exc, ValidationError):
        return "config: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
    if isinstance(exc, ObjectStoreUnavailable):
        return f"object store unreachable: {exc}; export again when it is back"
    if isinstance(exc, DatasetExists | ValueError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


class ExportJobRunner:
    """Runs export jobs one at a time in a daemon thread; ``run_one`` also serves the CLI in-process."""

    def __init__(
        self,
        *,
        jobs: ExportJobsRepo,
        exporter: DatasetExporter,
        publisher: Publisher | None,
        producer: str,
        poll_s: float = 2.0,
        max_attempts: int = 3,
        progress_interval_s: float = 0.5,
    ) -> None:
        self.jobs = jobs
        self.exporter = exporter
        self.publisher = publisher
        self.producer = producer
        self.poll_s = poll_s
        self.max_attempts = max_attempts
        self.progress_interval_s = progress_interval_s
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # one job -------------------------------------------------------------------------------------
    def run_one(self, job_id: int | None = None) -> ExportJob | None:
        """Claim and run one job (the oldest free one, or ``job_id``); the finished job, or None when nothing
        was claimed or the runner stopped during it."""
        with self.jobs.claim(job_id, max_attempts=self.max_attempts) as claim:
            if claim is None:
                return None
            job = claim.job
            log.info("export job %s: %s/%s, attempt %s", job.id, job.name, job.version, job.attempts)
            try:
                self._run(claim)
            except Interrupted as exc:
                self._requeue(claim, f"interrupted ({exc}); it restarts when the curation service runs again")
                return None
            except Exception as exc:
                if self._stop.is_set():  # the service is closing its pool under the job: not the job's fault
                    self._requeue(claim, f"interrupted by a service stop ({type(exc).__name__})")
                    return None
                log.warning("export job %s failed: %s", job.id, describe(exc), exc_info=True)
                ExportJobsRepo.fail(claim, describe(exc))
        return self.jobs.get(job.id)

    def _run(self, claim: Claim) -> None:
        job = claim.job
        request = ExportRequest.model_validate(job.request)
        progress = JobProgress(claim, self._stop, interval_s=self.progress_interval_s)
        with self.jobs.candidate_rows(request.plates) as (total, rows):
            candidates = self.exporter.read(total, rows, progress)
        result = self.exporter.build(request, candidates, progress)
        del candidates
        record, removed_uri = self.exporter.write(
            request, job.version, result, created_by=job.created_by, progress=progress
        )
        progress.stage("registering", 1)
        summary: dict[str, Any] = {
            **record.model_dump(mode="json"),
            "removed_uri": removed_uri,
            "removed_by_stage": result.removed_by_stage(),
            "warnings": list(result.warnings),
            "published": False,
        }
        progress.advance()
        progress.close()
        plates = sorted(result.plates) if request.purpose == "test" else ()
        ExportJobsRepo.register(claim, record, summary, plates)

    @staticmethod
    def _requeue(claim: Claim, message: str) -> None:
        log.info("export job %s: %s", claim.job.id, message)
        if claim.conn.closed:
            return
        claim.conn.execute(
            "UPDATE export_jobs SET state = 'queued', attempts = greatest(attempts - 1, 0), stage = 'queued', "
            "message = %s, updated_at = now() WHERE id = %s AND state = 'running'",
            (message, claim.job.id),
        )

    # DatasetExported -----------------------------------------------------------------------------
    async def publish(self, job: ExportJob) -> bool:
        """Publish DatasetExported for a succeeded job and record the outcome; False without a broker."""
        if self.publisher is None or job.result is None:
            return False
        record = DatasetRecord.model_validate(job.result)
        try:
            test_set = frozen_test_set(await asyncio.to_thread(self.exporter.repo.datasets))
            await publish_event(self.publisher, event_for(record, self.producer, test_set=test_set))
        except Exception as exc:  # the version is recorded; say how to retry instead of failing silently
            retry = f"/v1/datasets/{record.name}/{record.version}/publish"
            error = f"{type(exc).__name__}: {exc}; retry with POST {retry}"
            log.error("DatasetExported for %s/%s not published: %s", record.name, record.version, error)
            await asyncio.to_thread(self.jobs.mark_published, job.id, False, error)
            return False
        await asyncio.to_thread(self.jobs.mark_published, job.id, True)
        return True

    def _publish_pending(self) -> None:
        if self.publisher is None or self._loop is None:
            return
        for job in self.jobs.unpublished():
            fut: Future[bool] = asyncio.run_coroutine_threadsafe(self.publish(job), self._loop)
            if not fut.result(timeout=60):
                return  # the broker is down: try again after the next job or at the next start

    # the thread ----------------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Start the runner thread (``loop``: where the broker's publisher lives; kept from an earlier start)."""
        if self._thread is not None:
            return
        self._loop = loop or self._loop
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="export-jobs", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look for a new job now (called after a request created one)."""
        self._wake.set()

    def stop(self, timeout_s: float = 20.0) -> None:
        """Ask the thread to stop (a running job is put back in the queue) and wait for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            self._thread = None

    def _serve(self) -> None:
        self._guard(self._publish_pending)
        while not self._stop.is_set():
            job = self._guard(self.run_one)
            if job is not None:
                if job.state == "succeeded":
                    self._guard(self._publish_pending)
                continue
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def _guard(self, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except Exception as exc:  # the database or broker is away: keep the thread, try again after a pause
            if not self._stop.is_set():
                log.warning("export job runner: %s: %s", type(exc).__name__, exc)
                self._stop.wait(self.poll_s)
            return None


def wait_for_job(jobs: ExportJobsRepo, job_id: int, *, timeout_s: float = 3600.0, poll_s: float = 0.5) -> ExportJob:
    """Poll a job until it is finished (TimeoutError naming its stage otherwise)."""
    deadline = time.monotonic() + timeout_s
    while True:
        job = jobs.get(job_id)
        if job is None:
            raise LookupError(f"no export job {job_id}")
        if job.finished:
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"export job {job_id} still {job.state} at {job.stage} after {timeout_s:g} s")
        time.sleep(poll_s)


def publish_state(job: ExportJob) -> str:
    """not requested | pending | published | failed: where the job's DatasetExported stands."""
    if not job.publish:
        return "not requested"
    if job.published_at is not None:
        return "published"
    if job.result is not None and job.result.get("publish_error"):
        return "failed"
    return "pending"


def job_json(job: ExportJob) -> dict[str, Any]:
    """A job as the API shows it (with its status URL and where its DatasetExported stands)."""
    return {
        **job.model_dump(mode="json"),
        "job_id": job.id,
        "status_url": f"/v1/datasets/jobs/{job.id}",
        "publish_state": publish_state(job),
    }


def export_and_wait(
    http: Any, body: dict[str, Any], *, timeout_s: float = 3600.0, poll_s: float = 0.5, publish_wait_s: float = 30.0
) -> dict[str, Any]:
    """Client helper: POST /v1/datasets on an ``httpx.Client`` (admin), wait for the job, return its result
    (the recorded version with removed_by_stage, warnings, published, job_id). RuntimeError on a refusal or a
    failed job."""
    r = http.post("/v1/datasets", json=body)
    if r.status_code != 202:
        raise RuntimeError(f"dataset export {body.get('name')!r} refused: {r.status_code} {r.text[:500]}")
    url = r.json()["status_url"]
    deadline = time.monotonic() + timeout_s
    publish_deadline: float | None = None
    while True:
        job = http.get(url).json()
        if job["state"] == "failed":
            raise RuntimeError(f"dataset export job {job['id']} ({job['name']}) failed: {job['message']}")
        if job["state"] == "succeeded":
            publish_deadline = publish_deadline or time.monotonic() + publish_wait_s
            if job["publish_state"] != "pending" or time.monotonic() > publish_deadline:
                return {**job["result"], "job_id": job["id"]}
        elif time.monotonic() > deadline:
            raise TimeoutError(f"dataset export job {job['id']} still {job['state']} at {job['stage']}")
        time.sleep(poll_s)
