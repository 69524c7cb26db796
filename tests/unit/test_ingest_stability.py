"""Ingest: when a file is completely written, what makes two files the same, and the folder look-ups."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from axis_inference.seeding import drop_jpeg
from axis_ingest.inotify import InotifyUnavailable, InotifyWatcher
from axis_ingest.scanner import ScanRules, is_network_share, walk
from axis_ingest.settings import DEFAULT_IGNORE
from axis_ingest.stability import FileKey, StabilityTracker, content_hash, cut_short, event_id_for, wrong_type

pytestmark = pytest.mark.unit

S = 1_000_000_000  # ns per second


def test_a_file_is_stable_only_after_size_and_mtime_held_still_for_the_settle_time() -> None:
    t = StabilityTracker(settle_s=2.0)
    wall = 1_000 * S
    t.observe("a.jpg", 100, wall - 10 * S, now=0.0)  # an old file, first look
    assert not t.is_stable("a.jpg", now=1.9, wall_now_ns=wall)  # one look is not enough
    assert t.is_stable("a.jpg", now=2.0, wall_now_ns=wall)
    t.observe("b.jpg", 10, wall, now=0.0)  # being written
    t.observe("b.jpg", 20, wall + S, now=1.0)  # grew: the clock starts again
    assert not t.is_stable("b.jpg", now=2.5, wall_now_ns=wall + 2 * S)
    assert t.is_stable("b.jpg", now=3.0, wall_now_ns=wall + 3 * S)
    t.observe("c.jpg", 10, wall + 5 * S, now=0.0)  # mtime in the future of this look (or just now): not yet
    assert not t.is_stable("c.jpg", now=5.0, wall_now_ns=wall + 6 * S)
    t.observe("empty.jpg", 0, wall - 10 * S, now=0.0)
    assert not t.is_stable("empty.jpg", now=100.0, wall_now_ns=wall)  # an empty file is a file not yet written
    t.observe("m.jpg", 5, wall - 10 * S, now=0.0)
    assert not t.is_stable("m.jpg", now=10.0, wall_now_ns=wall, marker_present=False)  # waits for <file>.done
    assert t.key("b.jpg") == FileKey("b.jpg", 20, wall + S)


def test_cut_short_and_wrong_type_images_are_told_apart() -> None:
    jpeg = drop_jpeg(80)
    assert cut_short(jpeg, "jpg") is None and wrong_type(jpeg, "jpg") is None
    assert "no end-of-image marker" in (cut_short(jpeg[: len(jpeg) // 2], "jpg") or "")
    assert "not a JPEG" in (wrong_type(b"hello world", "jpeg") or "")
    png = b"\x89PNG\r\n\x1a\n" + b"\x00" * 20 + b"\x00\x00\x00\x00IEND\xaeB`\x82"
    assert cut_short(png, "png") is None and "IEND" in (cut_short(png[:-12], "png") or "")
    assert wrong_type(b"II*\x00rest", "tif") is None and cut_short(b"II*\x00rest", "tif") is None
    assert "not a TIFF" in (wrong_type(b"GIF89a", "tiff") or "")


def test_dedupe_key_and_event_id() -> None:
    a = FileKey("XT1/1/A1_1_vis.jpg", 100, 5)
    assert a == FileKey("XT1/1/A1_1_vis.jpg", 100, 5)  # same version: already decided
    assert a != FileKey("XT1/1/A1_1_vis.jpg", 100, 6)  # touched or rewritten: a new version to look at
    assert content_hash(b"x") == content_hash(b"x") != content_hash(b"y")
    e = event_id_for("imager-1", a.path, content_hash(b"x"))
    assert e == event_id_for("imager-1", a.path, content_hash(b"x"))  # a resend carries the same id
    assert e != event_id_for("imager-1", "XT1/1/A2_1_vis.jpg", content_hash(b"x"))
    assert e != event_id_for("imager-2", a.path, content_hash(b"x"))


def test_walk_skips_temporary_hidden_marker_and_set_aside_files(tmp_path: Path) -> None:
    for rel in [
        "XT1/1/A1_1_vis.jpg",
        "XT1/1/A1_1_vis.jpg.done",
        "XT1/1/.A2_1_vis.jpg.swp",
        "XT1/1/A3_1_vis.jpg.part",
        "XT1/.hidden/A4_1_vis.jpg",
        "_unmappable/XT1/1/bad.jpg",
        "notes.txt",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    look = walk(tmp_path, ScanRules(ignore=DEFAULT_IGNORE, skip_top=("_unmappable",), ready_marker=".done"))
    assert set(look.files) == {"XT1/1/A1_1_vis.jpg", "notes.txt"}
    assert look.markers == {"XT1/1/A1_1_vis.jpg"}


def test_network_shares_are_recognised_from_the_mount_table(tmp_path: Path) -> None:
    mounts = "/dev/sda1 / ext4 rw 0 0\nfiler:/imaging /mnt/imager nfs4 rw 0 0\n//nas/rock /mnt/rock cifs rw 0 0\n"
    assert is_network_share(Path("/mnt/imager/plates"), mounts)
    assert is_network_share(Path("/mnt/rock"), mounts)
    assert not is_network_share(Path("/mnt/imagery"), mounts)
    assert not is_network_share(tmp_path, mounts)


async def test_inotify_reports_the_folders_where_files_arrive(tmp_path: Path) -> None:
    (tmp_path / "XT1").mkdir()
    try:
        w = InotifyWatcher(tmp_path)
    except InotifyUnavailable as exc:
        pytest.skip(f"no inotify here: {exc}")
    try:
        (tmp_path / "XT1" / "a.jpg").write_bytes(b"x")
        (tmp_path / "XT2" / "9").mkdir(parents=True)
        await asyncio.sleep(0.05)
        w.read()
        (tmp_path / "XT2" / "9" / "b.jpg").write_bytes(b"y")  # in a folder created after the watcher started
        os.rename(tmp_path / "XT1" / "a.jpg", tmp_path / "XT1" / "c.jpg")
        await asyncio.sleep(0.05)
        changes = w.read()
        assert "XT1" in changes.folders and "XT2" in changes.new_folders
        assert "XT2/9" in changes.folders or "XT2/9" in changes.new_folders
        assert w.take() and not w.take()
    finally:
        w.close()
