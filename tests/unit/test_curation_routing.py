"""Which agreements reach the curators, in which order, within which budget (axis_core.routing), and stats."""

from __future__ import annotations

import math

import pytest
from axis_core.routing import (
    BetaPrior,
    BudgetState,
    ModeProbability,
    Reliability,
    RoutingPolicy,
    assess,
    choose,
    model_error,
    room,
)
from axis_core.stats import GroupCounts, reliability_rows, summarise

POLICY = RoutingPolicy(agreements_per_day=3, max_queue_share=0.5, min_value=0.05)
NEW_USER = Reliability("new")


def visible(p: float, t: float = 0.5) -> tuple[ModeProbability, ...]:
    return (ModeProbability("visible", p, t),)


def test_model_error_is_a_half_on_the_threshold_and_falls_with_log_odds_distance() -> None:
    assert model_error(0.5, 0.5, visible(0.5), POLICY) == pytest.approx(0.5)
    assert model_error(0.3, 0.3, visible(0.3, 0.3), POLICY) == pytest.approx(0.5)
    near, far = model_error(0.55, 0.5, (), POLICY), model_error(0.95, 0.5, (), POLICY)
    assert far < near < 0.5
    assert far == pytest.approx(0.05, abs=1e-6)  # sigmoid(-logit(0.95)) = 0.05


def test_modes_that_disagree_make_a_confident_fused_score_uncertain() -> None:
    modes = (ModeProbability("visible", 0.95, 0.5), ModeProbability("uv", 0.1, 0.5))
    assert model_error(0.95, 0.5, modes, POLICY) == pytest.approx(POLICY.mode_conflict_error)
    a = assess(probability=0.95, threshold=0.5, modes=modes, agrees=True, user=NEW_USER, policy=POLICY)
    assert a.reason == "modes_disagree" and a.value >= POLICY.min_value


def test_an_agreement_is_wrong_only_if_model_and_user_both_are() -> None:
    a = assess(probability=0.5, threshold=0.5, modes=(), agrees=True, user=NEW_USER, policy=POLICY)
    # model 0.5 wrong, user 0.1 (Beta(1, 9) prior): 0.05 / (0.05 + 0.45)
    assert a.value == pytest.approx(0.1)
    assert a.reason == "near_threshold"
    sure = assess(probability=0.99, threshold=0.5, modes=visible(0.99), agrees=True, user=NEW_USER, policy=POLICY)
    assert sure.value < 0.01


def test_a_user_often_overturned_makes_their_agreements_worth_checking() -> None:
    bad = Reliability("bad", curated=10, overturned=8)
    good = Reliability("good", curated=10, overturned=0)
    assert bad.error_rate(POLICY.prior) == pytest.approx(9 / 20)
    kw = {"probability": 0.8, "threshold": 0.5, "modes": visible(0.8), "agrees": True, "policy": POLICY}
    a_bad, a_good = assess(user=bad, **kw), assess(user=good, **kw)  # type: ignore[arg-type]
    assert a_bad.reason == "unreliable_user" and a_bad.value > POLICY.min_value > a_good.value


def test_a_disagreement_is_worth_more_when_the_user_is_reliable_and_the_model_unsure() -> None:
    good = Reliability("good", curated=50, overturned=0)
    bad = Reliability("bad", curated=50, overturned=25)
    kw = {"probability": 0.6, "threshold": 0.5, "modes": visible(0.6), "agrees": False, "policy": POLICY}
    assert assess(user=good, **kw).value > assess(user=bad, **kw).value  # type: ignore[arg-type]
    assert assess(user=good, **kw).reason == "disagreement"  # type: ignore[arg-type]


def test_the_budget_caps_agreements_per_day_and_as_a_share_of_the_intake() -> None:
    assert room(POLICY, BudgetState(routed_today=0, disagreements_today=100)) == 3
    assert room(POLICY, BudgetState(routed_today=2, disagreements_today=100)) == 1
    assert room(POLICY, BudgetState(routed_today=3, disagreements_today=100)) == 0
    # share 0.5: agreements may be at most as many as disagreements
    assert room(POLICY, BudgetState(routed_today=0, disagreements_today=1)) == 1
    assert room(POLICY, BudgetState(), new_disagreements=2) == 2
    assert room(RoutingPolicy(agreements_per_day=0), BudgetState(disagreements_today=100)) == 0


def test_choose_routes_the_most_valuable_agreements_within_the_budget() -> None:
    def agree(p: float) -> object:
        return assess(probability=p, threshold=0.5, modes=visible(p), agrees=True, user=NEW_USER, policy=POLICY)

    candidates = {
        "near": agree(0.52),
        "nearer": agree(0.5),
        "mid": agree(0.6),
        "far": agree(0.99),
        "d1": assess(probability=0.9, threshold=0.5, modes=(), agrees=False, user=NEW_USER, policy=POLICY),
        "d2": assess(probability=0.1, threshold=0.5, modes=(), agrees=False, user=NEW_USER, policy=POLICY),
        "d3": assess(probability=0.2, threshold=0.5, modes=(), agrees=False, user=NEW_USER, policy=POLICY),
    }
    chosen = choose(candidates, policy=POLICY, spent=BudgetState())  # type: ignore[arg-type]
    assert chosen == ["nearer", "near", "mid"]  # 3 per day; far is below min_value; disagreements are not chosen
    assert choose(candidates, policy=POLICY, spent=BudgetState(routed_today=2)) == ["nearer"]  # type: ignore[arg-type]


def test_policy_refuses_nonsense_with_a_message() -> None:
    with pytest.raises(ValueError, match="max_queue_share"):
        RoutingPolicy(max_queue_share=1.0)
    with pytest.raises(ValueError, match="Beta prior"):
        BetaPrior(a=0.0)


def test_stats_report_lists_each_users_reliability_least_reliable_first() -> None:
    rows = reliability_rows([Reliability("ann", 10, 0), Reliability("bob", 10, 8), Reliability("cy")])
    assert [r.user_id for r in rows] == ["bob", "cy", "ann"]
    assert rows[0].overturn_rate == pytest.approx(9 / 20) and rows[0].reliability == pytest.approx(11 / 20)
    assert rows[1].curated == 0 and rows[1].overturn_rate == pytest.approx(0.1)
    report = summarise("user", [GroupCounts("ann", 4, 3, 1, 0)], rows).as_dict()
    assert [r["user_id"] for r in report["reliability"]] == ["bob", "cy", "ann"]
    assert "reliability" not in summarise("plate", [GroupCounts("P1", 4, 3, 1, 0)]).as_dict()
    assert math.isclose(report["rows"][0]["agreement_rate"], 0.75)
