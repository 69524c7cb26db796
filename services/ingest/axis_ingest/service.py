"""What ingest does with the files it sees: track them until complete, then decide each file version once.

A decision is one of: *published* (image in the object store, one ImageCaptured on the topic), *duplicate* (the
same bytes as a file already published: not published again), *unmappable* (the reason is stored, listed in
/health, and with ``unmappable=move`` the file is moved aside). Adapters are passed in; app.py builds them.

Order of effects for a published file: object stored (idempotent key) -> row claimed with the event JSON
(``publishing``) -> event published -> row ``published``. A crash or a broker outage between the claim and the
acknowledgement leaves a ``publishing`` row, resent later with the same event_id (consumers dedupe on it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from axis_adapters.kafka import JSON_HEADERS, Publisher
from axis_adapters.objectstore import ObjectStore, make_uri
from axis_adapters.retry import is_transient
from axis_contracts import ImageCaptured, InvalidEvent, topics
from axis_contracts.parsing import validate_event

from axis_ingest.inotify import Changes
from axis_ingest.pattern import MappedFile, PathMapper, Unmappable
from axis_ingest.scanner import Look, ScanRules, look_at, walk
from axis_ingest.settings import IngestOptions
from axis_ingest.stability import FileKey, StabilityTracker, content_hash, cut_short, event_id_for, wrong_type
from axis_ingest.state import IngestState

log = logging.getLogger(__name__)

CONTENT_TYPES = {
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "png": "image/png",
    "tif": "image/tiff",
    "tiff": "image/tiff",
}
_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9._\-]")


@dataclass
class BatchReport:
    """What one cycle decided."""

    outcomes: Counter[str] = field(default_factory=Counter)
    ready_left: int = 0  # complete files not decided yet (over the batch size): the next cycle comes at once
    seconds: float = 0.0

    @property
    def decided(self) -> int:
        return sum(n for k, n in self.outcomes.items() if k in ("published", "duplicate", "unmappable"))


def object_key(prefix: str, imager_id: str, mapped: MappedFile, sha256: str) -> str:
    """Where a file's image goes in the images bucket (the content hash makes a re-upload overwrite itself)."""

    def safe(s: str) -> str:
        return _UNSAFE_KEY_CHARS.sub("_", s)[:100] or "_"

    return (
        f"{prefix.strip('/')}/{safe(imager_id)}/{safe(mapped.plate_barcode)}/{mapped.well}/{mapped.drop}/"
        f"{safe(mapped.inspection_id)}-{mapped.imaging_mode.value}-{sha256[:16]}.{mapped.ext}"
    )


