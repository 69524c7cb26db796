"""Ingest: file paths -> ImageCaptured fields by pattern; every kind of bad name gets a reason a person can act on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from axis_contracts import ImagingMode, PlateType
from axis_ingest.pattern import MappingConfig, PathMapper, Unmappable
from axis_ingest.presets import PRESETS
from axis_ingest.settings import IngestOptions, IngestSettings

pytestmark = pytest.mark.unit

MTIME = datetime(2026, 3, 14, 9, 0, 0, tzinfo=UTC)


def mapper(preset: str = "rock-imager", **opts: object) -> PathMapper:
    return PathMapper(IngestOptions(preset=preset, **opts).mapping())  # type: ignore[arg-type]


def reason(m: PathMapper, path: str) -> str:
    with pytest.raises(Unmappable) as exc:
        m.map(path, mtime=MTIME)
    return exc.value.reason


def test_rock_imager_layout_gives_every_field_and_a_per_drop_inspection_id() -> None:
    got = mapper().map("XT0042/1187/B07_2_vis.jpg", mtime=MTIME)
    assert (got.plate_barcode, got.well, got.drop, got.imaging_mode) == ("XT0042", "B7", 2, ImagingMode.VISIBLE)
    assert got.plate_type == PlateType.WELLS_96
    assert got.inspection_id == "XT0042-B7-d2-1187"  # visible and UV of one drop share it; other drops do not
    assert got.imaged_at == MTIME  # no time in the name: the file's mtime
    uv = mapper().map("XT0042/1187/b07_2_UV.JPG", mtime=MTIME)
    assert uv.imaging_mode == ImagingMode.UV and uv.inspection_id == got.inspection_id and uv.ext == "jpg"


def test_minstrel_layout_takes_the_time_from_the_name_in_the_configured_zone() -> None:
    m = mapper("minstrel", timezone="Europe/Berlin")
    got = m.map("XT_001_H12_1_20260314-101500_uv.png", mtime=MTIME)
    assert got.plate_barcode == "XT_001"  # an underscore in the barcode still maps
    assert (got.well, got.drop, got.imaging_mode) == ("H12", 1, ImagingMode.UV)
    assert got.imaged_at == datetime(2026, 3, 14, 9, 15, 0, tzinfo=UTC)  # 10:15 CET
    assert got.inspection_id == "XT_001-H12-d1-20260314"


def test_384_well_preset_accepts_the_whole_plate_and_refuses_wells_off_it() -> None:
    m = mapper("plate-384")
    got = m.map("LX0007/20260314-1015/P24_2_vis.tif", mtime=MTIME)
    assert got.plate_type == PlateType.WELLS_384 and got.well == "P24"
    assert got.imaged_at == datetime(2026, 3, 14, 10, 15, tzinfo=UTC)
    assert "not a well of a 384-well plate" in reason(m, "LX0007/20260314-1015/Q1_1_vis.tif")


def test_plate_type_comes_from_the_longest_matching_barcode_prefix() -> None:
    m = mapper(plate_types={"LX": "384", "LXH": "1536"})
    assert m.map("LX01/1/P24_1_vis.jpg", mtime=MTIME).plate_type == PlateType.WELLS_384
    assert m.map("LXH9/1/AF48_1_vis.jpg", mtime=MTIME).plate_type == PlateType.WELLS_1536
    assert m.map("XT01/1/H12_1_vis.jpg", mtime=MTIME).plate_type == PlateType.WELLS_96
    assert "not a well of a 96-well plate" in reason(m, "XT01/1/P24_1_vis.jpg")


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("XT1/1/A1_1_vis.gif", "extension .gif is not an image type"),
        ("XT1/1/README", "has no extension"),
        ("XT1/A1_1_vis.jpg", "1 folder level(s) below the watched folder, the pattern"),
        ("a/XT1/1/A1_1_vis.jpg", "3 folder level(s)"),
        ("XT1/1/A1-1-vis.jpg", "the file name 'A1-1-vis.jpg' does not match '{well}_{drop}_{mode}.{ext}'"),
        ("XT 1/1/A1_1_vis.jpg", "folder 1 'XT 1' does not match '{plate_barcode}'"),
        ("XT1/1/Z9_1_vis.jpg", "well: 'Z9' is not a well of a 96-well plate (rows A-H, columns 1-12)"),
        ("XT1/1/A13_1_vis.jpg", "'A13' is not a well of a 96-well plate"),
        ("XT1/1/A1_0_vis.jpg", "drop '0' is out of range (1-16)"),
        ("XT1/1/A1_17_vis.jpg", "drop '17' is out of range (1-16)"),
        ("XT1/1/A1_1_infrared.jpg", "imaging mode 'infrared' is not a known mode token"),
    ],
)
def test_every_kind_of_bad_name_gets_its_reason(path: str, expected: str) -> None:
    assert expected in reason(mapper(), path)


def test_bad_times_in_names_are_reported() -> None:
    m = mapper("minstrel")
    assert "is not a time in the format '%Y%m%d-%H%M%S'" in reason(m, "XT1_A1_1_20261399-101500_vis.jpg")
    assert "does not match" in reason(m, "XT1_A1_1_2026-03-14_vis.jpg")


def test_a_field_used_twice_must_agree() -> None:
    m = mapper(pattern="{plate_barcode}/{plate_barcode}_{well}_{mode}.jpg")
    assert m.map("XT1/XT1_A1_vis.jpg", mtime=MTIME).plate_barcode == "XT1"
    assert "plate_barcode must be the same everywhere" in reason(m, "XT1/XT2_A1_vis.jpg")


def test_wildcards_ignored_fields_default_mode_and_own_tokens() -> None:
    m = mapper(
        pattern="**/{plate_barcode}/{_date}/{well}-{drop}*.{ext}",
        default_mode="uv",
        field_patterns={"plate_barcode": "[A-Z]{2}\\d{4}"},
    )
    got = m.map("site/room2/XT0042/2026-03-14/C3-1_thumb.jpeg", mtime=MTIME)
    assert (got.plate_barcode, got.well, got.drop, got.imaging_mode) == ("XT0042", "C3", 1, ImagingMode.UV)
    assert "does not match" in reason(m, "XT42/2026-03-14/C3-1.jpg")
    m2 = mapper(mode_tokens={"ex280": "uv"})
    assert m2.map("XT1/1/A1_1_ex280.jpg", mtime=MTIME).imaging_mode == ImagingMode.UV
    assert m2.map("XT1/1/A1_1_vis.jpg", mtime=MTIME).imaging_mode == ImagingMode.VISIBLE  # defaults kept


def test_inspection_template_can_use_the_facility_inspection_id_as_is() -> None:
    m = mapper(inspection_template="{inspection_id}")
    assert m.map("XT1/INSP-77-B7/B7_1_vis.jpg", mtime=MTIME).inspection_id == "INSP-77-B7"
    m2 = mapper("minstrel", inspection_template="{plate_barcode}-{well}-{drop}-{imaged_at:%Y%m%d%H}")
    assert m2.map("XT1_B7_1_20260314-101500_vis.jpg", mtime=MTIME).inspection_id == "XT1-B7-1-2026031410"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"pattern": "{plate_barcode}/{wel}_{mode}.jpg"}, "unknown field {wel}"),
        ({"pattern": "{plate_barcode}/{mode}.jpg"}, "has no {well} field"),
        ({"pattern": "{plate_barcode}/{well}.jpg"}, "has no {mode}"),
        ({"pattern": "{plate_barcode}/{well}_{imaged_at}_{mode}.jpg"}, "needs a strftime format"),
        ({"pattern": "{plate_barcode}/{well}_{imaged_at:%Q}_{mode}.jpg"}, "%Q is not supported"),
        ({"pattern": "{plate_barcode}/{well}_{mode.jpg"}, "unbalanced"),
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"inspection_template": "{plate_barcode}-{colour}"}, "inspection template"),
        ({"field_patterns": {"well": "([A-H])(\\d+)"}}, "use (?:...)"),
        ({"preset": "formulatrix-2000"}, "unknown preset"),
    ],
)
def test_configuration_mistakes_are_refused_at_start_with_a_hint(options: dict[str, object], expected: str) -> None:
    with pytest.raises(ValueError) as exc:
        IngestOptions(**options)  # type: ignore[arg-type]
    assert expected in str(exc.value)


def test_every_preset_maps_its_own_example() -> None:
    for preset in PRESETS.values():
        m = PathMapper(MappingConfig(pattern=preset.pattern, default_plate_type=preset.default_plate_type))
        assert m.map(preset.example, mtime=MTIME).plate_barcode, preset.name


def test_settings_read_the_mapping_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXIS_INGEST__WATCH_DIR", "/data/imager")
    monkeypatch.setenv("AXIS_INGEST__PRESET", "minstrel")
    monkeypatch.setenv("AXIS_INGEST__PLATE_TYPES", '{"LX": "384"}')
    monkeypatch.setenv("AXIS_INGEST__MODE_TOKENS", '{"ex280": "uv"}')
    s = IngestSettings(_env_file=None)  # type: ignore[call-arg]
    cfg = s.ingest.mapping()
    assert str(s.ingest.watch_dir) == "/data/imager" and cfg.pattern == PRESETS["minstrel"].pattern
    assert cfg.plate_types == {"LX": PlateType.WELLS_384} and cfg.mode_tokens["ex280"] == ImagingMode.UV
