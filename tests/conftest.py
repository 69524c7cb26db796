"""Shared fixtures: the embedded stack, started lazily (only by tests that ask for it) once per session."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from axis_stack import StackInfo

STACK_DIR_ENV = "AXIS_TEST_STACK_DIR"


@pytest.fixture(scope="session")
def stack() -> Iterator[StackInfo]:
    """The running embedded stack (axis_stack.StackInfo), started by the same code as `make up`, stopped after.

    With AXIS_TEST_STACK_DIR set, the stack already running in that data dir is used and left running.
    """
    from axis_stack import down, stack_info, status, up

    reuse = os.environ.get(STACK_DIR_ENV)
    if reuse:
        bad = {name: s.detail for name, s in status(Path(reuse)).items() if not s.healthy}
        if bad:
            pytest.fail(f"{STACK_DIR_ENV}={reuse}: stack not healthy: {bad}; run `make up` there first")
        yield stack_info(Path(reuse))
        return
    # Short path under /tmp: the PostgreSQL unix socket lives inside it.
    data_dir = Path(tempfile.mkdtemp(prefix="axis-test-", dir="/tmp"))
    try:
        yield up(data_dir, quiet=True)
    finally:
        down(data_dir, quiet=True)
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_env(stack: StackInfo) -> dict[str, str]:
    """The connection settings of the test stack, as written to its stack.env (AXIS_* plus MLflow/AWS)."""
    return dict(stack.env)
