"""When a file is completely written, and what makes two files the same: pure logic, clocks passed in.

- A file is *stable* when the same size and mtime have been seen for at least ``settle_s`` (two looks that far
  apart), its mtime is at least ``settle_s`` old, it is not empty, and (with a ready marker) ``<file><marker>``
  exists.
- A stable image can still be cut short (a copy that stalled); :func:`cut_short` checks the end of JPEG and PNG
  files, so such a file waits for the rest (and is reported once it has looked cut short for a while).
- The dedupe key of a file is (path, size, mtime): a file already decided with the same key is never looked at
  again; the content's SHA-256 finds byte-identical copies under other names.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

EVENT_NAMESPACE = uuid.UUID("5b0f8e52-7d0c-4a4b-9a36-0c1c3f0e9a41")


@dataclass(frozen=True, order=True)
class FileKey:
    """A file version: its path below the watched folder, its size and its mtime (ns)."""

    path: str
    size: int
    mtime_ns: int


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float  # monotonic time this (size, mtime) was first seen
    incomplete_since: float | None = None


@dataclass
class StabilityTracker:
    """Files seen but not yet decided, and which of them are ready (written completely) now."""

    settle_s: float
    seen: dict[str, _Seen] = field(default_factory=dict)

    def observe(self, path: str, size: int, mtime_ns: int, *, now: float) -> None:
        """Record one look at a file (``now``: monotonic seconds)."""
        old = self.seen.get(path)
        if old is None or (old.size, old.mtime_ns) != (size, mtime_ns):
            self.seen[path] = _Seen(size, mtime_ns, now)

    def is_stable(self, path: str, *, now: float, wall_now_ns: int, marker_present: bool = True) -> bool:
        """True when the file has stopped changing (see the module docstring)."""
        s = self.seen.get(path)
        if s is None or s.size == 0 or not marker_present:
            return False
        unchanged_for = now - s.since
        mtime_age_s = (wall_now_ns - s.mtime_ns) / 1e9
        return unchanged_for >= self.settle_s and mtime_age_s >= self.settle_s

    def key(self, path: str) -> FileKey:
        """The dedupe key of the version last seen."""
        s = self.seen[path]
        return FileKey(path, s.size, s.mtime_ns)

    def mark_incomplete(self, path: str, *, now: float) -> float:
        """Note that the stable file looks cut short; returns how long it has looked so (s)."""
        s = self.seen[path]
        if s.incomplete_since is None:
            s.incomplete_since = now
        return now - s.incomplete_since

    def forget(self, path: str) -> None:
        """Stop tracking a file (decided, or gone)."""
        self.seen.pop(path, None)

    def paths(self) -> list[str]:
        """Every tracked path."""
        return list(self.seen)

    def __len__(self) -> int:
        return len(self.seen)


def wrong_type(data: bytes, ext: str) -> str | None:
    """What is wrong when the bytes do not start as a file of the extension's type says (None when they do)."""
    ext = ext.lower()
    if ext in ("jpg", "jpeg") and not data.startswith(b"\xff\xd8"):
        return f"the content is not a JPEG image (no start-of-image marker) although the name ends in .{ext}"
    if ext == "png" and not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "the content is not a PNG image (no PNG signature) although the name ends in .png"
    if ext in ("tif", "tiff") and not data.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return f"the content is not a TIFF image (no TIFF header) although the name ends in .{ext}"
    return None


def cut_short(data: bytes, ext: str) -> str | None:
    """What is missing when a JPEG or PNG does not end as a whole file ends (None when it does, and for TIFF).

    JPEG ends with the end-of-image marker (FF D9), PNG with the IEND chunk; TIFF has no end marker.
    """
    ext = ext.lower()
    if ext in ("jpg", "jpeg") and not data.rstrip(b"\r\n").endswith(b"\xff\xd9"):
        return "the JPEG has no end-of-image marker (cut short)"
    if ext == "png" and (len(data) < 20 or data[-8:-4] != b"IEND"):
        return "the PNG has no IEND chunk at its end (cut short)"
    return None


def content_hash(data: bytes) -> str:
    """SHA-256 of a file's bytes (hex)."""
    return hashlib.sha256(data).hexdigest()


def event_id_for(imager_id: str, path: str, sha256: str) -> uuid.UUID:
    """The ImageCaptured id of a file: the same file always gets the same id, so a resend is deduped downstream."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{imager_id}\x1f{path}\x1f{sha256}")
