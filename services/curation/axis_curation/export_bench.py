"""Benchmark of the export pipeline alone: read, measure, build and write N candidates, peak memory per stage.

``python -m axis_curation.export_bench [--candidates 200000] [--workers 2]``. The candidate rows are generated
as the repository streams them and the images (64 px PNGs, each different) come from an in-process store, so the
figures are those of the exporter (no PostgreSQL, no S3 server); ``make bench-scale`` measures the whole export.
"""

from __future__ import annotations

import argparse
import io
import resource
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from PIL import Image

from axis_curation.export import DatasetExporter, ExportRequest

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Images:
    """An object store that makes each image on read (a different 64 px PNG per URI) and counts what is written."""

    def __init__(self) -> None:
        self.base = np.random.default_rng(1).integers(30, 225, (64, 64), dtype=np.uint8)
        self.written: dict[str, int] = {}

    def get_bytes(self, uri: str, max_bytes: int | None = None) -> bytes:
        i = int(uri.rsplit("/", 1)[1].split(".")[0])
        arr = self.base.copy()
        arr.flat[i % 4096] ^= 0x55
        arr.flat[(i // 4096) % 4096] ^= 0x2A
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
        return buf.getvalue()

    def put_bytes(self, uri: str, data: bytes, content_type: str = "") -> None:
        self.written[uri] = len(data)

    def ensure_bucket(self, bucket: str) -> None:
        return None


class _NoTestPlates:
    def test_plates(self) -> list[str]:
        return []


class _Printer:
    def __init__(self) -> None:
        self.name, self.started = "", time.monotonic()

    def stage(self, name: str, total: int) -> None:
        if self.name:
            print(
                f"  {self.name:<10} {time.monotonic() - self.started:7.1f} s   peak RSS {_peak_mb():6.0f} MB",
                flush=True,
            )
        self.name, self.started = name, time.monotonic()

    def advance(self, n: int = 1) -> None:
        return None


def _rows(n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        crystal = i % 3 == 0
        yield {
            "source": "agreement",
            "inspection_id": f"insp-{i:07d}",
            "plate_barcode": f"PL{i // 1536:05d}",
            "well": f"W{(i // 4) % 384}",
            "drop_no": 1 + i % 4,
            "imaged_at": T0 + timedelta(minutes=i),
            "ml_probability": 0.9 if crystal else 0.1,
            "ml_label": "crystal" if crystal else "other",
            "model_version": "1",
            "human_label": "crystal" if crystal else "other",
            "human_class": "single_crystals" if crystal else "clear",
            "image_uri": f"s3://axis-images/bench/{i}.png",
            "imaging_mode": "visible" if i % 2 else "uv",
        }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print one line per stage and a summary line."""
    p = argparse.ArgumentParser(prog="python -m axis_curation.export_bench", description=__doc__)
    p.add_argument("--candidates", type=int, default=200_000)
    p.add_argument("--workers", type=int, default=2, help="image loading threads")
    args = p.parse_args(argv)
    store = _Images()
    exporter = DatasetExporter(
        repo=_NoTestPlates(),  # type: ignore[arg-type]
        store=store,  # type: ignore[arg-type]
        bucket="axis-datasets",
        consensus_min=2,
        load_workers=args.workers,
    )
    request = ExportRequest(name="bench", config={"similarity": {"enabled": False}})
    progress = _Printer()
    start = time.monotonic()
    candidates = exporter.read(args.candidates, _rows(args.candidates), progress)
    result = exporter.build(request, candidates, progress)
    del candidates
    record, _ = exporter.write(request, "1", result, created_by="bench", progress=progress)
    progress.stage("", 0)
    manifest_mb = store.written[record.manifest_uri] / 1e6
    print(
        f"export-bench: {args.candidates:,} candidates -> {record.counts['all']['images']:,} rows in "
        f"{time.monotonic() - start:.0f} s, peak RSS {_peak_mb():.0f} MB, manifest {manifest_mb:.1f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
