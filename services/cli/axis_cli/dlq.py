"""``python -m axis_cli dlq``: dead-letter tools (placeholder: listing and replay are not written yet)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from axis_contracts import topics


def main(argv: Sequence[str] | None = None) -> int:
    """Explain where dead letters are until listing/replay exist."""
    print(
        f"dlq: not implemented yet. Dead letters are on the topic {topics.DEAD_LETTER!r} "
        "(axis_contracts.DeadLetter: source topic, offset, raw message, error).",
        file=sys.stderr,
    )
    return 2
