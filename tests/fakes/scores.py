"""In-memory scores repository for unit tests (same keys and all-or-nothing transactions as PgScoresRepo)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from axis_contracts import CrystalScored, ImageCaptured
from axis_inference.scores_repo import ImageScore, _mode_scores_json


@dataclass
class InMemoryScoresRepo:
    """Fake for unit tests, with the same keys and all-or-nothing transactions."""

    images: dict[UUID, ImageCaptured] = field(default_factory=dict)
    image_scores: dict[tuple[UUID, str, str], ImageScore] = field(default_factory=dict)
    inspections: dict[str, CrystalScored] = field(default_factory=dict)
    processed_ids: set[tuple[str, UUID]] = field(default_factory=set)
    fail_next_commit: Exception | None = None

    async def processed(self, consumer: str, event_ids: Sequence[UUID]) -> set[UUID]:
        return {e for e in event_ids if (consumer, e) in self.processed_ids}

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_MemTx]:
        saved = copy.copy((self.images, self.image_scores, self.inspections, self.processed_ids))
        self.images, self.image_scores = dict(self.images), dict(self.image_scores)
        self.inspections, self.processed_ids = dict(self.inspections), set(self.processed_ids)
        try:
            yield _MemTx(self)
            if self.fail_next_commit is not None:
                exc, self.fail_next_commit = self.fail_next_commit, None
                raise exc
        except BaseException:
            self.images, self.image_scores, self.inspections, self.processed_ids = saved
            raise


class _MemTx:
    def __init__(self, repo: InMemoryScoresRepo) -> None:
        self._r = repo

    async def add_scores(self, scores: Sequence[ImageScore]) -> set[UUID]:
        new: set[UUID] = set()
        for s in scores:
            self._r.images.setdefault(s.event.event_id, s.event)
            key = (s.event.event_id, s.model_name, s.model_version)
            if key not in self._r.image_scores:
                self._r.image_scores[key] = s
                new.add(s.event.event_id)
        return new

    async def lock_inspections(self, inspection_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for iid in inspection_ids:
            if iid in self._r.inspections:
                out[iid] = json.loads(_mode_scores_json(self._r.inspections[iid]))
        return out

    async def put_inspection(self, scored: CrystalScored) -> None:
        self._r.inspections[scored.inspection_id] = scored

    async def mark_processed(self, consumer: str, event_ids: Sequence[UUID]) -> None:
        self._r.processed_ids.update((consumer, e) for e in event_ids)
