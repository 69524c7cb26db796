"""Where the real sample images are: ``$AXIS_SAMPLES_DIR``, else ``shared/samples`` beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]


def samples_dir() -> Path:
    """The folder holding axis-sample-visible.jpg / axis-sample-uv.jpg (it may not exist)."""
    env = os.environ.get("AXIS_SAMPLES_DIR")
    candidates = [Path(env)] if env else []
    candidates += [_REPO.parent / "shared" / "samples", Path("/work/shared/samples")]
    for c in candidates:
        if (c / "axis-sample-visible.jpg").exists():
            return c
    return candidates[0]
