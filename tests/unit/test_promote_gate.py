"""Promotion with the bootstrap gate, from the test-set predictions stored in the training runs (fake registry)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from axis_adapters.registry import CHAMPION, metric_tags
from axis_cli.gate_report import PREDICTIONS_ARTIFACT
from axis_cli.promote import PromotionRefused, evaluate_candidate, promote
from axis_core.fused_eval import Prediction, to_jsonl
from axis_core.gate import GateConfig
from fakes import InMemoryRegistry

N = 400


def _preds(mode: str, missed: int, *, n: int = N) -> list[Prediction]:
    """Inspections 0..n/2-1 crystal; the first ``missed`` of them predicted other; no false alarms."""
    out = []
    for i in range(n):
        crystal = i < n // 2
        says = crystal and i >= missed
        out.append(Prediction(f"i{i}", mode, 0.9 if says else 0.1, 0.5, "crystal" if crystal else "other"))
    return out


def _register(reg: InMemoryRegistry, tmp: Path, name: str, run: str, text: str, tags: dict[str, str]) -> str:
    bundle = tmp / "bundle"
    bundle.mkdir(exist_ok=True)
    (bundle / "bundle.json").write_text("{}")
    metrics = {"test_recall": 0.9, "test_balanced_accuracy": 0.9}
    v = reg.register_bundle(name, bundle, run, {"threshold": "0.5", "test_set": "B@1", **metric_tags(metrics), **tags})
    reg.log_run_text(run, text, PREDICTIONS_ARTIFACT)
    return v.version


@pytest.fixture
def reg(tmp_path: Path) -> InMemoryRegistry:
    """visible v1 champion (recall 0.95), uv v1 champion; visible v2 5 points worse, v3 equal."""
    r = InMemoryRegistry(root=tmp_path / "reg")
    champ = _preds("visible", 10)
    _register(r, tmp_path, "axis-visible", "run1", to_jsonl(champ, model="new"), {})
    r.set_alias("axis-visible", CHAMPION, "1")
    _register(r, tmp_path, "axis-uv", "run-uv", to_jsonl(_preds("uv", 40), model="new"), {})
    r.set_alias("axis-uv", CHAMPION, "1")
    seen = to_jsonl(champ, model="champion", version="1")
    tags = {"champion_version_at_training": "1"}
    _register(r, tmp_path, "axis-visible", "run2", to_jsonl(_preds("visible", 20), model="new") + seen, tags)
    _register(r, tmp_path, "axis-visible", "run3", to_jsonl(_preds("visible", 10), model="new") + seen, tags)
    return r


def test_a_five_point_worse_challenger_is_refused_and_the_report_lands_on_its_run(reg: InMemoryRegistry) -> None:
    with pytest.raises(PromotionRefused) as info:
        promote(reg, "axis-visible", "2", by="ana", reason="try", other_models=("axis-visible", "axis-uv"))
    ev = info.value.evaluation
    assert ev is not None and ev.gate.report is not None
    scopes = {s.scope: s for s in ev.gate.report.scopes}
    assert set(scopes) == {"visible", "fused"}
    assert scopes["visible"].d_recall.observed == pytest.approx(-0.05)
    assert not scopes["visible"].passed
    assert reg.champion("axis-visible").version == "1"  # type: ignore[union-attr]
    logged = json.loads(reg.run_artifacts[("run2", "gate/vs_champion_v1/gate_report.json")])
    assert logged["verdict"] == "refuse" and logged["config"]["resamples"] == 2000
    assert ("run2", "gate/vs_champion_v1/gate_report.png") in reg.run_artifacts
    print(ev.text())


def test_an_equal_challenger_is_promoted_and_fused_with_the_uv_champion(reg: InMemoryRegistry) -> None:
    result = promote(reg, "axis-visible", "3", by="ana", reason="same", other_models=("axis-visible", "axis-uv"))
    assert reg.champion("axis-visible").version == "3"  # type: ignore[union-attr]
    assert result.evaluation is not None and result.evaluation.gate.report is not None
    assert "fused with the champions of axis-uv" in result.evaluation.gate.report.notes
    assert result.evaluation.to_dict()["verdict"] == "accept"


def test_dry_run_evaluation_changes_nothing_and_forced_promotion_is_marked(reg: InMemoryRegistry) -> None:
    ev = evaluate_candidate(reg, "axis-visible", "2", gate_config=GateConfig(resamples=1000))
    assert ev.refused and "REFUSE" in ev.text()
    assert reg.champion("axis-visible").version == "1"  # type: ignore[union-attr]
    result = promote(reg, "axis-visible", "2", by="ana", reason="needed", force=True)
    assert result.refused and reg.version("axis-visible", "2").tags["promoted_forced"] == "true"


def test_a_version_without_predictions_falls_back_to_the_tag_comparison(reg: InMemoryRegistry, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    reg.register_bundle("axis-visible", bundle, "run-x", {"threshold": "0.5", **metric_tags({"test_recall": 0.5})})
    ev = evaluate_candidate(reg, "axis-visible", "4")
    assert ev.gate.report is None and "no test_predictions.jsonl" in ev.gate.notes[0]
    assert ev.refused and "test_balanced_accuracy" in " ".join(ev.problems)
