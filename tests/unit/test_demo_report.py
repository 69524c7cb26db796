"""The demo's final line and figure come from measured metrics."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from axis_cli.demo_eval import VersionEval
from axis_cli.demo_report import _entry, loop_line
from axis_cli.plots import loop_figure
from axis_core.metrics import binary_metrics
from PIL import Image

pytestmark = pytest.mark.unit

LINE = re.compile(
    r"^loop: balanced accuracy \d+\.\d% -> \d+\.\d% \([+-]\d+\.\d points\), recall \d+\.\d% -> \d+\.\d%, "
    r"precision \d+\.\d% -> \d+\.\d% on \d+ facility-B test images$"
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
