"""The demo's final line and figure come from measured metrics."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from axis_cli.demo_eval import VersionEval
from axis_cli.demo_report import _entry, loop_line
from axis_cli.plots import loop_figure
from axis_core.fused_eval import Prediction, inspection_metrics
from axis_core.metrics import binary_metrics
from PIL import Image

pytestmark = pytest.mark.unit

LINE = re.compile(
    r"^loop: balanced accuracy \d+\.\d% -> \d+\.\d% \([+-]\d+\.\d points\), recall \d+\.\d% -> \d+\.\d%, "
    r"precision \d+\.\d% -> \d+\.\d% on \d+ facility-B test images"
    r"(; fused per inspection: balanced accuracy \d+\.\d% -> \d+\.\d% \([+-]\d+\.\d points\), "
    r"recall \d+\.\d% -> \d+\.\d% on \d+ inspections)?$"
)


def _eval(name: str, pred: list[int]) -> VersionEval:
    labels = np.array(["crystal"] * 4 + ["other"] * 6)
    return VersionEval(name=name, versions={"visible": "1"}, metrics=binary_metrics(labels, np.array(pred, float), 0.5))


def test_last_line_reports_the_measured_change(tmp_path: Path) -> None:
    before = _eval("foundation", [0, 0, 0, 1, 0, 0, 0, 0, 0, 1])  # recall 25%, 1 false positive
    after = _eval("after", [1, 1, 1, 0, 0, 0, 0, 0, 0, 1])  # recall 75%
    line = loop_line(before, after)
    assert LINE.match(line), line
    assert "recall 25.0% -> 75.0%" in line
    assert "balanced accuracy 54.2% -> 79.2% (+25.0 points)" in line  # specificity 5/6 both times
    assert line.endswith("on 10 facility-B test images")

    out = loop_figure([_entry(before), _entry(after)], tmp_path / "loop.png")
    with Image.open(out) as img:
        assert img.format == "PNG" and img.width > img.height > 100


def _fused_eval(name: str, visible: list[float], uv: list[float]) -> VersionEval:
    """4 crystal + 6 other inspections, one visible and one UV image each (visible threshold 0.5, UV 0.8)."""
    labels = ["crystal"] * 4 + ["other"] * 6
    preds = [
        Prediction(f"i{i}", "visible", p, 0.5, lab) for i, (p, lab) in enumerate(zip(visible, labels, strict=True))
    ]
    preds += [Prediction(f"i{i}", "uv", p, 0.8, lab) for i, (p, lab) in enumerate(zip(uv, labels, strict=True))]
    per_image = binary_metrics(
        np.array([p.label for p in preds]), np.array([float(p.predicted_crystal) for p in preds]), 0.5
    )
    return VersionEval(name, {"visible": "1", "uv": "1"}, per_image, fused=inspection_metrics(preds))


def test_last_line_appends_fused_per_inspection_figures() -> None:
    zero = [0.1] * 10
    before = _fused_eval("foundation", [0.9, 0.1, 0.1, 0.1] + [0.1] * 6, zero)  # fused recall 1/4
    # after: visible finds 2, UV finds 2 more at its own threshold (0.85 >= 0.8); UV 0.7 on an other stays other
    after = _fused_eval("after", [0.9, 0.9, 0.1, 0.1] + [0.1] * 6, [0.1, 0.1, 0.85, 0.85, 0.7] + [0.1] * 5)
    line = loop_line(before, after)
    assert LINE.match(line), line
    assert line.startswith("loop: balanced accuracy ")
    assert "on 20 facility-B test images; fused per inspection: " in line
    assert "recall 25.0% -> 100.0% on 10 inspections" in line
    assert "balanced accuracy 62.5% -> 100.0% (+37.5 points)" in line
