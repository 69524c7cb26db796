"""The promotion gate on constructed score sets: paired bootstrap by inspection, per mode and fused."""

from __future__ import annotations

import numpy as np
import pytest
from axis_core.fused_eval import Prediction, from_jsonl, inspection_metrics, metrics_by_scope, to_jsonl
from axis_core.gate import GateConfig, bootstrap_weights, compare_scope, evaluate_gate

N = 400  # inspections
THRESHOLD = 0.5


def _score_set(missed: set[int], false_alarms: set[int], *, n: int = N, modes: tuple[str, ...] = ("visible", "uv")):
    """Half the inspections are crystal; ``missed`` crystal ones and ``false_alarms`` other ones are wrong.

    Every mode of an inspection gives the same decision, so the fused decision equals the per-mode one.
    """
    preds = []
    for i in range(n):
        crystal = i < n // 2
        wrong = i in missed if crystal else i in false_alarms
        says_crystal = crystal != wrong
        for mode in modes:
            p = 0.9 if says_crystal else 0.1
            preds.append(Prediction(f"insp-{i:04d}", mode, p, THRESHOLD, "crystal" if crystal else "other"))
    return preds


def _rng_subset(rng: np.random.Generator, lo: int, hi: int, k: int) -> set[int]:
    return {int(x) for x in rng.choice(np.arange(lo, hi), size=k, replace=False)}


def test_a_challenger_five_points_worse_in_recall_is_refused() -> None:
    rng = np.random.default_rng(1)
    champion = _score_set(_rng_subset(rng, 0, 200, 10), _rng_subset(rng, 200, 400, 10))  # recall 0.95
    # challenger misses the champion's misses plus 10 more crystal inspections: recall 0.90
    extra = _rng_subset(rng, 0, 200, 30)
    champ_missed = {int(p.inspection_id[5:]) for p in champion if p.is_crystal and not p.predicted_crystal}
    missed = champ_missed | set(sorted(extra - champ_missed)[:10])
    champ_fa = {int(p.inspection_id[5:]) for p in champion if not p.is_crystal and p.predicted_crystal}
    challenger = _score_set(missed, champ_fa)
    report = evaluate_gate(challenger, champion, GateConfig(margin=0.02, resamples=2000, seed=7))
    fused = report.scopes[-1]
    assert fused.scope == "fused"
    assert fused.n_inspections == N
    assert fused.d_recall.observed == pytest.approx(-0.05)
    assert fused.d_recall.low < -0.02
    assert report.refused
    assert {s.scope for s in report.scopes if not s.passed} == {"visible", "uv", "fused"}
    assert "recall" in report.problems[0]
    assert "REFUSE" in report.table()


def test_a_challenger_equal_within_noise_is_accepted() -> None:
    """Fine-tuned from the champion, it decides nearly every inspection the same way: a few changes each way."""
    rng = np.random.default_rng(2)
    missed, fa = _rng_subset(rng, 0, 200, 10), _rng_subset(rng, 200, 400, 12)
    champion = _score_set(missed, fa)
    fixed, broken = sorted(missed)[:1], sorted(set(range(200)) - missed)[:1]
    fa_fixed, fa_new = sorted(fa)[:3], sorted(set(range(200, 400)) - fa)[:3]
    challenger = _score_set((missed - set(fixed)) | set(broken), (fa - set(fa_fixed)) | set(fa_new))
    report = evaluate_gate(challenger, champion, GateConfig(resamples=2000, seed=7))
    assert not report.refused, report.table()
    fused = report.scopes[-1]
    assert fused.d_recall.observed == pytest.approx(0.0)
    assert -0.02 <= fused.d_recall.low < 0.0 < fused.d_recall.high
    assert report.verdict() == "accept"


def test_independent_errors_at_equal_rates_cannot_show_non_inferiority_on_400() -> None:
    """Same error rates but unrelated errors: the interval is too wide for a 2-point margin (refused)."""
    rng = np.random.default_rng(2)
    champion = _score_set(_rng_subset(rng, 0, 200, 10), _rng_subset(rng, 200, 400, 12))
    challenger = _score_set(_rng_subset(rng, 0, 200, 10), _rng_subset(rng, 200, 400, 12))
    report = evaluate_gate(challenger, champion, GateConfig(resamples=2000, seed=7))
    assert report.scopes[-1].d_recall.observed == pytest.approx(0.0)
    assert report.refused
    assert evaluate_gate(challenger, champion, GateConfig(margin=0.05, resamples=2000, seed=7)).verdict() == "accept"


