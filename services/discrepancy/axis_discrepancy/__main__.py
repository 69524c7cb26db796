"""``python -m axis_discrepancy``: run the discrepancy service against the configured broker and PostgreSQL.

Exits 0 after SIGTERM/SIGINT, 1 when it cannot start or consuming cannot go on (see ``axis_discrepancy.app``).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from axis_adapters.settings import load_settings

from axis_discrepancy.app import STOP_TIMEOUT_S, serve
from axis_discrepancy.settings import DiscrepancySettings


def main() -> int:
    """Entry point; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(DiscrepancySettings)
    return asyncio.run(serve(settings, hard_exit_s=2 * STOP_TIMEOUT_S))


if __name__ == "__main__":
    sys.exit(main())
