"""``python -m axis_cli.promote_watch``: promotions made in MLflow (UI or API) count like ``axis promote``.

Polls the ``champion`` alias of the configured models (AXIS_MLFLOW__VISIBLE_MODEL / UV_MODEL) every
``AXIS_PROMOTE_WATCH__POLL_S`` seconds. An alias that points to a version other than the newest
``model_promotions`` row of that model, for at least ``SETTLE_S`` seconds (so that ``axis promote``,
which moves the alias and then writes its row, is never mistaken for an MLflow move), is recorded with
``via=mlflow`` (``kind=rollback`` when it went back to a lower version), the gate's verdict at that
moment (the new version against the one it replaced, on the stored test-set predictions) and one
ModelPromoted. Exactly once across restarts: the row's ``change_key`` is unique per alias change, and
its event is resent with the same ``event_id`` until ``published_at`` is set.

``/health`` and ``/metrics`` on ``AXIS_PROMOTE_WATCH__HTTP_HOST:HTTP_PORT`` (default 127.0.0.1:8087): ``ok``,
``retrying`` while MLflow, PostgreSQL or the broker fails (a restart would not cure that), ``stalled`` when no
poll has finished for ``STALL_AFTER_S`` (a hung call: the supervisor restarts the process).

MLflow 3.17 has registry webhooks (``model_version_alias.created``), but a webhook delivered while this
process is down is lost; a poll compares states and so catches up after any outage.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from uuid import UUID, uuid4

from axis_adapters.registry import CHAMPION, RegisteredVersion, RegistryError
from axis_adapters.settings import ServiceSettings
from axis_contracts import ModelPromoted
from axis_core.gate import GateConfig
from pydantic import BaseModel, Field, SecretStr

from axis_cli import promotion_log
from axis_cli.gate_report import ArtifactRegistry, gate_for, log_gate, scalar_summary

log = logging.getLogger("axis_cli.promote_watch")
PRODUCER = "axis-promote-watch"
MLFLOW_USER = "mlflow"  # MLflow does not record who moved an alias


class WatchOptions(BaseModel):
    """How often to look and how long a change must stand before it is recorded."""

    poll_s: float = Field(default=3.0, gt=0.0)
    settle_s: float = Field(default=5.0, ge=0.0)
    margin: float = Field(default=0.02, ge=0.0, lt=1.0)
    resamples: int = Field(default=2000, ge=1000)
    seed: int = 0
    http_host: str = "127.0.0.1"
    http_port: int = Field(default=8087, ge=0, le=65535, description="/health and /metrics (0: a free port)")
    metrics_token: SecretStr | None = Field(default=None, description="bearer token for /metrics (open without)")
    stall_after_s: float = Field(default=300.0, gt=0.0, description="no poll finished this long: /health stalled")


class PromoteWatchSettings(ServiceSettings):
    """``AXIS_PROMOTE_WATCH__*`` plus the shared postgres / kafka / mlflow groups."""

    service_schema: ClassVar[str | None] = "promote"
    promote_watch: WatchOptions = Field(default_factory=WatchOptions)


class WatchRegistry(ArtifactRegistry, Protocol):
    """The registry calls the watcher makes."""

    def version(self, model_name: str, version: str) -> RegisteredVersion: ...


class PromotionStore(Protocol):
    """The audit table as the watcher uses it (promotion_log.PgPromotionStore, or the in-memory fake)."""

    def latest(self, model: str) -> promotion_log.LatestPromotion | None: ...
    def insert(self, **row: Any) -> int | None: ...
    def unpublished(self) -> list[promotion_log.Pending]: ...
    def mark_published(self, row_id: int) -> None: ...


@dataclass
class PollHealth:
    """What /health and /metrics say of the poll loop."""

    stall_after_s: float = 300.0
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=0.0)
    last_finished: float | None = None
    failing_since: float | None = None
    last_error: str | None = None
    polls: int = 0
    failures: int = 0
    recorded: int = 0

    def __post_init__(self) -> None:
        self.started = self.clock()

    def finished(self, error: str | None, recorded: int = 0) -> None:
        """A poll ended (``error``: why it failed, None when every call succeeded)."""
        now = self.clock()
        self.polls += 1
        self.recorded += recorded
        self.last_finished = now
        if error is None:
            self.failing_since, self.last_error = None, None
        else:
            self.failures += 1
            self.last_error = error[:500]
            self.failing_since = self.failing_since or now

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(ok, body) of /health."""
        now = self.clock()
        idle = now - (self.last_finished if self.last_finished is not None else self.started)
        status = "stalled" if idle > self.stall_after_s else "retrying" if self.failing_since is not None else "ok"
        return status == "ok", {
            "status": status,
            "problem": self.last_error
            if status == "retrying"
            else f"no poll finished for {idle:.0f}s"
            if status == "stalled"
            else None,
            "seconds_since_poll": round(idle, 1),
            "failing_for_s": None if self.failing_since is None else round(now - self.failing_since, 1),
            "polls": self.polls,
            "failed_polls": self.failures,
            "changes_recorded": self.recorded,
        }

    def prometheus(self) -> str:
        """/metrics: polls, failed polls, changes recorded, seconds since the last poll."""
        ok, body = self.health()
        return (
            "# TYPE axis_promote_watch_polls_total counter\n"
            f"axis_promote_watch_polls_total {self.polls}\n"
            "# TYPE axis_promote_watch_failed_polls_total counter\n"
            f"axis_promote_watch_failed_polls_total {self.failures}\n"
            "# TYPE axis_promote_watch_changes_recorded_total counter\n"
            f"axis_promote_watch_changes_recorded_total {self.recorded}\n"
            "# TYPE axis_promote_watch_seconds_since_poll gauge\n"
            f"axis_promote_watch_seconds_since_poll {body['seconds_since_poll']}\n"
            "# TYPE axis_promote_watch_healthy gauge\n"
            f"axis_promote_watch_healthy {1 if ok else 0}\n"
        )


