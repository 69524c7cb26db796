"""Ingest service logic on a real folder with in-memory state, object store and broker: what gets published."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from axis_contracts import ImageCaptured, parse_event, topics
from axis_inference.seeding import drop_jpeg
from axis_ingest.pattern import PathMapper
from axis_ingest.service import IngestService
from axis_ingest.settings import IngestOptions
from axis_ingest.state import MemoryIngestState
from fakes import FakePublisher, InMemoryObjectStore

pytestmark = pytest.mark.unit


class Clock:
    """Monotonic and wall time that tests move forward (the files' mtimes stay real)."""

    def __init__(self) -> None:
        self.t = 0.0

    def mono(self) -> float:
        return self.t

    def wall(self) -> int:
        return time.time_ns() + int(self.t * 1e9)


class FlakyPublisher(FakePublisher):
    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def publish(self, message: Any, topic: str, *, key: bytes | None = None, headers: Any = None) -> None:
        if self.down:
            raise ConnectionError("broker unreachable")
        await super().publish(message, topic, key=key, headers=headers)


def make(root: Path, state: MemoryIngestState, pub: FakePublisher, clock: Clock, **opts: Any) -> IngestService:
    options = IngestOptions(watch_dir=root, settle_s=1.0, imager_id="it-imager", **opts)
    return IngestService(
        options=options,
        mapper=PathMapper(options.mapping()),
        state=state,
        store=InMemoryObjectStore(),
        publisher=pub,
        bucket="axis-images",
        clock=clock.mono,
        wall_ns=clock.wall,
    )


def write(root: Path, rel: str, data: bytes) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


async def settle(svc: IngestService, clock: Clock, cycles: int = 2) -> None:
    for _ in range(cycles):
        await svc.cycle()
        clock.t += 1.5


def published(pub: FakePublisher) -> list[ImageCaptured]:
    return [parse_event(m, ImageCaptured) for m in pub.on(topics.IMAGE_CAPTURED)]


async def test_complete_files_are_published_once_partial_wait_bad_listed_copies_not_republished(
    tmp_path: Path,
) -> None:
    state, pub, clock = MemoryIngestState(), FakePublisher(), Clock()
    svc = make(tmp_path, state, pub, clock)
    await svc.start()
    a = drop_jpeg(60, seed=1)
    write(tmp_path, "XT1/11/A1_1_vis.jpg", a)
    write(tmp_path, "XT1/11/A1_1_uv.jpg", drop_jpeg(30, seed=2))
    part = drop_jpeg(90, seed=3)
    write(tmp_path, "XT1/11/B2_1_vis.jpg", part[: len(part) // 2])  # the writer stalled half-way
    write(tmp_path, "XT1/11/Z9_1_vis.jpg", drop_jpeg(50, seed=4))
    write(tmp_path, "XT1/notes.txt", b"hello")
    write(tmp_path, "XT1/11/C3_1_vis.jpg.part", b"\xff\xd8")  # write-then-rename: not a candidate yet
    await svc.cycle()
    assert pub.published == []  # first look: nothing has held still yet
    clock.t += 1.5
    await settle(svc, clock)
    events = published(pub)
    assert sorted((e.well, e.imaging_mode.value) for e in events) == [("A1", "uv"), ("A1", "visible")]
    assert {e.inspection_id for e in events} == {"XT1-A1-d1-11"} and {e.imager_id for e in events} == {"it-imager"}
    assert all(svc.store.get_bytes(e.image_uri) for e in events)  # type: ignore[attr-defined]
    assert svc.counts()["unmappable"] == 2 and svc.counts()["pending"] == 1  # the stalled half-file waits
    reasons = {u["path"]: u["reason"] for u in svc.recent_unmappable}
    assert "not a well of a 96-well plate" in reasons["XT1/11/Z9_1_vis.jpg"]
    assert "extension .txt" in reasons["XT1/notes.txt"]

    (tmp_path / "XT1/11/B2_1_vis.jpg").write_bytes(part)  # the rest arrives
    os.rename(tmp_path / "XT1/11/C3_1_vis.jpg.part", tmp_path / "XT1/11/C3_1_vis.jpg")  # renamed when complete
    (tmp_path / "XT1/11/C3_1_vis.jpg").write_bytes(drop_jpeg(40, seed=5))
    write(tmp_path, "XT1/12/D4_1_vis.jpg", a)  # a byte-identical copy under another name
    await settle(svc, clock, 3)
    events = published(pub)
    assert sorted(e.well for e in events) == ["A1", "A1", "B2", "C3"]
    assert len({e.event_id for e in events}) == 4
    assert svc.counts() | {"pending": 0} == {
        "published": 4,
        "duplicate": 1,
        "unmappable": 2,
        "pending": 0,
        "unreadable": 0,
        "awaiting_broker": 0,
    }
    dup = [r for k, r in state.rows.items() if k.path == "XT1/12/D4_1_vis.jpg"]
    assert dup[0]["status"] == "duplicate" and dup[0]["duplicate_of"] == "XT1/11/A1_1_vis.jpg"

    # a restarted service over the same state publishes nothing again, and counts what was decided before
    pub2 = FakePublisher()
    again = make(tmp_path, state, pub2, clock)
    await again.start()
    await settle(again, clock, 3)
    assert pub2.published == [] and again.counts()["published"] == 4 and again.counts()["unmappable"] == 2


async def test_a_stable_but_cut_short_file_is_reported_after_the_wait(tmp_path: Path) -> None:
    state, pub, clock = MemoryIngestState(), FakePublisher(), Clock()
    svc = make(tmp_path, state, pub, clock, incomplete_after_s=30)
    await svc.start()
    write(tmp_path, "XT1/1/A1_1_vis.jpg", drop_jpeg(60)[:500])
    await settle(svc, clock, 3)
    assert svc.counts()["pending"] == 1 and svc.counts()["unmappable"] == 0
    clock.t += 31
    await settle(svc, clock)
    assert pub.published == [] and "cut short" in svc.recent_unmappable[0]["reason"]


async def test_unmappable_files_can_be_moved_aside_and_a_changed_pattern_looks_at_them_again(tmp_path: Path) -> None:
    state, pub, clock = MemoryIngestState(), FakePublisher(), Clock()
    svc = make(tmp_path, state, pub, clock, unmappable="move")
    await svc.start()
    write(tmp_path, "XT1/1/A1_1_infrared.jpg", drop_jpeg(60))
    await settle(svc, clock, 3)
    assert not (tmp_path / "XT1/1/A1_1_infrared.jpg").exists()
    assert (tmp_path / "_unmappable/XT1/1/A1_1_infrared.jpg").exists()
    assert svc.recent_unmappable[0]["moved_to"] == "_unmappable/XT1/1/A1_1_infrared.jpg"
    # the operator adds the token and moves the file back: a service with the new mapping publishes it
    os.rename(tmp_path / "_unmappable/XT1/1/A1_1_infrared.jpg", tmp_path / "XT1/1/A1_1_infrared.jpg")
    fixed = make(tmp_path, state, pub, clock, unmappable="move", mode_tokens={"infrared": "uv"})
    await fixed.start()
    await settle(fixed, clock, 3)
    assert [e.imaging_mode.value for e in published(pub)] == ["uv"]


async def test_events_claimed_while_the_broker_is_down_are_sent_later_with_the_same_id(tmp_path: Path) -> None:
    state, pub, clock = MemoryIngestState(), FlakyPublisher(), Clock()
    svc = make(tmp_path, state, pub, clock)
    await svc.start()
    write(tmp_path, "XT1/1/A1_1_vis.jpg", drop_jpeg(60))
    await svc.cycle()
    clock.t += 1.5
    pub.down = True
    with pytest.raises(ConnectionError):
        await svc.cycle()
    assert svc.counts()["awaiting_broker"] == 1
    pub.down = False
    await svc.cycle()
    events = published(pub)
    assert len(events) == 1 and svc.counts()["awaiting_broker"] == 0
    assert {r["status"] for r in state.rows.values()} == {"published"}


async def test_a_missing_watch_folder_is_reported_not_treated_as_empty(tmp_path: Path) -> None:
    state, pub, clock = MemoryIngestState(), FakePublisher(), Clock()
    svc = make(tmp_path / "share", state, pub, clock)
    await svc.start()
    assert await svc.cycle() is None
    assert "missing" in (svc.folder_problem or "")
