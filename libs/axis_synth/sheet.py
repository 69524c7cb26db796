"""Contact sheet of every outcome sub-type x mode x domain: ``python -m axis_synth.sheet --out sheet.png``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageDraw

from axis_synth.domain import DOMAIN_A, DOMAIN_B, Domain
from axis_synth.render import render
from axis_synth.spec import SUBTYPES, DropSpec, Mode

_LABEL_W = 150
_HEADER_H = 18


def contact_sheet(
    domains: Sequence[Domain] = (DOMAIN_A, DOMAIN_B),
    tile: int = 224,
    seed: int = 0,
    growth: float = 1.0,
) -> Image.Image:
    """One row per outcome sub-type, one column per domain and mode (visible, then UV)."""
    columns: list[tuple[Domain, Mode]] = []
    for d in domains:
        columns.append((d, "visible"))
        if d.has_uv:
            columns.append((d, "uv"))
    rows = [(outcome, sub) for outcome, subs in SUBTYPES.items() for sub in subs]
    sheet = Image.new("RGB", (_LABEL_W + tile * len(columns), _HEADER_H + tile * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for j, (d, mode) in enumerate(columns):
        draw.text((_LABEL_W + j * tile + 4, 3), f"domain {d.name} / {mode}", fill="black")
    for i, (outcome, sub) in enumerate(rows):
        top = _HEADER_H + i * tile
        draw.text((4, top + tile // 2 - 6), f"{outcome}\n{sub}", fill="black")
        spec = DropSpec(outcome=outcome, subtype=sub, growth=growth, drop_seed=seed * 1000 + i)  # type: ignore[arg-type]
        for j, (d, mode) in enumerate(columns):
            img = render(spec, d, mode, seed=seed * 1000 + i, size=(tile, tile))
            sheet.paste(img, (_LABEL_W + j * tile, top))
    return sheet


def growth_strip(domain: Domain = DOMAIN_A, tile: int = 224, seed: int = 0, steps: int = 5) -> Image.Image:
    """One crystalline drop per row at growth 0 … 1 (visible), showing crystals appear and grow."""
    outcomes = ["single_crystals", "needles", "microcrystals"]
    sheet = Image.new("RGB", (tile * steps, tile * len(outcomes)), "white")
    for i, outcome in enumerate(outcomes):
        for k in range(steps):
            g = k / (steps - 1)
            spec = DropSpec(outcome=outcome, growth=g, drop_seed=seed + i)  # type: ignore[arg-type]
            sheet.paste(
                render(spec, domain, "visible", seed=seed + 100 * k + i, size=(tile, tile)), (k * tile, i * tile)
            )
    return sheet


def main(argv: Sequence[str] | None = None) -> None:
    """Write the contact sheet (and optionally a growth strip) as PNG."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", type=Path, default=Path("sheet.png"))
    p.add_argument("--tile", type=int, default=224)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--growth", type=float, default=1.0)
    p.add_argument("--growth-strip", type=Path, default=None, help="also write a growth strip PNG here")
    a = p.parse_args(argv)
    contact_sheet(tile=a.tile, seed=a.seed, growth=a.growth).save(a.out)
    print(f"wrote {a.out}")
    if a.growth_strip is not None:
        growth_strip(tile=a.tile, seed=a.seed).save(a.growth_strip)
        print(f"wrote {a.growth_strip}")


if __name__ == "__main__":
    main()
