"""LIMS simulator: reads CrystalScored, answers with the UserScored a fallible scientist would enter.

The "scientist" knows the true class of every inspection (a mapping or callable passed in, or a JSON object in S3)
and errs at configurable rates: small crystals missed (microcrystals → clear / precipitate) and precipitate called
microcrystals. Decisions are seeded per inspection, so the same inspection always gets the same score, and the
UserScored event id is derived from the inspection: a re-sent score is a no-op downstream.

Run: ``python -m axis_simulators.lims`` (``AXIS_LIMS_SIM__TRUTH_URI=s3://bucket/truth.json`` and friends).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from axis_adapters.kafka import Publisher, consumer_options, make_broker, publish_event
from axis_adapters.objectstore import ObjectStore
from axis_adapters.settings import ServiceSettings
from axis_contracts import (
    DEFAULT_SCHEME,
    CrystalScored,
    ImagingMode,
    InvalidEvent,
    ScoreScheme,
    UserScored,
    parse_event,
)
from axis_contracts import topics as topic_names
from pydantic import BaseModel, Field

log = logging.getLogger(__name__)

PRODUCER = "axis-lims-simulator"
_NAMESPACE = uuid.UUID("6f1c7d52-3a0e-4c59-9d7e-2b8f0a4e1c11")

Truth = Mapping[str, str] | Callable[[str], str | None]
ScoreAfter = Literal["first", "all_modes"]


class LimsSimulator:
    """Turns CrystalScored into UserScored from a ground truth, with seeded human errors; scores once per inspection."""

    def __init__(
        self,
        *,
        truth: Truth,
        publisher: Publisher,
        scheme: ScoreScheme = DEFAULT_SCHEME,
        error_rate: float = 0.1,
        miss_rate: float | None = None,
        false_call_rate: float | None = None,
        small_crystal_classes: Sequence[str] = ("microcrystals",),
        missed_as: Sequence[str] = ("clear", "precipitate"),
        false_call_from: Sequence[str] = ("precipitate",),
        false_call_as: str = "microcrystals",
        seed: int = 0,
        score_after: ScoreAfter = "first",
        modes: Sequence[ImagingMode] = (ImagingMode.VISIBLE, ImagingMode.UV),
        users: Sequence[str] = ("sim-scientist-1", "sim-scientist-2", "sim-scientist-3"),
        delay: timedelta = timedelta(hours=2),
        topic: str | None = None,
    ) -> None:
        for name in (*small_crystal_classes, *missed_as, *false_call_from, false_call_as):
            scheme.normalise(name)  # every class the error model uses must exist in the scheme
        self._truth = truth
        self._publisher = publisher
        self._scheme = scheme
        self.miss_rate = error_rate if miss_rate is None else miss_rate
        self.false_call_rate = error_rate if false_call_rate is None else false_call_rate
        for rate in (self.miss_rate, self.false_call_rate):
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"error rates must lie in [0, 1], got {rate}")
        self._small = {scheme.normalise(c) for c in small_crystal_classes}
        self._missed_as = [scheme.normalise(c) for c in missed_as]
        self._false_from = {scheme.normalise(c) for c in false_call_from}
        self._false_as = scheme.normalise(false_call_as)
        self._seed = seed
        self._score_after = score_after
        self._modes = set(modes)
        self._users = list(users)
        self._delay = delay
        self._topic = topic
        self.scored: dict[str, UserScored] = {}

    def true_class(self, inspection_id: str) -> str | None:
        """The ground-truth class of an inspection (None when the truth does not know it)."""
        raw = self._truth(inspection_id) if callable(self._truth) else self._truth.get(inspection_id)
        return None if raw is None else self._scheme.normalise(raw)

    def decide(self, inspection_id: str) -> str | None:
        """The class the simulated scientist reports: the truth, or a seeded miss / false call."""
        truth = self.true_class(inspection_id)
        if truth is None:
            return None
        rng = random.Random(f"{self._seed}:{inspection_id}")
        roll = rng.random()
        if truth in self._small and roll < self.miss_rate:
            return rng.choice(self._missed_as)
        if truth in self._false_from and roll < self.false_call_rate:
            return self._false_as
        return truth

    def user_score_for(self, ev: CrystalScored) -> UserScored | None:
        """The UserScored to send for this CrystalScored, or None (already scored, waiting for modes, no truth)."""
        if ev.inspection_id in self.scored:
            return None
        if self._score_after == "all_modes" and not self._modes <= set(ev.scores):
            return None
        score = self.decide(ev.inspection_id)
        if score is None:
            log.warning("no ground truth for inspection %s: not scoring it", ev.inspection_id)
            return None
        rng = random.Random(f"{self._seed}:{ev.inspection_id}:user")
        user = UserScored(
            event_id=uuid.uuid5(_NAMESPACE, f"{self._seed}:{ev.inspection_id}"),
            producer=PRODUCER,
            inspection_id=ev.inspection_id,
            plate_barcode=ev.plate_barcode,
            well=ev.well,
            drop=ev.drop,
            user_id=rng.choice(self._users),
            score=score,
            scored_at=min(ev.imaged_at + self._delay, max(ev.imaged_at, datetime.now(UTC))),  # never ahead of now
        )
        return user

    async def on_crystal_scored(self, ev: CrystalScored) -> UserScored | None:
        """Handle one CrystalScored: publish the user score when one is due; return it."""
        user = self.user_score_for(ev)
        if user is None:
            return None
        if self._topic:
            await publish_event(self._publisher, user, topic=self._topic)
        else:
            await publish_event(self._publisher, user)
        self.scored[ev.inspection_id] = user
        return user


def truth_from_object(store: ObjectStore, uri: str) -> dict[str, str]:
    """Read a ground truth stored as a JSON object ``{inspection_id: class}`` in the object store."""
    data = json.loads(store.get_bytes(uri, max_bytes=256 * 1024 * 1024))
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise ValueError(f"{uri} must hold a JSON object mapping inspection ids to score classes")
    return data


class LimsSimOptions(BaseModel):
    """``AXIS_LIMS_SIM__*``: where the truth is, how often the scientist errs, when they score."""

    truth_uri: str = "s3://axis-datasets/simulator/truth.json"
    error_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    miss_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    false_call_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    seed: int = 0
    score_after: ScoreAfter = "first"
    group_id: str = "axis-lims-simulator"
    crystal_scored_topic: str = topic_names.CRYSTAL_SCORED
    user_scored_topic: str = topic_names.USER_SCORED


class LimsSimSettings(ServiceSettings):
    """Settings of ``python -m axis_simulators.lims``."""

    lims_sim: LimsSimOptions = Field(default_factory=LimsSimOptions)


def register(broker: Any, sim: LimsSimulator, settings: LimsSimSettings) -> None:
    """Subscribe the simulator to CrystalScored in its own consumer group."""
    from faststream import AckPolicy, Context
    from faststream.kafka.message import KafkaMessage

    @broker.subscriber(
        settings.lims_sim.crystal_scored_topic,
        group_id=settings.lims_sim.group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        **consumer_options(settings.kafka),
    )
    async def on_score(message: KafkaMessage = Context("message")) -> None:
        try:
            ev = parse_event(message.body, CrystalScored)
        except InvalidEvent as exc:
            log.warning("ignoring an invalid CrystalScored: %s", exc.reason)
            return
        await sim.on_crystal_scored(ev)


def main() -> None:
    """Entry point: truth from S3, consume CrystalScored, publish UserScored until stopped."""
    from axis_adapters.objectstore import MinioObjectStore
    from axis_adapters.settings import load_settings
    from faststream import FastStream

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(LimsSimSettings)
    opts = settings.lims_sim
    truth = truth_from_object(MinioObjectStore(settings.s3), opts.truth_uri)
    broker = make_broker(settings.kafka)
    sim = LimsSimulator(
        truth=truth,
        publisher=broker,
        error_rate=opts.error_rate,
        miss_rate=opts.miss_rate,
        false_call_rate=opts.false_call_rate,
        seed=opts.seed,
        score_after=opts.score_after,
        topic=opts.user_scored_topic,
    )
    register(broker, sim, settings)
    asyncio.run(FastStream(broker).run())


if __name__ == "__main__":
    main()
