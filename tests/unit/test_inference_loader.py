"""Two separately registered single-mode bundles load on one base and score like the trained classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from axis_inference.loader import build_service_scorer
from axis_inference.models import ModelRef
from axis_inference.seeding import drop_jpeg, make_classifier, save_mode_bundles
from axis_model.bundle import BaseMismatch
from axis_model.preprocess import ImageRejected, preprocess_bytes
from axis_model.spec import BaseSpec

pytestmark = pytest.mark.unit


def test_service_scorer_matches_the_classifier_and_takes_the_registry_threshold(tmp_path: Path) -> None:
    clf = make_classifier(BaseSpec.tiny(), seed=3)
    bundles = save_mode_bundles(clf, tmp_path)
    wanted = {
        "visible": (ModelRef("axis-visible", "7", 0.3), bundles["visible"]),
        "uv": (ModelRef("axis-uv", "4", None), bundles["uv"]),
    }
    scorer = build_service_scorer(wanted, variant="fp32")
    assert scorer.refs["visible"] == ModelRef("axis-visible", "7", 0.3)
    assert scorer.refs["uv"].threshold == pytest.approx(clf.thresholds["uv"])
    images = [drop_jpeg(60 + 40 * i, seed=i) for i in range(4)]
    items = [(mode, scorer.prepare(mode, data)) for data in images for mode in ("visible", "uv")]
    got = scorer.score(items)
    for (mode, _), p, data in zip(items, got, [d for d in images for _ in range(2)], strict=True):
        want = clf.predict_proba(preprocess_bytes(data, clf.preprocess)[None], mode)[0]
        assert p == pytest.approx(want, abs=1e-4)
    assert not np.allclose(got[0::2], got[1::2])  # each mode really has its own adapter and head
    with pytest.raises(ImageRejected):
        scorer.prepare("visible", b"")


def test_a_bundle_trained_on_another_base_is_refused(tmp_path: Path) -> None:
    mine = save_mode_bundles(make_classifier(BaseSpec.tiny(seed=0)), tmp_path / "a")
    other = save_mode_bundles(make_classifier(BaseSpec.tiny(seed=5)), tmp_path / "b")
    wanted = {
        "visible": (ModelRef("axis-visible", "1"), mine["visible"]),
        "uv": (ModelRef("axis-uv", "1"), other["uv"]),
    }
    with pytest.raises(BaseMismatch, match="AXIS_MODEL__BASE_PATH"):
        build_service_scorer(wanted)
