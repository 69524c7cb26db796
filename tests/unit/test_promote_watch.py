"""promote-watch with fakes: an MLflow alias move is recorded once with the gate's verdict, announced once across
restarts, a CLI promotion is not taken for an MLflow one, and going back is a rollback."""

from __future__ import annotations

from pathlib import Path

import pytest
from axis_adapters.registry import CHAMPION, metric_tags
from axis_cli.gate_report import PREDICTIONS_ARTIFACT
from axis_cli.promote_watch import Watcher
from axis_contracts import ModelPromoted
from axis_core.fused_eval import Prediction, to_jsonl
from axis_core.gate import GateConfig
from fakes import InMemoryPromotionStore, InMemoryRegistry

pytestmark = pytest.mark.unit
VIS = "axis-visible"


def _preds(missed: int, n: int = 400) -> list[Prediction]:
    return [
        Prediction(f"i{i}", "visible", 0.1 if i < missed else (0.9 if i < n // 2 else 0.1), 0.5, "crystal")
        if i < n // 2
        else Prediction(f"i{i}", "visible", 0.1, 0.5, "other")
        for i in range(n)
    ]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def reg(tmp_path: Path) -> InMemoryRegistry:
    """v1 (recall 0.95) and v2 (0.90, measured against v1 in its run); champion v1."""
    r = InMemoryRegistry(root=tmp_path / "reg")
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "bundle.json").write_text("{}")
    tags = {"threshold": "0.5", "test_set": "B@1", **metric_tags({"test_recall": 0.9})}
    r.register_bundle(VIS, bundle, "run1", tags)
    r.log_run_text("run1", to_jsonl(_preds(10), model="new"), PREDICTIONS_ARTIFACT)
    r.register_bundle(VIS, bundle, "run2", {**tags, "champion_version_at_training": "1"})
    text = to_jsonl(_preds(20), model="new") + to_jsonl(_preds(10), model="champion", version="1")
    r.log_run_text("run2", text, PREDICTIONS_ARTIFACT)
    r.set_alias(VIS, CHAMPION, "1")
    return r


def _watcher(reg: InMemoryRegistry, store: InMemoryPromotionStore, sent: list[ModelPromoted], clock: Clock) -> Watcher:
    async def publish(event: ModelPromoted) -> None:
        sent.append(event)

    return Watcher(
        registry=reg,
        store=store,
        publish=publish,
        models=[VIS],
        gate_config=GateConfig(resamples=1000),
        settle_s=5.0,
        clock=clock,
        say=lambda s: None,
    )


async def test_an_alias_move_is_recorded_once_with_the_gate_verdict_and_announced_once(reg: InMemoryRegistry) -> None:
    store, sent, clock = InMemoryPromotionStore(), [], Clock()  # type: ignore[var-annotated]
    store.insert(model=VIS, version="1", previous=None, by="ana", reason="first", via="cli", key=None)
    w = _watcher(reg, store, sent, clock)
    assert await w.poll_once() == [] and sent == []  # alias and audit agree

    reg.set_alias(VIS, CHAMPION, "2")  # the admin, in the MLflow UI
    assert await w.poll_once() == []  # not settled yet
    clock.t = 6.0
    lines = await w.poll_once()
    assert lines == [f"{VIS}: promotion v1 -> v2 via mlflow, gate refuse"]
    row = store.rows[-1]
    assert (row["via"], row["version"], row["previous"], row["by"]) == ("mlflow", "2", "1", "mlflow")
    assert row["gate"]["verdict"] == "refuse" and row["forced"] is True
    assert len(sent) == 1 and sent[0].event_id == row["event_id"] and sent[0].previous_version == "1"
    assert ("run2", "gate/vs_champion_v1/gate_report.json") in reg.run_artifacts

    clock.t = 20.0
    assert await w.poll_once() == []
    restarted = _watcher(reg, store, sent, clock)
    assert await restarted.poll_once() == [] and await restarted.poll_once() == []
    assert len(store.rows) == 2 and len(sent) == 1

    reg.set_alias(VIS, CHAMPION, "1")  # rollback
    await restarted.poll_once()
    clock.t = 30.0
    assert await restarted.poll_once() == [f"{VIS}: rollback v2 -> v1 via mlflow, gate accept"]
    assert store.rows[-1]["kind"] == "rollback" and len(sent) == 2


async def test_a_cli_promotion_is_not_taken_for_an_mlflow_move(reg: InMemoryRegistry) -> None:
    store, sent, clock = InMemoryPromotionStore(), [], Clock()  # type: ignore[var-annotated]
    w = _watcher(reg, store, sent, clock)
    store.insert(model=VIS, version="1", previous=None, by="ana", reason="first", via="cli", key=None)
    reg.set_alias(VIS, CHAMPION, "2")  # `axis promote` moved the alias ...
    await w.poll_once()
    clock.t = 1.0
    store.insert(model=VIS, version="2", previous="1", by="bob", reason="cli", via="cli", key=None)  # ... and wrote
    clock.t = 10.0
    assert await w.poll_once() == []
    assert [r["via"] for r in store.rows] == ["cli", "cli"] and sent == []


async def test_a_row_recorded_but_not_announced_is_announced_after_a_restart_with_its_event_id(
    reg: InMemoryRegistry,
) -> None:
    store, clock = InMemoryPromotionStore(), Clock()
    store.insert(model=VIS, version="1", previous=None, by="ana", reason="first", via="cli", key=None)
    reg.set_alias(VIS, CHAMPION, "2")

    async def broker_down(event: ModelPromoted) -> None:
        raise ConnectionError("broker down")

    w = Watcher(registry=reg, store=store, publish=broker_down, models=[VIS], settle_s=0.0, clock=clock)
    with pytest.raises(ConnectionError):
        await w.poll_once()
    assert store.rows[-1]["published_at"] is None
    sent: list[ModelPromoted] = []
    await _watcher(reg, store, sent, clock).poll_once()
    assert [e.event_id for e in sent] == [store.rows[-1]["event_id"]] and len(store.rows) == 2
    assert store.rows[-1]["published_at"] is not None


def test_poll_health_says_retrying_while_calls_fail_and_stalled_when_no_poll_finishes() -> None:
    from axis_cli.promote_watch import PollHealth

    clock = Clock()
    polls = PollHealth(stall_after_s=60, clock=clock)
    clock.t = 5
    polls.finished(None, recorded=1)
    assert polls.health()[0] and polls.health()[1]["changes_recorded"] == 1
    clock.t = 8
    polls.finished("MLflow: cannot read the champion alias of axis-visible: connection refused")
    ok, body = polls.health()
    assert not ok and body["status"] == "retrying" and "connection refused" in body["problem"]
    clock.t = 100
    ok, body = polls.health()
    assert not ok and body["status"] == "stalled" and body["seconds_since_poll"] == 92.0
    clock.t = 101
    polls.finished(None)
    assert polls.health()[1]["status"] == "ok"
    assert "axis_promote_watch_failed_polls_total 1" in polls.prometheus()
