"""The services set OpenMP's passive wait policy before torch loads (axis_core.omp), and keep an operator's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit
PROBE = "import os, axis_inference, torch; print(os.environ.get('OMP_WAIT_POLICY'))"


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_the_wait_policy_is_set_before_torch_unless_the_operator_set_one(given: str | None, expected: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given is not None:
        env["OMP_WAIT_POLICY"] = given
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


def test_nothing_is_set_once_torch_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch  # noqa: F401
    from axis_core.omp import prefer_passive_omp_wait

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert prefer_passive_omp_wait() is False and "OMP_WAIT_POLICY" not in os.environ
