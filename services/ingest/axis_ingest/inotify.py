"""Linux inotify through ctypes (no extra dependency): which folders of a tree changed since the last read.

It only says *where* to look; the scanner then looks (stat), so a missed or merged event costs a delay, never a
file: a queue overflow asks for a full rescan, and the service rescans the whole tree now and then anyway.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_Q_OVERFLOW = 0x00004000
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

WATCH_MASK = (
    IN_MODIFY
    | IN_ATTRIB
    | IN_CLOSE_WRITE
    | IN_MOVED_FROM
    | IN_MOVED_TO
    | IN_CREATE
    | IN_DELETE
    | IN_DELETE_SELF
    | IN_MOVE_SELF
    | IN_ONLYDIR
)
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len


class InotifyUnavailable(OSError):
    """inotify cannot be used here (not Linux, no libc symbol, or the watch limit is reached)."""


@dataclass
class Changes:
    """What happened since the last read: folders to list, new folders to walk, whether to rescan everything."""

    folders: set[str] = field(default_factory=set)
    new_folders: set[str] = field(default_factory=set)
    overflow: bool = False

    def __bool__(self) -> bool:
        return bool(self.folders or self.new_folders or self.overflow)


class InotifyWatcher:
    """Watches every folder below ``root`` (``skip(relpath, name)`` leaves a folder out); non-blocking reads."""

    def __init__(self, root: Path, skip: Callable[[str, str], bool] = lambda rel, name: False) -> None:
        libc_name = ctypes.util.find_library("c")
        try:
            self._libc = ctypes.CDLL(libc_name or "libc.so.6", use_errno=True)
            self._init1 = self._libc.inotify_init1
            self._add = self._libc.inotify_add_watch
        except (OSError, AttributeError) as exc:
            raise InotifyUnavailable(f"inotify is not available: {exc}") from None
        self._add.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
        self._add.restype = ctypes.c_int
        self.root = root
        self._skip = skip
        fd = self._init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            e = ctypes.get_errno()
            raise InotifyUnavailable(f"inotify_init1 failed: {os.strerror(e)}")
        self.fd: int = fd
        self._dirs: dict[int, str] = {}
        self.pending = Changes()
        try:
            self.watch_tree("")
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        """The descriptor to wait on (readable when events are queued)."""
        return self.fd

    @property
    def watches(self) -> int:
        """How many folders are watched."""
        return len(self._dirs)

    def watch_tree(self, rel: str) -> None:
        """Watch ``rel`` and every folder below it; InotifyUnavailable when the kernel's watch limit is reached."""
        stack = [rel]
        while stack:
            cur = stack.pop()
            if not self._watch(cur):
                continue
            try:
                with os.scandir(self.root / cur if cur else self.root) as it:
                    for entry in it:
                        if entry.is_dir(follow_symlinks=False) and not self._skip(cur, entry.name):
                            stack.append(f"{cur}/{entry.name}" if cur else entry.name)
            except OSError:
                continue

    def _watch(self, rel: str) -> bool:
        path = os.fsencode(self.root / rel if rel else self.root)
        wd = self._add(self.fd, path, WATCH_MASK)
        if wd < 0:
            e = ctypes.get_errno()
            if e == errno.ENOSPC:
                raise InotifyUnavailable(
                    f"the inotify watch limit is reached at {len(self._dirs)} folders "
                    "(raise fs.inotify.max_user_watches, or poll)"
                )
            return False  # gone already, or not a folder
        self._dirs[wd] = rel
        return True

    def read(self) -> Changes:
        """Drain the queued events into ``pending`` (call when the descriptor is readable); returns ``pending``."""
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.EINTR:
                    continue
                raise
            if not buf:
                break
            self._parse(buf)
        return self.pending

    def take(self) -> Changes:
        """The changes gathered so far, and start gathering anew."""
        out, self.pending = self.pending, Changes()
        return out

    def _parse(self, buf: bytes) -> None:
        pos = 0
        while pos + _HEADER.size <= len(buf):
            wd, mask, _cookie, length = _HEADER.unpack_from(buf, pos)
            name = buf[pos + _HEADER.size : pos + _HEADER.size + length].rstrip(b"\0")
            pos += _HEADER.size + length
            if mask & IN_Q_OVERFLOW:
                self.pending.overflow = True
                continue
            rel = self._dirs.get(wd)
            if mask & IN_IGNORED:
                self._dirs.pop(wd, None)
                continue
            if rel is None:
                continue
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
                continue
            text = os.fsdecode(name)
            if mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO) and text and not self._skip(rel, text):
                sub = f"{rel}/{text}" if rel else text
                self.watch_tree(sub)
                self.pending.new_folders.add(sub)
                continue
            self.pending.folders.add(rel)

    def close(self) -> None:
        """Stop watching."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
