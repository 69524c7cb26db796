"""``python -m axis_discrepancy``: run the discrepancy service against the configured broker and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging

from axis_adapters.settings import load_settings

from axis_discrepancy.app import create_app
from axis_discrepancy.settings import DiscrepancySettings


def main() -> None:
    """Entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(DiscrepancySettings)
    asyncio.run(create_app(settings).run())


if __name__ == "__main__":
    main()