def test_the_stricter_reading_requires_a_confident_balanced_accuracy_gain() -> None:
    rng = np.random.default_rng(3)
    champion = _score_set(_rng_subset(rng, 0, 200, 10), _rng_subset(rng, 200, 400, 12))
    challenger = _score_set(_rng_subset(rng, 0, 200, 10), _rng_subset(rng, 200, 400, 12))
    strict = evaluate_gate(challenger, champion, GateConfig(resamples=1000, require_ba_gain=True))
    assert strict.refused
    better = _score_set(set(), set())
    assert not evaluate_gate(better, champion, GateConfig(resamples=1000, require_ba_gain=True)).refused


def test_the_bootstrap_is_reproducible_for_a_seed() -> None:
    rng = np.random.default_rng(4)
    champion = _score_set(_rng_subset(rng, 0, 200, 15), _rng_subset(rng, 200, 400, 15))
    challenger = _score_set(_rng_subset(rng, 0, 200, 12), _rng_subset(rng, 200, 400, 20))
    one = evaluate_gate(challenger, champion, GateConfig(resamples=1500, seed=11)).to_dict()
    two = evaluate_gate(challenger, champion, GateConfig(resamples=1500, seed=11)).to_dict()
    other = evaluate_gate(challenger, champion, GateConfig(resamples=1500, seed=12)).to_dict()
    assert one == two
    assert one["scopes"][-1]["d_recall"] != other["scopes"][-1]["d_recall"]


def test_resampling_is_by_inspection_not_image() -> None:
    """Many images of one inspection move together: the interval matches one unit per inspection."""
    rng = np.random.default_rng(5)
    missed, fa = _rng_subset(rng, 0, 200, 20), _rng_subset(rng, 200, 400, 20)
    champion = _score_set(missed, fa, modes=("visible",))
    challenger = _score_set(_rng_subset(rng, 0, 200, 14), fa, modes=("visible",))
    cfg = GateConfig(resamples=1000, seed=3)
    one = evaluate_gate(challenger, champion, cfg, fused=False).scopes[0]
    # the same decisions, each inspection imaged five times: counts x5, but the same units are resampled
    five_chal = [p for p in challenger for _ in range(5)]
    five_champ = [p for p in champion for _ in range(5)]
    five = evaluate_gate(five_chal, five_champ, cfg, fused=False).scopes[0]
    assert five.n_inspections == one.n_inspections == N
    assert (five.d_recall.low, five.d_recall.high) == pytest.approx((one.d_recall.low, one.d_recall.high))
    # resampling images instead would have narrowed the interval by about sqrt(5)
    w = bootstrap_weights(N, 1000, 3)
    assert w.shape == (1000, N) and (w.sum(axis=1) == N).all()


def test_fused_decision_uses_each_modes_own_threshold() -> None:
    # visible says 0.4 at threshold 0.3 (crystal), uv says 0.6 at threshold 0.9 (other): max is uv → other
    preds = [
        Prediction("a", "visible", 0.4, 0.3, "crystal"),
        Prediction("a", "uv", 0.6, 0.9, "crystal"),
        Prediction("b", "visible", 0.2, 0.3, "other"),
        Prediction("b", "uv", 0.95, 0.9, "other"),
    ]
    m = inspection_metrics(preds)
    assert (m.confusion.tp, m.confusion.fn, m.confusion.fp, m.confusion.tn) == (0, 1, 1, 0)
    scopes = metrics_by_scope(preds)
    assert scopes["visible"].recall == 1.0 and scopes["uv"].recall == 0.0 and scopes["fused"].n == 2


def test_predictions_round_trip_through_jsonl_with_sub_types() -> None:
    preds = [Prediction("a", "visible", 0.7, 0.5, "crystal", "needles", "s3://x/a.png")]
    text = to_jsonl(preds, model="new") + to_jsonl(preds, model="champion")
    assert from_jsonl(text, model="new") == preds
    assert metrics_by_scope(preds)["fused"].per_subtype_recall == {"needles": 1.0}


def test_bad_gate_settings_are_rejected_with_a_reason() -> None:
    with pytest.raises(ValueError, match="at least 1000"):
        GateConfig(resamples=100)
    with pytest.raises(ValueError, match="share no test inspection"):
        compare_scope("visible", {"a": [(True, True)]}, {"b": [(True, True)]}, GateConfig())
