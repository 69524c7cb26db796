"""Fusion of per-mode crystal probabilities into one score per inspection."""

from __future__ import annotations

import math

import pytest
from axis_core.fusion import ModeProbability, fuse, fuse_update
from hypothesis import given
from hypothesis import strategies as st

pytestmark = pytest.mark.unit


def test_fused_probability_is_the_max_over_modes() -> None:
    fused = fuse({"visible": ModeProbability(0.2, 0.5), "uv": ModeProbability(0.7, 0.5)})
    assert fused.probability == 0.7
    assert fused.mode == "uv"
    assert fused.label == "crystal"


def test_zero_is_a_score_not_missing() -> None:
    fused = fuse({"visible": ModeProbability(0.0, 0.5)})
    assert fused.probability == 0.0
    assert fused.mode == "visible"
    assert fused.label == "other"
    both = fuse({"visible": ModeProbability(0.0, 0.5), "uv": ModeProbability(0.0, 0.3)})
    assert both.probability == 0.0
    assert both.label == "other"


def test_zero_threshold_is_honoured() -> None:
    assert fuse({"uv": ModeProbability(0.0, 0.0)}).label == "crystal"


def test_label_uses_threshold_of_the_mode_giving_the_max() -> None:
    # visible gives the max (0.45) and its threshold is 0.4 -> crystal, although uv's threshold is 0.6.
    fused = fuse({"visible": ModeProbability(0.45, 0.4), "uv": ModeProbability(0.3, 0.6)})
    assert (fused.probability, fused.threshold, fused.label) == (0.45, 0.4, "crystal")
    fused = fuse({"visible": ModeProbability(0.45, 0.5), "uv": ModeProbability(0.3, 0.2)})
    assert (fused.threshold, fused.label) == (0.5, "other")


def test_tie_prefers_the_mode_that_calls_crystal() -> None:
    fused = fuse({"visible": ModeProbability(0.5, 0.6), "uv": ModeProbability(0.5, 0.4)})
    assert (fused.mode, fused.label) == ("uv", "crystal")


def test_update_adds_a_mode_and_refuses_nothing_scored() -> None:
    scores, fused = fuse_update({}, "visible", ModeProbability(0.1, 0.5))
    assert fused.probability == 0.1
    scores, fused = fuse_update(scores, "uv", ModeProbability(0.9, 0.5))
    assert set(scores) == {"visible", "uv"}
    assert fused.probability == 0.9
    with pytest.raises(ValueError, match="no mode"):
        fuse({})


@pytest.mark.parametrize("bad", [math.nan, -0.1, 1.5, True])
def test_invalid_probabilities_are_rejected(bad: float) -> None:
    with pytest.raises(ValueError):
        ModeProbability(bad, 0.5)


@given(
    st.dictionaries(
        st.sampled_from(["visible", "uv", "ir"]),
        st.tuples(st.floats(0, 1), st.floats(0, 1)),
        min_size=1,
    )
)
def test_fusion_is_max_and_order_independent(raw: dict[str, tuple[float, float]]) -> None:
    scores = {m: ModeProbability(p, t) for m, (p, t) in raw.items()}
    fused = fuse(scores)
    assert fused.probability == max(p for p, _ in raw.values())
    assert fused.label == ("crystal" if fused.probability >= fused.threshold else "other")
    assert fuse(dict(reversed(list(scores.items())))) == fused
