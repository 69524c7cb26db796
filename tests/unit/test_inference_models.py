"""Champion loading and hot swap with an in-memory registry, and the /health + /metrics endpoints."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
from axis_adapters.health_http import HealthServer
from axis_adapters.registry import CHAMPION
from axis_inference.metrics import Metrics
from axis_inference.models import ChampionWatcher, ModelHolder, ModelRef, Scorer
from fakes import InMemoryRegistry

pytestmark = pytest.mark.unit

NAMES = {"visible": "axis-visible", "uv": "axis-uv"}


class StubScorer:
    def __init__(self, refs: Mapping[str, ModelRef], bundles: Mapping[str, Path]) -> None:
        self._refs = dict(refs)
        self.bundles = dict(bundles)

    @property
    def refs(self) -> Mapping[str, ModelRef]:
        return self._refs

    def prepare(self, mode: str, data: bytes) -> np.ndarray:
        return np.zeros(1)

    def score(self, items: Sequence[tuple[str, np.ndarray]]) -> list[float]:
        return [0.5 for _ in items]


def stub_factory(wanted: Mapping[str, tuple[ModelRef, Path]]) -> Scorer:
    refs = {
        m: ModelRef(r.name, r.version, r.threshold if r.threshold is not None else 0.5) for m, (r, _) in wanted.items()
    }
    return StubScorer(refs, {m: p for m, (_, p) in wanted.items()})


def register(reg: InMemoryRegistry, tmp: Path, name: str, tag: str, threshold: str = "0.4") -> str:
    bundle = tmp / f"{name}-{tag}"
    bundle.mkdir()
    (bundle / "bundle.json").write_text(json.dumps({"tag": tag}))
    version = reg.register_bundle(name, bundle, run_id=f"run-{tag}", tags={"threshold": threshold}).version
    reg.set_alias(name, CHAMPION, version)
    return version


def watcher(reg: InMemoryRegistry, holder: ModelHolder, tmp: Path, bootstrap: Path | None = None) -> ChampionWatcher:
    return ChampionWatcher(
        source=reg,
        model_names=NAMES,
        factory=stub_factory,
        holder=holder,
        poll_seconds=0.05,
        bootstrap_bundle=bootstrap,
        cache_dir=tmp / "cache",
    )


async def test_waits_with_a_clear_message_until_every_mode_has_a_champion(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg, holder = InMemoryRegistry(), ModelHolder()
    w = watcher(reg, holder, tmp_path)
    stop = asyncio.Event()
    # another library's logging.config (disable_existing_loggers) may have disabled ours earlier in the session
    logging.getLogger("axis_inference.models").disabled = False
    caplog.set_level(logging.WARNING, logger="axis_inference.models")
    waiting = asyncio.create_task(w.wait_ready(stop))
    message = "no champion registered for axis-visible/axis-uv; waiting"
    for _ in range(100):  # the first registry check runs on a thread: on a loaded machine it can take a while
        if message in caplog.text:
            break
        await asyncio.sleep(0.1)
    assert not waiting.done() and holder.scorer is None
    assert message in caplog.text
    register(reg, tmp_path, "axis-visible", "v1")
    await asyncio.sleep(0.2)
    assert not waiting.done()  # uv still missing
    register(reg, tmp_path, "axis-uv", "u1")
    assert await asyncio.wait_for(waiting, 5) is True
    assert holder.versions() == {"visible": "axis-visible:1", "uv": "axis-uv:1"}
    assert holder.scorer is not None and holder.scorer.refs["uv"].threshold == pytest.approx(0.4)


async def test_bootstrap_bundle_serves_until_a_champion_appears(tmp_path: Path) -> None:
    reg, holder = InMemoryRegistry(), ModelHolder()
    boot = tmp_path / "boot"
    boot.mkdir()
    (boot / "bundle.json").write_text("{}")
    w = watcher(reg, holder, tmp_path, bootstrap=boot)
    assert await w.wait_ready(asyncio.Event())
    assert all(v.split(":")[1].startswith("bootstrap-") for v in holder.versions().values())
    register(reg, tmp_path, "axis-visible", "v1")
    assert await w.refresh()
    assert holder.versions()["visible"] == "axis-visible:1"
    assert holder.versions()["uv"].startswith("axis-uv:bootstrap-")


async def test_promotion_swaps_only_after_the_batch_in_flight(tmp_path: Path) -> None:
    reg, holder = InMemoryRegistry(), ModelHolder()
    register(reg, tmp_path, "axis-visible", "v1")
    register(reg, tmp_path, "axis-uv", "u1")
    w = watcher(reg, holder, tmp_path)
    assert await w.refresh()
    assert not await w.refresh()  # nothing changed: no reload
    register(reg, tmp_path, "axis-visible", "v2")
    async with holder.lock:  # a batch is being scored
        refreshing = asyncio.create_task(w.refresh())
        await asyncio.sleep(0.2)
        assert holder.versions()["visible"] == "axis-visible:1"
    assert await refreshing
    assert holder.versions()["visible"] == "axis-visible:2" and holder.swaps == 2


async def test_model_promoted_wakes_the_watcher_before_the_poll_interval(tmp_path: Path) -> None:
    reg, holder = InMemoryRegistry(), ModelHolder()
    register(reg, tmp_path, "axis-visible", "v1")
    register(reg, tmp_path, "axis-uv", "u1")
    w = watcher(reg, holder, tmp_path)
    w._poll = 30
    await w.refresh()
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    register(reg, tmp_path, "axis-uv", "u2")
    w.trigger()
    for _ in range(50):
        if holder.versions()["uv"] == "axis-uv:2":
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert holder.versions()["uv"] == "axis-uv:2"


async def test_health_and_metrics_endpoints() -> None:
    metrics = Metrics()
    metrics.observe_batch(size=8, scored=7, seconds=0.3)
    metrics.dead_lettered["ImageRejected"] += 1
    versions = {"visible": "axis-visible:3", "uv": "axis-uv:2"}

    async def health() -> tuple[bool, dict[str, object]]:
        return True, {"status": "ok", "models": versions}

    async def prom() -> str:
        return metrics.prometheus(versions)

    async def as_json() -> dict[str, object]:
        return metrics.as_dict(versions)

    server = HealthServer(
        "127.0.0.1", 0, health=health, metrics=prom, metrics_json=as_json, token="t0ken", require_token=True
    )
    port = await server.start()
    try:
        import httpx

        async with httpx.AsyncClient() as client:
            h = await client.get(f"http://127.0.0.1:{port}/health")
            m = await client.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": "Bearer t0ken"})
            j = await client.get(
                f"http://127.0.0.1:{port}/metrics?format=json", headers={"Authorization": "Bearer t0ken"}
            )
            missing = await client.get(f"http://127.0.0.1:{port}/nope")
    finally:
        await server.stop()
    assert h.status_code == 200 and h.json()["models"]["visible"] == "axis-visible:3"
    assert "axis_inference_images_scored_total 7" in m.text
    assert 'axis_inference_model_info{mode="uv",model="axis-uv",version="2"} 1' in m.text
    assert 'axis_inference_dead_lettered_total{reason="ImageRejected"} 1' in m.text
    assert j.json()["batch_size_avg"] == 8 and j.json()["images_scored"] == 7
    assert missing.status_code == 404
