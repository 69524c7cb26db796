"""Which comparisons are worth a curator's time: the expected value of a label, and the agreement budget.

Pure logic (no database, broker or environment). The discrepancy service scores every comparison when it is
made; disagreements always enter the queue, agreements enter it only when they are likely wrong and the budget
has room. The curation queue is ordered by the same score.

The score is the probability that the curator's label will overturn the model's label, given the model's
probability, the agreement (or not) of the imaging modes, the user's score and that user's record with the
curators. Model and user are treated as two independent noisy annotators of the true label, in the spirit of
CROWDLAB (Goh, Tkachenko & Mueller 2022, "CROWDLAB: supervised learning to infer consensus labels and quality
scores for data with multiple annotators") and ActiveLab (Goh & Mueller 2023), which pick the next example to
(re)label by how likely its current consensus label is wrong:

* ``p_m``, the chance the model's label is wrong, is ``sigmoid(-|logit(p) - logit(t)| / temperature)`` for the
  fused probability ``p`` at threshold ``t`` (0.5 on the threshold, small far from it), raised to at least
  ``mode_conflict_error`` when one mode says crystal and another does not;
* ``p_u``, the chance the user's label is wrong, is the user's curator-overturn rate with a Beta(a, b) prior:
  ``(overturned + a) / (curated + a + b)``;
* after an agreement the model is wrong only if both are: ``p_m p_u / (p_m p_u + (1 - p_m)(1 - p_u))``;
* after a disagreement the model is wrong when the user is right: ``p_m (1 - p_u) / (p_m (1 - p_u) + (1 - p_m) p_u)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

Reason = Literal["disagreement", "near_threshold", "modes_disagree", "unreliable_user"]
REASONS: tuple[Reason, ...] = ("disagreement", "near_threshold", "modes_disagree", "unreliable_user")
_EPS = 1e-6
K = TypeVar("K")


@dataclass(frozen=True)
class ModeProbability:
    """One imaging mode's crystal probability and that model's threshold."""

    mode: str
    probability: float
    threshold: float

    @property
    def crystal(self) -> bool:
        """This mode's label is crystal."""
        return self.probability >= self.threshold


@dataclass(frozen=True)
class Reliability:
    """A LIMS user's record with the curators: items curated and how many of the user's labels were overturned."""

    user_id: str
    curated: int = 0
    overturned: int = 0

    def error_rate(self, prior: BetaPrior) -> float:
        """Posterior mean of the chance that this user's label is wrong."""
        return (self.overturned + prior.a) / (self.curated + prior.a + prior.b)


@dataclass(frozen=True)
class BetaPrior:
    """Beta(a, b) prior on a user's error rate: mean a / (a + b), worth a + b curated items."""

    a: float = 1.0
    b: float = 9.0

    def __post_init__(self) -> None:
        if self.a <= 0 or self.b <= 0:
            raise ValueError("the Beta prior needs a > 0 and b > 0")


@dataclass(frozen=True)
class RoutingPolicy:
    """How agreements are chosen for curators (the budget and the thresholds of each reason)."""

    agreements_per_day: int = 50
    max_queue_share: float = 0.25
    min_value: float = 0.05
    temperature: float = 1.0
    mode_conflict_error: float = 0.35
    near_threshold_logit: float = 0.5
    unreliable_user_error: float = 0.2
    prior: BetaPrior = BetaPrior()

    def __post_init__(self) -> None:
        if self.agreements_per_day < 0:
            raise ValueError("agreements_per_day must be >= 0 (0 routes no agreement)")
        if not 0.0 <= self.max_queue_share < 1.0:
            raise ValueError("max_queue_share must lie in [0, 1): the share of the open queue agreements may take")
        if self.temperature <= 0:
            raise ValueError("temperature must be > 0")


@dataclass(frozen=True)
class Assessment:
    """The score of one comparison: value (chance the curator overturns the model) and why."""

    value: float
    model_error: float
    user_error: float
    reason: Reason
    agrees: bool


def logit(p: float) -> float:
    """log(p / (1 - p)), clipped away from 0 and 1."""
    q = min(max(p, _EPS), 1.0 - _EPS)
    return math.log(q / (1.0 - q))


def modes_disagree(modes: Sequence[ModeProbability]) -> bool:
    """True when at least one mode says crystal and another does not."""
    labels = {m.crystal for m in modes}
    return len(labels) > 1


def model_error(probability: float, threshold: float, modes: Sequence[ModeProbability], policy: RoutingPolicy) -> float:
    """Chance that the model's fused label is wrong, from its log-odds distance to the threshold and the modes."""
    d = abs(logit(probability) - logit(threshold)) / policy.temperature
    p = 1.0 / (1.0 + math.exp(d))
    if modes_disagree(modes):
        p = max(p, policy.mode_conflict_error)
    return p


def assess(
    *,
    probability: float,
    threshold: float,
    modes: Sequence[ModeProbability],
    agrees: bool,
    user: Reliability,
    policy: RoutingPolicy,
) -> Assessment:
    """Score one comparison (see the module docstring for the formula) and name the reason a curator sees."""
    pm = model_error(probability, threshold, modes, policy)
    pu = min(max(user.error_rate(policy.prior), _EPS), 1.0 - _EPS)
    if agrees:
        both, neither = pm * pu, (1.0 - pm) * (1.0 - pu)
        value = both / (both + neither)
    else:
        user_right, model_right = pm * (1.0 - pu), (1.0 - pm) * pu
        value = user_right / (user_right + model_right)
    reason: Reason = "disagreement"
    if agrees:
        if modes_disagree(modes):
            reason = "modes_disagree"
        elif abs(logit(probability) - logit(threshold)) <= policy.near_threshold_logit:
            reason = "near_threshold"
        elif pu >= policy.unreliable_user_error:
            reason = "unreliable_user"
        else:
            reason = "near_threshold"  # the value came from the model's margin
    return Assessment(value=value, model_error=pm, user_error=pu, reason=reason, agrees=agrees)


@dataclass(frozen=True)
class BudgetState:
    """What today's queue intake already holds: agreements routed and disagreements queued (UTC day)."""

    routed_today: int = 0
    disagreements_today: int = 0


def room(policy: RoutingPolicy, spent: BudgetState, *, new_disagreements: int = 0) -> int:
    """How many more agreements may enter the queue today: at most ``agreements_per_day``, and at most
    ``max_queue_share`` of the day's intake (agreements + disagreements, counting this batch's disagreements)."""
    by_day = max(0, policy.agreements_per_day - spent.routed_today)
    if policy.max_queue_share <= 0:
        return 0
    # a / (a + d) <= share  <=>  a <= share / (1 - share) * d
    cap = policy.max_queue_share / (1.0 - policy.max_queue_share) * (spent.disagreements_today + new_disagreements)
    by_share = max(0, math.floor(cap + 1e-9) - spent.routed_today)
    return min(by_day, by_share)


def choose(candidates: Mapping[K, Assessment], *, policy: RoutingPolicy, spent: BudgetState) -> list[K]:
    """Keys of the agreements to route, highest value first, within the budget and above ``min_value``.

    ``candidates`` holds the batch's new comparisons; its disagreements count towards the day's intake.
    """
    new_disagreements = sum(1 for a in candidates.values() if not a.agrees)
    eligible = [(a.value, k) for k, a in candidates.items() if a.agrees and a.value >= policy.min_value]
    eligible.sort(key=lambda vk: (-vk[0], str(vk[1])))
    return [k for _, k in eligible[: room(policy, spent, new_disagreements=new_disagreements)]]
