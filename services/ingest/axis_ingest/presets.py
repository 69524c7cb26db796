"""Shipped folder layouts (patterns this project defined after common imager layouts — not vendor specifications)."""

from __future__ import annotations

from dataclasses import dataclass

from axis_contracts import PlateType


@dataclass(frozen=True)
class Preset:
    """A named pattern with the defaults that go with it."""

    name: str
    pattern: str
    description: str
    default_plate_type: PlateType = PlateType.WELLS_96
    example: str = ""


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset(
            "rock-imager",
            "{plate_barcode}/{inspection_id}/{well}_{drop}_{mode}.{ext}",
            "a folder per plate, a folder per inspection, one file per drop and mode",
            example="XT0042/1187/B7_1_vis.jpg",
        ),
        Preset(
            "minstrel",
            "{plate_barcode}_{well}_{drop}_{imaged_at:%Y%m%d-%H%M%S}_{mode}.{ext}",
            "every file in one folder, the imaging time in the name",
            example="XT0042_B7_1_20260314-101500_uv.png",
        ),
        Preset(
            "plate-384",
            "{plate_barcode}/{imaged_at:%Y%m%d-%H%M}/{well}_{drop}_{mode}.{ext}",
            "384-well plates: a folder per plate, a folder per imaging run named by its start time",
            default_plate_type=PlateType.WELLS_384,
            example="LX0007/20260314-1015/P24_2_vis.tif",
        ),
    )
}
