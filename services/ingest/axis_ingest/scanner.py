"""Looking at the watched folder: a full walk (polling, backfill, rescans) or a look at a few folders and files.

Paths are relative to the watched folder with ``/`` between parts. Names matching an ignore glob (temporary
files of a write-then-rename, hidden files), the unmappable folder and ready-marker files are not candidates;
marker files are reported separately.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ncpfs", "afs", "fuse.sshfs", "9p", "davfs", "fuse.davfs2", "glusterfs"}
)


@dataclass
class Look:
    """What one look at the folder found: candidate files (size, mtime_ns), marker files, problems."""

    files: dict[str, tuple[int, int]] = field(default_factory=dict)
    markers: set[str] = field(default_factory=set)  # paths whose ready marker exists
    errors: list[str] = field(default_factory=list)
    folders: int = 0


@dataclass(frozen=True)
class ScanRules:
    """Which names are not candidates."""

    ignore: tuple[str, ...] = ()
    skip_top: tuple[str, ...] = ()  # folders directly under the root that are never entered (unmappable dir)
    ready_marker: str | None = None

    def ignored(self, name: str) -> bool:
        """True for a file or folder name matching an ignore glob."""
        return any(fnmatchcase(name, g) for g in self.ignore)

    def marker_target(self, name: str) -> str | None:
        """For a ready-marker file name, the name of the file it marks (None for other names)."""
        m = self.ready_marker
        if m and name.endswith(m) and len(name) > len(m):
            return name[: -len(m)]
        return None


def walk(root: Path, rules: ScanRules, start: str = "", *, recursive: bool = True) -> Look:
    """Every candidate file below ``root/start`` (all of it when ``start`` is empty)."""
    look = Look()
    stack = [start]
    while stack:
        rel = stack.pop()
        folder = root / rel if rel else root
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except FileNotFoundError:
            continue
        except OSError as exc:
            look.errors.append(f"{rel or '.'}: {exc.strerror or exc}")
            continue
        look.folders += 1
        for entry in entries:
            name = entry.name
            sub = f"{rel}/{name}" if rel else name
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive and not rules.ignored(name) and not (rel == "" and name in rules.skip_top):
                        stack.append(sub)
                    continue
                if not entry.is_file(follow_symlinks=True):
                    continue
                target = rules.marker_target(name)
                if target is not None:
                    look.markers.add(f"{rel}/{target}" if rel else target)
                    continue
                if rules.ignored(name):
                    continue
                st = entry.stat(follow_symlinks=True)
            except FileNotFoundError:
                continue
            except OSError as exc:
                look.errors.append(f"{sub}: {exc.strerror or exc}")
                continue
            look.files[sub] = (st.st_size, st.st_mtime_ns)
    return look


def look_at(
    root: Path, rules: ScanRules, *, folders: Iterable[str], new_folders: Iterable[str], files: Iterable[str]
) -> Look:
    """Candidates in some folders (``new_folders`` recursively, they may hold files already) and some files."""
    look = Look()
    for rel in set(new_folders):
        _merge(look, walk(root, rules, rel))
    for rel in set(folders) - set(new_folders):
        _merge(look, walk(root, rules, rel, recursive=False))
    for rel in files:
        if rel in look.files:
            continue
        try:
            st = (root / rel).stat()
        except FileNotFoundError:
            continue
        except OSError as exc:
            look.errors.append(f"{rel}: {exc.strerror or exc}")
            continue
        look.files[rel] = (st.st_size, st.st_mtime_ns)
        if rules.ready_marker and (root / (rel + rules.ready_marker)).exists():
            look.markers.add(rel)
    return look


def _merge(into: Look, other: Look) -> None:
    into.files.update(other.files)
    into.markers |= other.markers
    into.errors += other.errors
    into.folders += other.folders


def filesystem_type(path: Path, mounts: str | None = None) -> str | None:
    """The file-system type of the mount holding ``path`` (from /proc/self/mounts), or None when unknown."""
    if mounts is None:
        try:
            mounts = Path("/proc/self/mounts").read_text()
        except OSError:
            return None
    target = str(path.resolve()) if path.exists() else str(path.absolute())
    best: tuple[int, str] | None = None
    for line in mounts.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        point = parts[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) > best[0]):
            best = (len(point), parts[2])
    return best[1] if best else None


def is_network_share(path: Path, mounts: str | None = None) -> bool:
    """True when ``path`` is on NFS, SMB/CIFS or another network file system (inotify misses remote writes)."""
    return (filesystem_type(path, mounts) or "") in NETWORK_FILESYSTEMS
