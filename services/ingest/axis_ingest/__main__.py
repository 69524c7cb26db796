"""``python -m axis_ingest``: watch the configured folder and publish an ImageCaptured per new image file.

``python -m axis_ingest check PATH...`` shows what the configured pattern makes of some paths (relative to the
watched folder, or absolute inside it) without touching anything; ``python -m axis_ingest presets`` lists the
shipped layouts. Exit status of the service: 0 after SIGTERM/SIGINT, 1 when it cannot start.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from axis_adapters.settings import load_settings

from axis_ingest.pattern import PathMapper, Unmappable
from axis_ingest.presets import PRESETS
from axis_ingest.settings import IngestSettings


def check(settings: IngestSettings, paths: list[str]) -> int:
    """Print the fields (or the reason) for each path; exit status 1 when any is unmappable."""
    mapper = PathMapper(settings.ingest.mapping())
    root = settings.ingest.watch_dir.absolute()
    print(f"pattern {mapper.config.pattern!r}, inspection id {mapper.template!r}, watched folder {root}")
    bad = 0
    for raw in paths:
        p = Path(raw)
        if p.is_absolute() and not p.is_relative_to(root):
            bad += 1
            print(f"UNMAPPABLE {raw}: not inside the watched folder {root}")
            continue
        rel = p.relative_to(root).as_posix() if p.is_absolute() else p.as_posix()
        p = root / rel
        mtime = datetime.fromtimestamp(p.stat().st_mtime, UTC) if p.exists() else datetime.now(UTC)
        try:
            m = mapper.map(rel, mtime=mtime)
        except Unmappable as exc:
            bad += 1
            print(f"UNMAPPABLE {rel}: {exc.reason}")
            continue
        print(
            f"ok {rel}: plate {m.plate_barcode} ({m.plate_type.value}-well), well {m.well}, drop {m.drop}, "
            f"{m.imaging_mode.value}, inspection {m.inspection_id}, imaged at {m.imaged_at.isoformat()}"
        )
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m axis_ingest", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd")
    sub.add_parser("serve", help="watch the folder and publish (the default)")
    chk = sub.add_parser("check", help="show what the configured pattern makes of some paths")
    chk.add_argument("paths", nargs="+")
    sub.add_parser("presets", help="list the shipped folder layouts")
    args = parser.parse_args(argv)
    if args.cmd == "presets":
        for p in PRESETS.values():
            print(f"{p.name:12} {p.pattern}\n{'':12} {p.description} (plates: {p.default_plate_type.value}-well)")
            print(f"{'':12} e.g. {p.example}")
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = load_settings(IngestSettings)
    if args.cmd == "check":
        return check(settings, args.paths)
    from axis_ingest.app import serve

    return asyncio.run(serve(settings))


if __name__ == "__main__":
    sys.exit(main())