def storable(path: str) -> str:
    """The path as PostgreSQL can store it (a name that is not UTF-8 gets backslash escapes)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class IngestService:
    """The ingest logic over a watched folder, a mapper, its state table, the object store and the broker."""

    def __init__(
        self,
        *,
        options: IngestOptions,
        mapper: PathMapper,
        state: IngestState,
        store: ObjectStore,
        publisher: Publisher,
        bucket: str,
        max_future_skew_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        wall_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.opts = options
        self.root = Path(options.watch_dir)
        self.mapper = mapper
        self.state = state
        self.store = store
        self.publisher = publisher
        self.bucket = bucket
        self.skew = max_future_skew_s
        self.clock = clock
        self.wall_ns = wall_ns
        self.digest = mapper.config.digest()
        self.rules = ScanRules(
            ignore=tuple(options.ignore), skip_top=(options.unmappable_dir,), ready_marker=options.ready_marker
        )
        self.tracker = StabilityTracker(options.settle_s)
        self.known: set[FileKey] = set()
        self.unreadable: dict[FileKey, str] = {}  # this run only: retried after a restart or when the file changes
        self.totals: Counter[str] = Counter()  # published / duplicate / unmappable, all runs
        self.this_run: Counter[str] = Counter()
        self.recent_unmappable: deque[dict[str, Any]] = deque(maxlen=max(1, options.recent_unmappable))
        self.scans = 0
        self.last_scan_at: float | None = None
        self.last_batch: dict[str, Any] | None = None
        self.folder_problem: str | None = None
        self.scan_errors: list[str] = []
        self.unacked = 0  # claimed (counted as published) but not yet acknowledged by the broker
        self._resend = True
        self._bucket_ready = False

    # ------------------------------------------------------------------------------------------------ start
    async def start(self) -> None:
        """Load what earlier runs decided (their files are not looked at again)."""
        known = await self.state.load(self.digest, recent=self.opts.recent_unmappable)
        self.known = set(known.keys)
        counts = Counter(known.counts)
        self.unacked = counts.pop("publishing", 0)
        counts["published"] += self.unacked
        self.totals.update(counts)
        self.recent_unmappable.extend(known.recent_unmappable)
        log.info(
            "ingest state loaded: %d files decided before (%s)",
            len(self.known),
            ", ".join(f"{k} {v}" for k, v in sorted(self.totals.items())) or "none",
        )

    # ------------------------------------------------------------------------------------------------ cycle
    async def cycle(self, *, full: bool = True, changes: Changes | None = None) -> BatchReport | None:
        """Look at the folder (all of it, or where ``changes`` say), then decide up to a batch of complete files.

        Returns None when the watched folder is missing (nothing is forgotten then: a share may be unmounted).
        Transient errors (object store, broker, PostgreSQL) propagate; the files stay pending for the next cycle.
        """
        t0 = self.clock()
        if not await asyncio.to_thread(self.root.is_dir):
            self.folder_problem = f"the watched folder {self.root} is missing or not a folder (share not mounted?)"
            return None
        self.folder_problem = None
        if self._resend:
            await self._resend_unpublished()
        if full or changes is None:
            look = await asyncio.to_thread(walk, self.root, self.rules)
        else:
            look = await asyncio.to_thread(
                look_at,
                self.root,
                self.rules,
                folders=changes.folders,
                new_folders=changes.new_folders,
                files=self.tracker.paths(),
            )
        ready = self._track(look)
        self.scans += 1
        self.last_scan_at = self.clock()
        report = BatchReport(ready_left=max(0, len(ready) - self.opts.batch_size))
        outbox: list[tuple[FileKey, bytes]] = []
        try:
            for path in ready[: self.opts.batch_size]:
                report.outcomes[await self._decide(path, outbox)] += 1
        finally:
            if outbox:
                await self._publish(outbox)
        report.seconds = self.clock() - t0
        if report.decided:
            self._log_batch(report)
        return report

    def _track(self, look: Look) -> list[str]:
        now, wall = self.clock(), self.wall_ns()
        self.scan_errors = look.errors[:20]
        for path in self.tracker.paths():
            if path not in look.files:
                self.tracker.forget(path)  # deleted or renamed before it was complete
        for path, (size, mtime_ns) in look.files.items():
            key = FileKey(path, size, mtime_ns)
            if key in self.known or key in self.unreadable:
                self.tracker.forget(path)
                continue
            self.tracker.observe(path, size, mtime_ns, now=now)
        marker = self.opts.ready_marker
        ready = []
        for path in self.tracker.paths():
            if not self.tracker.is_stable(
                path, now=now, wall_now_ns=wall, marker_present=not marker or path in look.markers
            ):
                continue
            since = self.tracker.seen[path].incomplete_since
            if since is not None and now - since < self.opts.incomplete_after_s:
                continue  # looked cut short: look again when it changes, or once the wait is over
            ready.append(path)
        return sorted(ready, key=lambda p: (self.tracker.seen[p].mtime_ns, p))

    # ------------------------------------------------------------------------------------------------ decide
    async def _decide(self, path: str, outbox: list[tuple[FileKey, bytes]]) -> str:
        key = self.tracker.key(path)
        try:
            return await self._decide_file(path, key, outbox)
        except Exception as exc:
            if is_transient(exc):
                raise
            # a bug or an odd file must not stop ingestion: note it, retry after a restart or a change
            log.exception("ingest: could not handle %r", path)
            return self._unreadable(key, f"{type(exc).__name__}: {exc}")

    async def _decide_file(self, path: str, key: FileKey, outbox: list[tuple[FileKey, bytes]]) -> str:
        if storable(path) != path:
            return await self._unmappable(key, "the file name is not valid UTF-8; rename the file")
        mtime = datetime.fromtimestamp(key.mtime_ns / 1e9, UTC)
        try:
            mapped = self.mapper.map(path, mtime=mtime)
        except Unmappable as exc:
            return await self._unmappable(key, exc.reason)
        if key.size > self.opts.max_file_bytes:
            return await self._unmappable(
                key, f"the file is {key.size} bytes, more than AXIS_INGEST__MAX_FILE_BYTES={self.opts.max_file_bytes}"
            )
        try:
            data, now_stat = await asyncio.to_thread(_read, self.root / path)
        except FileNotFoundError:
            self.tracker.forget(path)
            return "gone"
        except OSError as exc:
            return self._unreadable(key, f"cannot read the file: {exc.strerror or exc}")
        if now_stat != (key.size, key.mtime_ns) or len(data) != key.size:
            self.tracker.observe(path, *now_stat, now=self.clock())  # still being written
            return "waiting"
        problem = wrong_type(data, mapped.ext)
        if problem:
            return await self._unmappable(key, problem, sha256=content_hash(data))
        short = cut_short(data, mapped.ext)
        if short:
            waited = self.tracker.mark_incomplete(path, now=self.clock())
            if waited < self.opts.incomplete_after_s:
                return "waiting"
            return await self._unmappable(key, f"{short}, and unchanged for {waited:.0f} s", sha256=content_hash(data))
        sha = content_hash(data)
        first = await self.state.published_with(sha)
        if first is not None:
            return await self._duplicate(key, sha, first)
        try:
            event = self._event(mapped, path, sha)
        except InvalidEvent as exc:
            return await self._unmappable(key, f"the ImageCaptured would be invalid: {exc.reason}", sha256=sha)
        await self._put(event.image_uri, data, CONTENT_TYPES.get(mapped.ext, "application/octet-stream"))
        body = event.to_bytes()
        claim = await self.state.claim(
            key, sha256=sha, event_id=event.event_id, image_uri=event.image_uri, event_json=body.decode()
        )
        if claim.outcome == "duplicate":
            return await self._duplicate(key, sha, claim.duplicate_of or "?")
        self._decided(key)
        if claim.outcome == "decided":
            return "decided"  # another run decided it meanwhile
        outbox.append((key, body))
        self.unacked += 1
        self.totals["published"] += 1
        self.this_run["published"] += 1
        return "published"

    def _event(self, mapped: MappedFile, path: str, sha: str) -> ImageCaptured:
        imager = mapped.imager_id or self.opts.imager_id
        uri = make_uri(self.bucket, object_key(self.opts.key_prefix, imager, mapped, sha))
        data = {
            "event_id": str(event_id_for(self.opts.imager_id, path, sha)),
            "producer": self.opts.producer,
            "plate_barcode": mapped.plate_barcode,
            "plate_type": mapped.plate_type.value,
            "well": mapped.well,
            "drop": mapped.drop,
            "inspection_id": mapped.inspection_id,
            "imaged_at": mapped.imaged_at.isoformat(),
            "imaging_mode": mapped.imaging_mode.value,
            "image_uri": uri,
            "imager_id": imager,
        }
        return validate_event(data, ImageCaptured, context={"max_future_skew_s": self.skew})

    async def _put(self, uri: str, data: bytes, content_type: str) -> None:
        if not self._bucket_ready:
            await asyncio.to_thread(self.store.ensure_bucket, self.bucket)
            self._bucket_ready = True
        await asyncio.to_thread(self.store.put_bytes, uri, data, content_type)

    async def _publish(self, outbox: list[tuple[FileKey, bytes]]) -> None:
        """Send claimed events, then mark them published; on a failure they are resent by the next cycle."""
        try:
            for _key, body in outbox:
                await self.publisher.publish(
                    body, topic=topics.IMAGE_CAPTURED, key=_event_key(body), headers=JSON_HEADERS
                )
            await self.state.mark_published([k for k, _ in outbox])
        except BaseException:
            self._resend = True
            raise
        self.unacked = max(0, self.unacked - len(outbox))

    async def _resend_unpublished(self) -> None:
        pending = await self.state.unpublished()
        if pending:
            log.info("ingest: resending %d ImageCaptured claimed but not acknowledged before", len(pending))
            for _key, body in pending:
                raw = body.encode()
                await self.publisher.publish(
                    raw, topic=topics.IMAGE_CAPTURED, key=_event_key(raw), headers=JSON_HEADERS
                )
            await self.state.mark_published([k for k, _ in pending])
        self.unacked = 0
        self._resend = False

    def _decided(self, key: FileKey) -> None:
        self.known.add(key)
        self.tracker.forget(key.path)

    async def _duplicate(self, key: FileKey, sha: str, first: str) -> str:
        await self.state.record_duplicate(key, sha256=sha, duplicate_of=first)
        self._decided(key)
        self.totals["duplicate"] += 1
        self.this_run["duplicate"] += 1
        log.info("ingest: %r has the same bytes as %r (published): not published again", key.path, first)
        return "duplicate"

    async def _unmappable(self, key: FileKey, reason: str, *, sha256: str | None = None) -> str:
        path = storable(key.path)
        stored = FileKey(path, key.size, key.mtime_ns)
        await self.state.record_unmappable(stored, reason, digest=self.digest, sha256=sha256)
        moved_to = None
        if self.opts.unmappable == "move":
            try:
                moved_to = await asyncio.to_thread(self._move_aside, key.path)
            except OSError as exc:
                reason = f"{reason} (could not move it aside: {exc.strerror or exc})"
            await self.state.record_unmappable(stored, reason, digest=self.digest, sha256=sha256, moved_to=moved_to)
        self._decided(key)
        self.totals["unmappable"] += 1
        self.this_run["unmappable"] += 1
        self.recent_unmappable.appendleft(
            {"path": path, "reason": reason, "at": datetime.now(UTC).isoformat(), "moved_to": moved_to}
        )
        log.warning("ingest: cannot map %r: %s%s", path, reason, f" (moved to {moved_to})" if moved_to else "")
        return "unmappable"

    def _move_aside(self, rel: str) -> str:
        target_rel = f"{self.opts.unmappable_dir}/{rel}"
        target = self.root / target_rel
        target.parent.mkdir(parents=True, exist_ok=True)
        n = 1
        while target.exists():
            target_rel = f"{self.opts.unmappable_dir}/{rel}.{n}"
            target = self.root / target_rel
            n += 1
        os.rename(self.root / rel, target)
        return target_rel

    def _unreadable(self, key: FileKey, reason: str) -> str:
        self.unreadable[key] = reason
        self.tracker.forget(key.path)
        log.warning("ingest: skipping %r until it changes or the service restarts: %s", key.path, reason)
        return "unreadable"

    def _log_batch(self, report: BatchReport) -> None:
        parts = [f"{n} {k}" for k, n in sorted(report.outcomes.items())]
        log.info(
            "ingest batch: %d files decided in %.2fs (%s); %d still being written, %d ready for the next batch; "
            "totals: %d published, %d duplicates, %d unmappable",
            report.decided,
            report.seconds,
            ", ".join(parts),
            len(self.tracker) - report.ready_left,
            report.ready_left,
            self.totals["published"],
            self.totals["duplicate"],
            self.totals["unmappable"],
        )
        self.last_batch = {
            "at": datetime.now(UTC).isoformat(),
            "outcomes": dict(report.outcomes),
            "seconds": round(report.seconds, 3),
        }

    # ------------------------------------------------------------------------------------------------ progress
    def counts(self) -> dict[str, int]:
        """Totals for /health."""
        return {
            "published": self.totals["published"],
            "duplicate": self.totals["duplicate"],
            "unmappable": self.totals["unmappable"],
            "pending": len(self.tracker),
            "unreadable": len(self.unreadable),
            "awaiting_broker": self.unacked,
        }


def _read(path: Path) -> tuple[bytes, tuple[int, int]]:
    """The file's bytes and its (size, mtime_ns) right after reading (a change means it is still being written)."""
    with open(path, "rb") as fh:
        data = fh.read()
        st = os.fstat(fh.fileno())
    return data, (st.st_size, st.st_mtime_ns)


def _event_key(body: bytes) -> bytes:
    """The experiment key of a serialized ImageCaptured (plate:well:drop)."""
    d = json.loads(body)
    return f"{d['plate_barcode']}:{d['well']}:{d['drop']}".encode()
