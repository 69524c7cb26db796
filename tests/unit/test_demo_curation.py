"""The curation experiment's own logic: LIMS errors that do not depend on the barcodes, the budget, the last line."""

from __future__ import annotations

import re

import pytest
from axis_cli.demo_curation import ExperimentOptions, erred_truth, neutral_key, result_line, routing_allowance

pytestmark = pytest.mark.unit


def _truth(prefix: str, n: int = 400) -> dict[str, str]:
    classes = ("microcrystals", "precipitate", "clear", "single_crystals")
    return {f"{prefix}-0-001-A{i:02d}-d1-i{k}": classes[i % 4] for i in range(n // 2) for k in (1, 2)}


def test_the_same_drop_gets_the_same_user_error_under_other_barcodes() -> None:
    a = erred_truth(_truth("FACB-Lxd"), "FACB-Lxd", error_rate=0.3, seed=4)
    b = erred_truth(_truth("FACB-Lxr"), "FACB-Lxr", error_rate=0.3, seed=4)
    assert {neutral_key(k, "FACB-Lxd"): v for k, v in a.items()} == {
        neutral_key(k, "FACB-Lxr"): v for k, v in b.items()
    }
    changed = [k for k, v in a.items() if v != _truth("FACB-Lxd")[k]]
    assert 0 < len(changed) < len(a) // 2  # errors on the error model's classes only, at about the rate
    other_seed = erred_truth(_truth("FACB-Lxd"), "FACB-Lxd", error_rate=0.3, seed=5)
    assert other_seed != a


def test_no_error_rate_keeps_the_truth() -> None:
    truth = _truth("P")
    assert erred_truth(truth, "P", error_rate=0.0, seed=1) == truth


def test_only_the_error_models_classes_are_changed() -> None:
    truth = _truth("P")
    erred = erred_truth(truth, "P", error_rate=1.0, seed=0)
    for k, cls in truth.items():
        if cls == "microcrystals":
            assert erred[k] in ("clear", "precipitate")
        elif cls == "precipitate":
            assert erred[k] == "microcrystals"
        else:
            assert erred[k] == cls


def test_neutral_key_drops_only_the_prefix() -> None:
    assert neutral_key("FACB-L1r-0-002-B03-d1-i2", "FACB-L1r") == "0-002-B03-d1-i2"
    assert neutral_key("OTHER-0-002", "FACB-L1r") == "OTHER-0-002"


def test_the_routing_allowance_counts_what_earlier_arms_routed_today() -> None:
    assert routing_allowance(0, 20) == 20
    assert routing_allowance(17, 20) == 37
    assert ExperimentOptions(budget=40).agreements_per_arm == 20
    assert ExperimentOptions(budget=40, agreements=7).agreements_per_arm == 7


def test_the_last_line_has_the_issues_form() -> None:
    line = result_line(40, (0, 1), 0.7234, 0.8012, 0.7891)
    pattern = (
        r"curation budget 40: balanced accuracy \(fused\) 72\.3% -> 80\.1% \(disagreements only\) "
        r"vs 72\.3% -> 78\.9% \(with uncertain agreements\), seeds 0 1"
    )
    assert re.fullmatch(pattern, line)