@dataclass
class Watcher:
    """One poll = compare each model's alias with its audit trail; record and announce what MLflow changed."""

    registry: WatchRegistry
    store: PromotionStore
    publish: Callable[[ModelPromoted], Awaitable[None]]
    models: Sequence[str]
    gate_config: GateConfig = field(default_factory=GateConfig)
    settle_s: float = 5.0
    clock: Callable[[], float] = time.monotonic
    say: Callable[[str], None] = print
    _first_seen: dict[str, tuple[str, float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)  # the registry errors of the poll in progress

    async def poll_once(self) -> list[str]:
        """Record and announce every settled alias change; returns one line per change recorded."""
        done: list[str] = []
        self.errors = []
        for name in self.models:
            line = await asyncio.to_thread(self._check, name)
            if line:
                done.append(line)
        await self._publish_pending()
        return done

    def _check(self, name: str) -> str | None:
        try:
            current = self.registry.champion(name)
        except Exception as exc:  # MLflow down or restarting: try again next poll
            log.warning("cannot read the %s alias of %s: %s", CHAMPION, name, exc)
            self.errors.append(f"MLflow: cannot read the {CHAMPION} alias of {name}: {exc}")
            return None
        if current is None:
            self._first_seen.pop(name, None)
            return None
        last = self.store.latest(name)
        if last is not None and last.version == current.version:
            self._first_seen.pop(name, None)
            return None
        seen = self._first_seen.get(name)
        now = self.clock()
        if seen is None or seen[0] != current.version:
            self._first_seen[name] = (current.version, now)
            if self.settle_s > 0:
                return None
            seen = self._first_seen[name]
        if now - seen[1] < self.settle_s:
            return None
        return self._record(name, current, last)

    def _record(self, name: str, current: RegisteredVersion, last: promotion_log.LatestPromotion | None) -> str | None:
        previous = last.version if last else None
        prev_version: RegisteredVersion | None = None
        if previous is not None:
            try:
                prev_version = self.registry.version(name, previous)
            except RegistryError:
                prev_version = None
        gate: dict[str, Any]
        metrics: dict[str, float] = dict(current.metrics)
        try:
            outcome = gate_for(self.registry, current, prev_version, self.gate_config, other_models=self.models)
            gate = outcome.to_dict()
            if outcome.report is not None and prev_version is not None:
                metrics.update(scalar_summary(outcome.report))
                log_gate(self.registry, current, prev_version, outcome.report)
        except Exception as exc:  # the move happened whatever the gate says: record it with the reason
            gate = {"verdict": "unavailable", "notes": [f"gate failed: {type(exc).__name__}: {exc}"]}
        kind = promotion_log.kind_of(current.version, previous)
        reason = f"champion alias moved in MLflow: v{previous or '-'} -> v{current.version}"
        reason += " (rollback)" if kind == "rollback" else ""
        row_id = self.store.insert(
            model=name,
            version=current.version,
            previous=previous,
            by=MLFLOW_USER,
            reason=reason,
            forced=gate.get("verdict") == "refuse",
            metrics={k: float(v) for k, v in metrics.items()},
            via="mlflow",
            gate=gate,
            key=promotion_log.change_key(name, previous, current.version, last),
            event_id=uuid4(),
            published=False,
        )
        self._first_seen.pop(name, None)
        if row_id is None:
            return None  # another watcher instance recorded it
        line = f"{name}: {kind} v{previous or '-'} -> v{current.version} via mlflow, gate {gate.get('verdict')}"
        self.say(line)
        return line

    async def _publish_pending(self) -> None:
        for p in await asyncio.to_thread(self.store.unpublished):
            await self.publish(_event(p))
            await asyncio.to_thread(self.store.mark_published, p.id)


def _event(p: promotion_log.Pending) -> ModelPromoted:
    return ModelPromoted(
        event_id=p.event_id if isinstance(p.event_id, UUID) else UUID(str(p.event_id)),
        producer=PRODUCER,
        model_name=p.model_name,
        version=p.version,
        previous_version=p.previous_version,
        promoted_by=p.promoted_by,
        reason=p.reason,
        metrics=p.metrics,
    )


async def run(settings: PromoteWatchSettings, *, stop: asyncio.Event | None = None) -> None:
    """Poll until ``stop`` is set (SIGTERM / SIGINT in :func:`main`)."""
    from axis_adapters.db import connect
    from axis_adapters.kafka import make_broker, publish_event
    from axis_adapters.lifecycle import start_health_server
    from axis_adapters.registry import ModelRegistry

    opts = settings.promote_watch
    stop = stop or asyncio.Event()
    from axis_cli.promote import publish_to

    broker = make_broker(settings.kafka)
    publisher = publish_to(broker)
    models = [settings.mlflow.visible_model, settings.mlflow.uv_model]
    async with broker:
        await broker.start()

        async def publish(event: ModelPromoted) -> None:
            await publish_event(publisher, event)

        watcher = Watcher(
            registry=ModelRegistry(settings.mlflow.tracking_uri),
            store=promotion_log.PgPromotionStore(lambda: connect(settings.postgres)),
            publish=publish,
            models=models,
            gate_config=GateConfig(margin=opts.margin, resamples=opts.resamples, seed=opts.seed),
            settle_s=opts.settle_s,
            say=lambda line: log.info("%s", line),
        )
        polls = PollHealth(stall_after_s=opts.stall_after_s)

        async def health() -> tuple[bool, dict[str, Any]]:
            return polls.health()

        async def metrics() -> str:
            return polls.prometheus()

        http = await start_health_server(opts, health=health, metrics=metrics)
        if http is None:
            raise SystemExit(1)
        log.info("watching the %s alias of %s every %.1f s; health on http://%s:%s/health",
                 CHAMPION, ", ".join(models), opts.poll_s, opts.http_host, http.port)  # fmt: skip
        try:
            while not stop.is_set():
                try:
                    lines = await watcher.poll_once()
                    polls.finished("; ".join(watcher.errors) or None, len(lines))
                except Exception as exc:  # PostgreSQL / broker restarting: log and poll again
                    log.exception("poll failed; retrying")
                    polls.finished(f"{type(exc).__name__}: {exc}")
                try:
                    await asyncio.wait_for(stop.wait(), timeout=opts.poll_s)
                except TimeoutError:
                    pass
        finally:
            await http.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the promote-watch service."""
    from axis_adapters.settings import load_settings

    if argv:
        print("usage: python -m axis_cli.promote_watch  (settings: AXIS_PROMOTE_WATCH__*)", file=sys.stderr)
        return 0 if argv[0] in ("-h", "--help") else 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(PromoteWatchSettings)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(settings, stop=stop)

    asyncio.run(_main())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
