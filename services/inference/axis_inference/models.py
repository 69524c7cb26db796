"""Which model versions score: the champion of each mode, loaded, watched and hot-swapped between batches."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from axis_adapters.registry import RegisteredVersion

log = logging.getLogger(__name__)

BOOTSTRAP_PREFIX = "bootstrap-"


@dataclass(frozen=True)
class ModelRef:
    """The registered model version that scores one mode, with its decision threshold."""

    name: str
    version: str
    threshold: float | None = None  # None: the bundle's own threshold (a loaded Scorer always fills it in)


class Scorer(Protocol):
    """A loaded set of per-mode models on one shared backbone (prepare is thread-safe; score is not). A scorer
    that holds more than memory (ProcessScorer: a child process) also has ``close()``, called once replaced."""

    @property
    def refs(self) -> Mapping[str, ModelRef]:
        """``{mode: model version}`` of this scorer."""
        ...

    def prepare(self, mode: str, data: bytes) -> np.ndarray:
        """Image file bytes -> model input; raises ImageRejected(reason)."""
        ...

    def score(self, items: Sequence[tuple[str, np.ndarray]]) -> list[float]:
        """P(crystal) for (mode, pixels) items, in input order."""
        ...


class ChampionSource(Protocol):
    """The part of the model registry the service needs (ModelRegistry; tests use fakes.InMemoryRegistry)."""

    def champion(self, model_name: str) -> RegisteredVersion | None: ...
    def download_bundle(self, model_name: str, version: str, dest_dir: str | Path) -> Path: ...


# Builds a scorer from {mode: (ref, bundle directory)}; slow (loads the base), run it off the event loop.
ScorerFactory = Callable[[Mapping[str, tuple[ModelRef, Path]]], Scorer]


class ModelHolder:
    """The scorer in use; batches hold ``lock`` while they score, so a swap happens only between batches."""

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.scorer: Scorer | None = None
        self.ready = asyncio.Event()
        self.swaps = 0

    def versions(self) -> dict[str, str]:
        """``{mode: "name:version"}`` of the loaded models (empty before the first load)."""
        if self.scorer is None:
            return {}
        return {mode: f"{ref.name}:{ref.version}" for mode, ref in self.scorer.refs.items()}

    async def swap(self, scorer: Scorer) -> None:
        """Install a new scorer once the batch in flight (if any) has finished."""
        async with self.lock:
            old = self.versions()
            previous, self.scorer = self.scorer, scorer
            self.swaps += 1
        self.ready.set()
        log.info("models in use: %s (were %s)", self.versions(), old or "none")
        await _close(previous)

    async def close(self) -> None:
        """Release the scorer in use (a scoring process ends); at the service's stop."""
        async with self.lock:
            previous, self.scorer = self.scorer, None
        await _close(previous)


async def _close(scorer: Scorer | None) -> None:
    """End what a replaced scorer holds (ProcessScorer: its child), off the event loop."""
    close = getattr(scorer, "close", None)
    if callable(close):
        try:
            await asyncio.to_thread(close)
        except Exception as exc:  # a child that will not end must not stop the swap
            log.warning("could not close the previous scorer: %s", exc)


def _bundle_digest(path: Path) -> str:
    manifest = path / "bundle.json"
    data = manifest.read_bytes() if manifest.is_file() else str(path.resolve()).encode()
    return hashlib.sha256(data).hexdigest()[:12]


class ChampionWatcher:
    """Loads the ``champion`` of every mode at start, then follows the alias (poll + ModelPromoted)."""

    def __init__(
        self,
        *,
        source: ChampionSource,
        model_names: Mapping[str, str],
        factory: ScorerFactory,
        holder: ModelHolder,
        poll_seconds: float,
        bootstrap_bundle: Path | None = None,
        cache_dir: Path | None = None,
    ) -> None:
        self._source = source
        self._names = dict(model_names)
        self._factory = factory
        self._holder = holder
        self._poll = poll_seconds
        self._bootstrap = bootstrap_bundle
        self._own_cache = cache_dir is None
        self._cache = cache_dir or Path(tempfile.mkdtemp(prefix="axis-inference-models-"))
        self._wake = asyncio.Event()
        self.last_error: str | None = None

    def trigger(self) -> None:
        """Check the registry now (a ModelPromoted event arrived)."""
        self._wake.set()

    def _wanted(self) -> tuple[dict[str, tuple[ModelRef, Path]] | None, list[str]]:
        """Resolve and download the bundle of every mode; (None, missing model names) when one has none."""
        resolved: dict[str, tuple[ModelRef, Path]] = {}
        missing: list[str] = []
        for mode, name in self._names.items():
            champ = self._source.champion(name)
            if champ is None:
                if self._bootstrap is not None:
                    ref = ModelRef(name, BOOTSTRAP_PREFIX + _bundle_digest(self._bootstrap))
                    resolved[mode] = (ref, self._bootstrap)
                else:
                    missing.append(name)
                continue
            ref = ModelRef(name, champ.version, champ.threshold)
            resolved[mode] = (ref, self._download(name, champ.version))
        return (None if missing else resolved), missing

    def _download(self, name: str, version: str) -> Path:
        dest = self._cache / name / version
        done = dest / ".complete"
        if done.is_file():
            return Path(done.read_text())
        if dest.exists():
            shutil.rmtree(dest)
        path = self._source.download_bundle(name, version, dest)
        done.write_text(str(path))
        return path

    def _load_if_changed(self) -> Scorer | None:
        wanted, missing = self._wanted()
        if wanted is None:
            if self._holder.scorer is None:
                log.warning(
                    "no champion registered for %s; waiting (scoring starts by itself once one is: "
                    "`python -m axis_cli register BUNDLE_DIR --promote --by NAME` for a local bundle or, with "
                    "--published-visible/--published-uv DIR --base-path DINOV2_DIR, the published AXIS adapters; "
                    "`make demo` trains the demo's foundation model)",
                    "/".join(missing),
                )
            return None
        current = self._holder.scorer
        if current is not None and all(
            current.refs.get(mode) is not None
            and (current.refs[mode].name, current.refs[mode].version) == (ref.name, ref.version)
            for mode, (ref, _) in wanted.items()
        ):
            return None
        log.info("loading models %s", {m: f"{r.name}:{r.version}" for m, (r, _) in wanted.items()})
        return self._factory(wanted)

    async def refresh(self) -> bool:
        """Load the current champions if they changed; True when a new scorer was installed."""
        try:
            scorer = await asyncio.to_thread(self._load_if_changed)
        except Exception as exc:  # registry down or a broken bundle: keep scoring with what is loaded
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("could not load the champion models (keeping the loaded ones): %s", self.last_error)
            return False
        self.last_error = None
        if scorer is None:
            return False
        await self._holder.swap(scorer)
        return True

    async def wait_ready(self, stop: asyncio.Event) -> bool:
        """Poll until every mode has a model (True) or ``stop`` is set (False)."""
        while not stop.is_set():
            if await self.refresh() or self._holder.scorer is not None:
                return True
            await self._sleep(stop)
        return False

    async def run(self, stop: asyncio.Event) -> None:
        """Follow the champion alias until ``stop`` is set."""
        while not stop.is_set():
            await self._sleep(stop)
            if not stop.is_set():
                await self.refresh()

    async def _sleep(self, stop: asyncio.Event) -> None:
        waits = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waits, timeout=self._poll, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        self._wake.clear()

    def close(self) -> None:
        """Remove the bundle cache when this watcher created it."""
        if self._own_cache:
            shutil.rmtree(self._cache, ignore_errors=True)
