"""``python -m axis_inference``: run the inference service until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

from axis_adapters.settings import load_settings

from axis_inference.service import InferenceService
from axis_inference.settings import InferenceSettings


async def serve(settings: InferenceSettings) -> None:
    """Run the service; the first SIGTERM/SIGINT starts a graceful stop bounded by the shutdown timeout."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await InferenceService(settings).run(stop)


def main() -> None:
    """Entry point: settings from the environment (and the stack env file), then serve."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    settings = load_settings(InferenceSettings)
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()
