"""Patch maps of the champion models over HTTP: ``python -m axis_inference.patchmaps``.

``GET /v1/patch-map?uri=s3://…&mode=visible`` returns the image's crystal probability under the mode's champion,
its logit margin split into CLS, bias and patch parts, and the patch part per patch (axis_model.patchmap), for
the curator and well views to draw over the image. The champions are followed exactly as the inference service
follows them (ChampionWatcher); the maps come from the plain torch classifier, on a second process so that
scoring throughput is untouched. ``GET /health`` is open; the map needs ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from axis_adapters.health_http import HealthServer, Route
from axis_adapters.objectstore import MinioObjectStore, ObjectStore
from axis_model import CrystalClassifier, ImageRejected, preprocess_bytes
from axis_model.patchmap import patch_maps

from axis_inference.loader import load_classifier
from axis_inference.models import ChampionSource, ChampionWatcher, ModelHolder, ModelRef, Scorer
from axis_inference.settings import InferenceSettings

log = logging.getLogger(__name__)


@dataclass
class MapScorer:
    """A Scorer over the plain torch classifier that also explains its scores patch by patch."""

    refs: dict[str, ModelRef]
    classifier: CrystalClassifier
    lock: threading.Lock = field(default_factory=threading.Lock)

    def prepare(self, mode: str, data: bytes) -> np.ndarray:
        """Image bytes -> model input (raises ImageRejected)."""
        return preprocess_bytes(data, self.classifier.preprocess)

    def score(self, items: Sequence[tuple[str, np.ndarray]]) -> list[float]:
        """P(crystal) per item, in input order."""
        with self.lock:
            return [float(p) for p in self.classifier.score_items(items)]

    def patch_map(self, mode: str, data: bytes) -> dict[str, Any]:
        """The JSON body of one image's map under this mode's model."""
        if mode not in self.refs:
            raise KeyError(f"no model for mode {mode!r}; loaded: {sorted(self.refs)}")
        pixels = self.prepare(mode, data)[None]
        with self.lock:
            m = patch_maps(self.classifier, pixels, mode)[0]
        ref = self.refs[mode]
        return {
            **m.as_dict(),
            "model_name": ref.name,
            "model_version": ref.version,
            "threshold": ref.threshold,
        }


def map_factory(*, base_path: str | None = None) -> Callable[[Mapping[str, tuple[ModelRef, Path]]], Scorer]:
    """Builds MapScorers from the champions' bundles (slow: run it off the event loop)."""

    def factory(wanted: Mapping[str, tuple[ModelRef, Path]]) -> Scorer:
        classifier, refs = load_classifier(wanted, base_path=base_path)
        return MapScorer(refs=dict(refs), classifier=classifier)

    return factory


class PatchMapRoutes:
    """The HTTP routes over a holder of MapScorers and the image store; recent maps are cached."""

    def __init__(self, *, holder: ModelHolder, store: ObjectStore, max_bytes: int, cache_size: int = 256) -> None:
        self._holder = holder
        self._store = store
        self._max_bytes = max_bytes
        self._cache: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
        self._cache_size = cache_size

    def routes(self) -> dict[str, Route]:
        """The guarded routes for HealthServer (``/health`` is :meth:`health`)."""
        return {"/v1/patch-map": self.patch_map}

    async def health(self) -> tuple[bool, dict[str, Any]]:
        """ok once every mode has a model."""
        ready = self._holder.scorer is not None
        return ready, {"status": "ok" if ready else "waiting_for_champion", "models": self._holder.versions()}

    def server(self, host: str, port: int, *, token: str | None) -> HealthServer:
        """/health (open) and /v1/patch-map (bearer token; closed without one) on FastAPI/uvicorn, no /metrics."""
        return HealthServer(
            host,
            port,
            health=self.health,
            metrics=None,
            token=token,
            require_token=True,
            token_setting="AXIS_INFERENCE__METRICS_TOKEN",
            routes=self.routes(),
        )

    async def patch_map(self, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
        """One image's patch map: ``uri`` (s3://…) and ``mode`` (visible / uv)."""
        uri, mode = (query.get("uri") or [""])[0], (query.get("mode") or [""])[0]
        if not uri.startswith("s3://") or not mode:
            return 400, "text/plain", b"give uri=s3://bucket/key and mode=visible|uv\n"
        scorer = self._holder.scorer
        if not isinstance(scorer, MapScorer):
            return 503, "text/plain", b"no champion model loaded yet; try again shortly\n"
        ref = scorer.refs.get(mode)
        if ref is None:
            return 404, "text/plain", f"no model for mode {mode!r}; loaded: {sorted(scorer.refs)}\n".encode()
        key = (uri, mode, f"{ref.name}:{ref.version}")
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return 200, "application/json", cached
        try:
            data = await asyncio.to_thread(self._store.get_bytes, uri, self._max_bytes)
        except Exception as exc:  # missing object, store down: the caller shows no overlay
            log.warning("patch map: cannot read %s: %r", uri, exc)
            return 404, "text/plain", f"cannot read {uri}\n".encode()
        try:
            body = json.dumps({"uri": uri, **await asyncio.to_thread(scorer.patch_map, mode, data)}).encode()
        except ImageRejected as exc:
            return 400, "text/plain", f"image cannot be scored: {exc.reason}\n".encode()
        self._cache[key] = body
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return 200, "application/json", body


async def serve(settings: InferenceSettings, *, host: str, port: int, source: ChampionSource | None = None) -> None:
    """Follow the champions and serve maps until SIGTERM/SIGINT."""
    from axis_inference.service import default_source

    opts = settings.inference
    holder = ModelHolder()
    names = {"visible": settings.mlflow.visible_model, "uv": settings.mlflow.uv_model}
    watcher = ChampionWatcher(
        source=source or default_source(settings),
        model_names={m: names[m] for m in opts.modes if m in names},
        factory=map_factory(base_path=settings.model.base_path),
        holder=holder,
        poll_seconds=opts.poll_seconds,
        bootstrap_bundle=Path(opts.bootstrap_bundle) if opts.bootstrap_bundle else None,
    )
    routes = PatchMapRoutes(holder=holder, store=MinioObjectStore(settings.s3), max_bytes=64 << 20)
    token = opts.metrics_token.get_secret_value() if opts.metrics_token else None
    http = routes.server(host, port, token=token)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await http.start()
    log.info("patch maps on http://%s:%d/v1/patch-map", host, http.port)
    try:
        if await watcher.wait_ready(stop):
            await watcher.run(stop)
    finally:
        await http.stop()
        watcher.close()


def main(argv: list[str] | None = None) -> None:
    """Entry point: inference settings from the environment (the map needs AXIS_INFERENCE__METRICS_TOKEN)."""
    from axis_adapters.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m axis_inference.patchmaps", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8084)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(load_settings(InferenceSettings), host=args.host, port=args.port))


if __name__ == "__main__":
    main()
