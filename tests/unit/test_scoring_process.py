"""The CPU model in a child process: same scores as in-process, errors as themselves, a dead child is transient."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from axis_adapters.retry import is_transient
from axis_inference.loader import build_service_scorer
from axis_inference.models import ModelHolder, ModelRef
from axis_inference.scoring_process import ProcessScorer, ScoringProcessDied
from axis_inference.seeding import drop_jpeg, make_classifier, save_mode_bundles
from axis_model.bundle import BaseMismatch
from axis_model.preprocess import ImageRejected
from axis_model.spec import BaseSpec

pytestmark = pytest.mark.unit

OPTIONS = {"variant": "fp32"}


def _wanted(tmp_path: Path) -> dict[str, tuple[ModelRef, Path]]:
    bundles = save_mode_bundles(make_classifier(BaseSpec.tiny(), seed=3), tmp_path)
    return {
        "visible": (ModelRef("axis-visible", "7", 0.3), bundles["visible"]),
        "uv": (ModelRef("axis-uv", "4", None), bundles["uv"]),
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_scores_in_the_child_equal_the_in_process_scorer_and_a_dead_child_is_replaced(tmp_path: Path) -> None:
    wanted = _wanted(tmp_path)
    local = build_service_scorer(wanted, **OPTIONS)
    remote = ProcessScorer(wanted, OPTIONS)
    try:
        assert remote.refs == local.refs
        assert "in scoring process" in remote.describe()
        pid = remote.pid
        assert pid is not None and pid != os.getpid()
        images = [drop_jpeg(60 + 40 * i, seed=i) for i in range(3)]
        items = [(mode, remote.prepare(mode, data)) for data in images for mode in ("uv", "visible")]
        assert remote.score(items) == pytest.approx(local.score(items), abs=1e-6)
        assert remote.score([]) == []
        with pytest.raises(ImageRejected):
            remote.prepare("visible", b"not an image")
        with pytest.raises(KeyError, match="no model for mode"):  # the child's own error, raised here as itself
            remote.score([("infrared", items[0][1])])
        assert remote.score(items[:2]) == pytest.approx(local.score(items[:2]), abs=1e-6)  # still serving

        os.kill(pid, signal.SIGKILL)  # killed for memory, say
        with pytest.raises(ScoringProcessDied) as died:
            remote.score(items)
        assert is_transient(died.value)  # the batch is redelivered, never dead-lettered
        assert remote.score(items) == pytest.approx(local.score(items), abs=1e-6)  # a new child, same bundles
        assert remote.restarts == 1 and remote.pid not in (None, pid)
    finally:
        remote.close()
    assert remote.pid is None
    remote.close()  # idempotent


def test_a_load_error_in_the_child_is_raised_as_itself(tmp_path: Path) -> None:
    mine = save_mode_bundles(make_classifier(BaseSpec.tiny(seed=0)), tmp_path / "a")
    other = save_mode_bundles(make_classifier(BaseSpec.tiny(seed=5)), tmp_path / "b")
    wanted = {
        "visible": (ModelRef("axis-visible", "1"), mine["visible"]),
        "uv": (ModelRef("axis-uv", "1"), other["uv"]),
    }
    with pytest.raises(BaseMismatch, match="AXIS_MODEL__BASE_PATH"):
        ProcessScorer(wanted, OPTIONS)


async def test_the_holder_ends_the_child_of_the_scorer_it_replaces(tmp_path: Path) -> None:
    wanted = _wanted(tmp_path)
    holder = ModelHolder()
    first, second = ProcessScorer(wanted, OPTIONS), ProcessScorer(wanted, OPTIONS)
    pids = (first.pid, second.pid)
    assert None not in pids
    await holder.swap(first)
    await holder.swap(second)
    assert first.pid is None and not _alive(pids[0])  # type: ignore[arg-type]
    assert second.pid == pids[1] and _alive(pids[1])  # type: ignore[arg-type]
    await holder.close()
    assert holder.scorer is None and second.pid is None and not _alive(pids[1])  # type: ignore[arg-type]
