"""Audit helpers: rollbacks are told apart, one key per alias change, the history reads as a timeline."""

from __future__ import annotations

from datetime import UTC, datetime

from axis_cli.audit import format_history
from axis_cli.promotion_log import LatestPromotion, change_key, kind_of


def test_going_back_to_a_lower_version_is_a_rollback() -> None:
    assert kind_of("1", "2") == "rollback"
    assert kind_of("3", "2") == "promotion"
    assert kind_of("1", None) == "promotion"


def test_the_same_change_seen_twice_has_one_key_and_a_later_repeat_another() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    row = LatestPromotion(7, "1", "cli", at)
    assert change_key("m", "1", "2", row) == change_key("m", "1", "2", row)
    # v1 -> v2, back to v1, then v2 again: the second v1 -> v2 follows another audit row
    assert change_key("m", "1", "2", row) != change_key("m", "1", "2", LatestPromotion(9, "1", "mlflow", at))


def test_history_lists_via_kind_and_gate_verdict() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "promoted_at": at,
            "previous_version": None,
            "version": "1",
            "kind": "promotion",
            "via": "cli",
            "promoted_by": "ana",
            "gate": {"verdict": "accept"},
            "forced": False,
            "reason": "first",
        },
        {
            "promoted_at": at,
            "previous_version": "1",
            "version": "2",
            "kind": "promotion",
            "via": "mlflow",
            "promoted_by": "mlflow",
            "gate": {"verdict": "refuse"},
            "forced": True,
            "reason": "moved",
        },
        {
            "promoted_at": at,
            "previous_version": "2",
            "version": "1",
            "kind": "rollback",
            "via": "mlflow",
            "promoted_by": "mlflow",
            "gate": None,
            "forced": False,
            "reason": "back",
        },
    ]
    text = format_history("axis-visible", rows)
    assert "v- -> v1  promotion via cli  by ana  gate accept" in text
    assert "v1 -> v2  promotion via mlflow  by mlflow  gate refuse, forced" in text
    assert "v2 -> v1  rollback via mlflow" in text
    assert format_history("x", []) == "no champion changes recorded for x"
