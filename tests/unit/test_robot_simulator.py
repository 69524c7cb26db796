"""Robot simulator: plates -> images in the object store -> ImageCaptured events, plus the ground truth."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from axis_adapters.objectstore import parse_uri
from axis_contracts import ImageCaptured, parse_event, topics
from axis_simulators.robot import RobotConfig, image_uri, parse_truth, plan, run_robot
from fakes import FakePublisher, InMemoryObjectStore
from PIL import Image

pytestmark = pytest.mark.unit


async def test_robot_stores_every_image_and_announces_it_with_truth() -> None:
    store, pub = InMemoryObjectStore(), FakePublisher()
    config = RobotConfig(domain="B", plates=1, wells=6, inspections=2, seed=3, run_id="run-1")
    run = await run_robot(config, store=store, publisher=pub)

    events = [parse_event(raw, ImageCaptured) for raw in pub.on(topics.IMAGE_CAPTURED)]
    assert len(events) == 6 * 2 * 2  # wells x inspections x (visible, uv)
    assert {e.imaging_mode.value for e in events} == {"visible", "uv"}
    for e in events:
        bucket, key = parse_uri(e.image_uri)
        assert bucket == "axis-images"
        assert key == f"{e.plate_barcode}/{e.well}/{e.drop}/{e.inspection_id}-{e.imaging_mode.value}.jpg"
        img = Image.open(io.BytesIO(store.get_bytes(e.image_uri)))
        assert img.format == "JPEG" and img.size == (224, 224)

    truth = parse_truth(store.get_bytes("s3://axis-images/run-1/truth.json"))
    assert run.truth_uri == "s3://axis-images/run-1/truth.json"
    assert set(truth) == {e.inspection_id for e in events}
    assert all(t["label"] in ("crystal", "other") for t in truth.values())
    assert json.loads(store.get_bytes(run.truth_uri))["plates"] == run.plates


def test_plan_is_deterministic_and_grows_crystals_over_inspections() -> None:
    config = RobotConfig(domain="A", plates=1, inspections=4, seed=7)
    first, again = plan(config), plan(config)
    assert [(i.inspection_id, i.seed, i.label) for i in first] == [(i.inspection_id, i.seed, i.label) for i in again]
    assert len(first) == 96 * 4 * 2
    by_drop: dict[str, list[float]] = {}
    for im in first:
        if im.final_outcome in ("microcrystals", "needles", "single_crystals") and im.imaging_mode.value == "visible":
            by_drop.setdefault(im.experiment_key, []).append(im.growth)
    assert by_drop, "the default class mix has crystalline drops"
    assert all(g == sorted(g) for g in by_drop.values()), "crystals never shrink between inspections"
    assert any(g[0] == 0.0 and g[-1] > 0 for g in by_drop.values()), "some crystals appear after setup"


def test_png_format_and_unknown_domain() -> None:
    im = plan(RobotConfig(domain="A", wells=1, inspections=1))[0]
    assert image_uri(im, image_format="png").endswith(f"{im.inspection_id}-{im.imaging_mode.value}.png")
    with pytest.raises(ValueError, match="unknown domain 'Z'"):
        RobotConfig(domain="Z").domain_obj()


def test_barcode_prefix_renames_plates_but_keeps_the_drops() -> None:
    plain = plan(RobotConfig(domain="B", wells=4, inspections=2, seed=2))
    tagged = plan(RobotConfig(domain="B", wells=4, inspections=2, seed=2, barcode_prefix="FACB-run7"))
    assert {im.plate_barcode for im in tagged} == {"FACB-run7-2-001"}
    assert all(im.inspection_id.startswith("FACB-run7-2-001-") for im in tagged)
    assert [(im.seed, im.drop_seed, im.label) for im in tagged] == [(im.seed, im.drop_seed, im.label) for im in plain]


async def test_a_stop_request_ends_the_run_after_the_current_image() -> None:
    store, pub = InMemoryObjectStore(), FakePublisher()
    config = RobotConfig(domain="B", plates=1, wells=6, inspections=2, seed=3, run_id="run-stop")
    stop = asyncio.Event()

    def progress(done: int, total: int) -> None:
        if done == 5:
            stop.set()  # what the SIGTERM handler does

    run = await run_robot(config, store=store, publisher=pub, on_progress=progress, stop=stop)
    events = [parse_event(raw, ImageCaptured) for raw in pub.on(topics.IMAGE_CAPTURED)]
    assert run.stopped and run.planned == 24 and run.events == len(events) == 5
    assert all(store.get_bytes(e.image_uri) for e in events)  # every announced image is stored
    assert [e.image_uri for e in events] == run.uris
