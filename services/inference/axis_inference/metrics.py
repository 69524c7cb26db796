"""In-process counters of the inference service, rendered as JSON or Prometheus text."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

BATCH_BUCKETS: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256)
LATENCY_BUCKETS: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# where a batch's wall time goes: decoding and the processed check, fetching and preparing the images, the
# model, the transaction with its publishes, the dead letters
STAGES: tuple[str, ...] = ("check", "fetch", "model", "commit", "dead_letters")


@dataclass
class Metrics:
    """What the service did since it started."""

    images_scored: int = 0
    duplicates_skipped: int = 0
    batches: int = 0
    batch_images_sum: int = 0
    batch_size_counts: Counter[int] = field(default_factory=Counter)
    batch_seconds_sum: float = 0.0
    batch_seconds_max: float = 0.0
    latency_counts: Counter[float] = field(default_factory=Counter)
    scored_events_published: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    batch_failures: int = 0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def observe_stage(self, stage: str, seconds: float) -> None:
        """Add one batch's wall time in ``stage`` (one of STAGES)."""
        self.stage_seconds[stage] = self.stage_seconds.get(stage, 0.0) + seconds

    def observe_batch(self, size: int, scored: int, seconds: float) -> None:
        """Record one finished batch: records received, images newly scored, wall time."""
        self.batches += 1
        self.batch_images_sum += size
        self.batch_size_counts[next((b for b in BATCH_BUCKETS if size <= b), BATCH_BUCKETS[-1] * 2)] += 1
        self.images_scored += scored
        self.batch_seconds_sum += seconds
        self.batch_seconds_max = max(self.batch_seconds_max, seconds)
        self.latency_counts[next((b for b in LATENCY_BUCKETS if seconds <= b), float("inf"))] += 1

    def as_dict(self, versions: dict[str, str]) -> dict[str, Any]:
        """JSON view of the metrics and the model versions in use."""
        return {
            "images_scored": self.images_scored,
            "duplicates_skipped": self.duplicates_skipped,
            "batches": self.batches,
            "batch_size_avg": round(self.batch_images_sum / self.batches, 3) if self.batches else 0.0,
            "batch_size_histogram": {str(k): v for k, v in sorted(self.batch_size_counts.items())},
            "batch_seconds_avg": round(self.batch_seconds_sum / self.batches, 4) if self.batches else 0.0,
            "batch_seconds_max": round(self.batch_seconds_max, 4),
            "crystal_scored_published": self.scored_events_published,
            "dead_lettered": sum(self.dead_lettered.values()),
            "dead_lettered_by_reason": dict(self.dead_lettered),
            "batch_failures": self.batch_failures,
            "stage_seconds": {k: round(self.stage_seconds.get(k, 0.0), 4) for k in STAGES},
            "model_versions": versions,
        }

    def prometheus(self, versions: dict[str, str]) -> str:
        """Prometheus text exposition (version 0.0.4)."""
        lines = [
            "# TYPE axis_inference_images_scored_total counter",
            f"axis_inference_images_scored_total {self.images_scored}",
            "# TYPE axis_inference_duplicates_skipped_total counter",
            f"axis_inference_duplicates_skipped_total {self.duplicates_skipped}",
            "# TYPE axis_inference_crystal_scored_published_total counter",
            f"axis_inference_crystal_scored_published_total {self.scored_events_published}",
            "# TYPE axis_inference_batch_failures_total counter",
            f"axis_inference_batch_failures_total {self.batch_failures}",
            "# TYPE axis_inference_dead_lettered_total counter",
        ]
        lines += [f'axis_inference_dead_lettered_total{{reason="{r}"}} {n}' for r, n in self.dead_lettered.items()]
        if not self.dead_lettered:
            lines.append('axis_inference_dead_lettered_total{reason="none"} 0')
        lines.append("# TYPE axis_inference_batch_size histogram")
        cum = 0
        for b in BATCH_BUCKETS:
            cum += self.batch_size_counts.get(b, 0)
            lines.append(f'axis_inference_batch_size_bucket{{le="{b}"}} {cum}')
        lines += [
            f'axis_inference_batch_size_bucket{{le="+Inf"}} {self.batches}',
            f"axis_inference_batch_size_sum {self.batch_images_sum}",
            f"axis_inference_batch_size_count {self.batches}",
            "# TYPE axis_inference_batch_seconds histogram",
        ]
        cum = 0
        for lb in LATENCY_BUCKETS:
            cum += self.latency_counts.get(lb, 0)
            lines.append(f'axis_inference_batch_seconds_bucket{{le="{lb}"}} {cum}')
        lines += [
            f'axis_inference_batch_seconds_bucket{{le="+Inf"}} {self.batches}',
            f"axis_inference_batch_seconds_sum {self.batch_seconds_sum:.6f}",
            f"axis_inference_batch_seconds_count {self.batches}",
            "# TYPE axis_inference_stage_seconds_total counter",
        ]
        spent = {k: self.stage_seconds.get(k, 0.0) for k in STAGES}
        lines += [f'axis_inference_stage_seconds_total{{stage="{k}"}} {v:.6f}' for k, v in spent.items()]
        lines.append("# TYPE axis_inference_model_info gauge")
        for mode, version in sorted(versions.items()):
            name, _, ver = version.partition(":")
            lines.append(f'axis_inference_model_info{{mode="{mode}",model="{name}",version="{ver}"}} 1')
        return "\n".join(lines) + "\n"
