"""The CPU model in its own process: the service's Scorer whose forward passes run in a child that owns the cores.

Why: run from a worker thread of the service, the same model measured 20-35 % slower per image than on a main
thread (bench-inference at 224 px, 2 cores: 138-182 ms/img in the scoring thread against 111-122 on the main
thread of the same process, minutes apart; the process used ~150 % of the cores instead of ~197 %: the
scoring thread waits for the GIL between torch ops while the event loop, the fetch threads and the clients'
threads run). A child process has its own interpreter and GIL; its main thread runs nothing but forward passes.

The parent keeps what is cheap and per record (decode + preprocess in the fetch threads, so a bad image is
still dead-lettered as such), sends each batch's arrays through a pipe (16 images at 224 px: 9.6 MB) and
gets the probabilities back. The child loads the bundles itself (``build_service_scorer``), so the model is
in memory once, in the child. Delivery rules:

- a load error in the child (broken bundle, base mismatch) is raised in the parent as itself: the champion
  watcher keeps the models it has, as before;
- an error of a forward pass is raised in the parent as itself (the batch is isolated, as in-process);
- a child that dies (killed for memory, crashed) raises ``ScoringProcessDied``, a ``ConnectionError``: the
  shared rule calls it transient, so the batch is redelivered, never dead-lettered; the next batch starts a
  new child with the same bundles;
- ``close()`` (the holder calls it when a new scorer replaces this one, the service at its stop) ends the
  child; a child whose parent is gone ends itself (its pipe closes).
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import sys
import threading
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from axis_model.preprocess import PreprocessConfig, preprocess_bytes

from axis_inference.models import ModelRef

log = logging.getLogger(__name__)

START_TIMEOUT_S = 600.0  # importing torch and loading a ViT-L base from a slow disk can take minutes
STOP_TIMEOUT_S = 10.0


class ScoringProcessDied(ConnectionError):
    """The scoring child exited or its pipe broke (transient: the batch is redelivered, a new child started)."""


class ScoringProcessError(RuntimeError):
    """An error in the child that could not be sent back as itself (not picklable)."""


def _send_error(conn: Connection, exc: BaseException) -> None:
    try:
        conn.send(("error", exc))
    except (pickle.PicklingError, TypeError, AttributeError):
        conn.send(("error", ScoringProcessError(f"{type(exc).__name__}: {exc}")))


def serve(conn: Connection, wanted: Mapping[str, tuple[ModelRef, Path]], options: Mapping[str, Any]) -> None:
    """The child's main: load the bundles, say ready, then score each batch the parent sends until it closes.

    It ignores SIGINT and SIGTERM (a Ctrl-C or a supervisor's signal to the process group must not kill the
    batch in flight: the parent stops gracefully and then closes the child); it ends when the parent says so
    or is gone."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    from axis_inference.loader import build_service_scorer

    try:
        scorer = build_service_scorer(wanted, **options)
    except Exception as exc:
        _send_error(conn, exc)
        return
    conn.send(("ready", scorer.refs, scorer.preprocess, scorer.describe()))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if request[0] == "close":
            return
        _, modes, pixels = request
        try:
            probs = scorer.score(list(zip(modes, pixels, strict=True)))
        except Exception as exc:
            _send_error(conn, exc)
            continue
        conn.send(("ok", probs))


class ProcessScorer:
    """A Scorer (axis_inference.models) whose model runs in a child process; ``prepare`` runs in the caller."""

    def __init__(
        self,
        wanted: Mapping[str, tuple[ModelRef, Path]],
        options: Mapping[str, Any],
        *,
        start_timeout_s: float = START_TIMEOUT_S,
    ) -> None:
        self._wanted = dict(wanted)
        self._options = dict(options)
        self._start_timeout = start_timeout_s
        self._lock = threading.Lock()
        self._proc: Any = None
        self._conn: Connection | None = None
        self.restarts = 0
        self.refs: dict[str, ModelRef] = {}
        self.preprocess: PreprocessConfig
        self._describe = ""
        self._start()

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")  # never fork: the service has threads and an event loop
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=serve, args=(child, self._wanted, self._options), name="axis-score", daemon=True)
        main = sys.modules.get("__main__")
        # a script run as `python file.py` would be imported again in the child; modules run with -m are guarded
        script = getattr(main, "__file__", None) if main is not None and not getattr(main, "__spec__", None) else None
        if script is not None:
            del main.__file__  # type: ignore[union-attr]
        try:
            proc.start()
        finally:
            if script is not None:
                main.__file__ = script  # type: ignore[union-attr]
        child.close()
        try:
            if not parent.poll(self._start_timeout):
                raise TimeoutError(f"the scoring process did not load its models within {self._start_timeout:.0f}s")
            reply = parent.recv()
        except BaseException:
            parent.close()
            self._end(proc)
            raise
        if reply[0] == "error":
            parent.close()
            self._end(proc)
            raise reply[1]
        _, self.refs, self.preprocess, describe = reply
        self._describe = f"{describe}, in scoring process {proc.pid}"
        self._proc, self._conn = proc, parent

    @staticmethod
    def _end(proc: Any) -> None:
        proc.join(STOP_TIMEOUT_S)
        if proc.is_alive():
            proc.terminate()
            proc.join(STOP_TIMEOUT_S)
        if proc.is_alive():
            proc.kill()
            proc.join()

    @property
    def pid(self) -> int | None:
        """The child's process id (None once closed)."""
        return self._proc.pid if self._proc is not None else None

    def prepare(self, mode: str, data: bytes) -> np.ndarray:
        """Image bytes -> normalised model input, in the calling thread (raises ImageRejected)."""
        return preprocess_bytes(data, self.preprocess)

    def describe(self) -> str:
        """e.g. 'FastScorer int8 on cpu, chunks of 8, in scoring process 4242'."""
        return self._describe

    def score(self, items: Sequence[tuple[str, np.ndarray]]) -> list[float]:
        """P(crystal) per item, in input order, computed in the child; a dead child raises ScoringProcessDied."""
        if not items:
            return []
        modes = [mode for mode, _ in items]
        pixels = np.stack([np.asarray(x, dtype=np.float32) for _, x in items])
        with self._lock:
            if self._conn is None:  # the last child died: a new one with the same bundles
                self.restarts += 1
                log.warning("starting scoring process again (restart %d)", self.restarts)
                self._start()
            conn = self._conn
            assert conn is not None
            try:
                conn.send(("score", modes, pixels))
                reply = conn.recv()
            except (EOFError, OSError) as exc:
                code = self._proc.exitcode if self._proc is not None else None
                self._forget()
                raise ScoringProcessDied(
                    f"the scoring process exited (code {code}) during a batch; it is started again for the next"
                ) from exc
        if reply[0] == "error":
            raise reply[1]
        return [float(p) for p in reply[1]]

    def _forget(self) -> None:
        if self._conn is not None:
            self._conn.close()
        if self._proc is not None:
            self._end(self._proc)
        self._proc = self._conn = None

    def close(self) -> None:
        """End the child (idempotent)."""
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.send(("close",))
                except OSError:
                    pass
            self._forget()
