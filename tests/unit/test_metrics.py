"""Crystal-detection metrics and the validation threshold rule, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
from axis_core.metrics import binary_metrics, pr_curve
from axis_core.thresholds import choose_threshold
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.unit

# 4 crystals, 6 others; at 0.5: TP 0.9 0.8 | FN 0.4 0.2 | FP 0.7 0.6 | TN 0.3 0.1 0.05 0.35
Y = ["crystal", "crystal", "crystal", "crystal", "other", "other", "other", "other", "other", "other"]
P = [0.9, 0.8, 0.4, 0.2, 0.7, 0.3, 0.1, 0.05, 0.6, 0.35]
SUB = ["single", "single", "micro", "micro", "clear", "clear", "clear", "clear", "clear", None]


def test_metrics_at_a_threshold_match_hand_computation() -> None:
    m = binary_metrics(Y, P, 0.5, sub_types=SUB)
    assert (m.confusion.tp, m.confusion.fn, m.confusion.fp, m.confusion.tn) == (2, 2, 2, 4)
    assert m.confusion.to_dict() == {"crystal": {"crystal": 2, "other": 2}, "other": {"crystal": 2, "other": 4}}
    assert m.confusion.matrix.tolist() == [[2, 2], [2, 4]]
    assert m.recall == 0.5 and m.precision == 0.5 and m.f1 == 0.5
    assert m.specificity == pytest.approx(4 / 6)
    assert m.balanced_accuracy == pytest.approx((0.5 + 4 / 6) / 2)
    assert m.accuracy == pytest.approx(0.6)
    # crystal sub-types: recall; other sub-types: share predicted other; None is left out
    assert m.per_subtype_recall == {"clear": pytest.approx(3 / 5), "micro": 0.0, "single": 1.0}
    assert m.per_subtype_count == {"clear": 5, "micro": 2, "single": 2}
    assert m.scalars()["recall_single"] == 1.0


def test_threshold_is_inclusive_and_labels_may_be_ids_or_bools() -> None:
    ids = [1 if y == "crystal" else 0 for y in Y]
    at_04 = binary_metrics(ids, P, 0.4)
    assert at_04.recall == 0.75  # p == threshold counts as crystal
    assert binary_metrics(np.array(ids, dtype=bool), P, 0.4) == at_04
    assert binary_metrics(ids, P, 0.4, positive_id=0).n_crystal == 6


def test_empty_denominators_give_zero_and_bad_inputs_are_refused() -> None:
    m = binary_metrics(["other", "other"], [0.1, 0.2], 0.5)
    assert (m.recall, m.precision, m.f1, m.specificity) == (0.0, 0.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="'crystal' or 'other'"):
        binary_metrics(["crystal", "maybe"], [0.1, 0.2])
    with pytest.raises(ValueError, match="2 labels but 3 probabilities"):
        binary_metrics(["crystal", "other"], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="finite"):
        binary_metrics(["crystal"], [float("nan")])


def test_pr_curve_points_and_average_precision() -> None:
    curve = pr_curve(Y, P)
    assert curve.thresholds.tolist() == sorted(P, reverse=True)
    assert curve.recall.tolist() == [0.25, 0.5, 0.5, 0.5, 0.75, 0.75, 0.75, 1.0, 1.0, 1.0]
    expected_precision = [1, 1, 2 / 3, 1 / 2, 3 / 5, 1 / 2, 3 / 7, 1 / 2, 4 / 9, 4 / 10]
    assert curve.precision.tolist() == pytest.approx(expected_precision)
    assert curve.average_precision() == pytest.approx(0.25 + 0.25 + 0.25 * 0.6 + 0.25 * 0.5)


def test_pr_curve_ties_share_one_point() -> None:
    curve = pr_curve(["crystal", "other", "crystal"], [0.5, 0.5, 0.2])
    assert curve.thresholds.tolist() == [0.5, 0.2]
    assert curve.precision.tolist() == [0.5, pytest.approx(2 / 3)]
    assert curve.recall.tolist() == [0.5, 1.0]


def test_average_precision_agrees_with_scikit_learn() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.random(300) < 0.3
    p = np.clip(y * 0.3 + rng.random(300) * 0.7, 0, 1).round(2)  # rounded: many ties
    assert pr_curve(y, p).average_precision() == pytest.approx(sklearn_metrics.average_precision_score(y, p))


@pytest.mark.parametrize(("target", "threshold", "recall"), [(0.95, 0.2, 1.0), (0.75, 0.4, 0.75), (0.5, 0.8, 0.5)])
def test_threshold_is_the_highest_that_keeps_the_target_recall(target: float, threshold: float, recall: float) -> None:
    choice = choose_threshold(Y, P, target_recall=target)
    assert choice.threshold == threshold and choice.metrics.recall == recall
    assert choice.achieved and choice.fallback is None


def test_threshold_falls_back_without_crystals() -> None:
    choice = choose_threshold(["other"] * 3, [0.2, 0.6, 0.9], fallback_threshold=0.4)
    assert choice.threshold == 0.4 and choice.fallback is not None and "no crystal" in choice.fallback
    with pytest.raises(ValueError, match="target_recall"):
        choose_threshold(Y, P, target_recall=0.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.booleans(), st.integers(0, 20).map(lambda i: i / 20)), min_size=1, max_size=60),
    st.floats(0.05, 1.0),
)
def test_threshold_rule_holds_for_any_scores(data: list[tuple[bool, float]], target: float) -> None:
    y = [t for t, _ in data]
    p = [s for _, s in data]
    choice = choose_threshold(y, p, target_recall=target)
    if not any(y):
        assert choice.fallback is not None
        return
    assert choice.metrics.recall >= target
    higher = math.nextafter(choice.threshold, math.inf)
    assert binary_metrics(y, p, higher).recall < target  # any higher threshold misses the target
