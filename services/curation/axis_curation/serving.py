"""``python -m axis_curation serve``: the web app (uvicorn) and the read model's consumer in one process."""

from __future__ import annotations

import asyncio
import logging
from contextlib import suppress

from axis_curation.settings import CurationSettings

log = logging.getLogger(__name__)


def serve(settings: CurationSettings, host: str | None, port: int | None) -> int:
    """Serve until SIGTERM / SIGINT (uvicorn's handlers); the projector stops after the web app."""
    return asyncio.run(_serve(settings, host, port))


async def _serve(settings: CurationSettings, host: str | None, port: int | None) -> int:
    import uvicorn

    from axis_curation.app import create_app
    from axis_curation.context import build_services
    from axis_curation.projector import RunningProjector, run_with_retries

    services = build_services(settings)
    app = create_app(services)
    stop = asyncio.Event()
    running: list[RunningProjector] = []

    async def project() -> None:
        started = await run_with_retries(settings, stop)
        if started is not None:
            running.append(started)
            app.state.read_model = started  # /health reports it
            await started.publish_labels(stop)
            await started.stop()

    projector = asyncio.ensure_future(project()) if settings.curation.consume_events else None
    config = uvicorn.Config(
        app, host=host or settings.curation.host, port=port or settings.curation.port, log_level="info"
    )
    try:
        await uvicorn.Server(config).serve()
    finally:
        stop.set()
        if projector is not None:
            with suppress(Exception):
                await asyncio.wait_for(projector, timeout=30)
    return 0
