"""Hostile inputs for the fuzz suite: broken JSON, mutated events, bad images, forbidden URIs; a case counter."""

from __future__ import annotations

import io
import json
import struct
import zlib
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image

# cases tried per area; the conftest prints it at the end of the session and writes test-output/fuzz-summary.txt
CASES: Counter[str] = Counter()

# bounded so that the whole suite stays well under a minute on 2 cores; derandomised so CI is reproducible
FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
)
FUZZ_SMALL = settings(FUZZ, max_examples=60)

ALLOWED_BUCKETS = ["axis-images", "axis-datasets"]


def count(area: str) -> None:
    """Record one fuzz case tried in ``area``."""
    CASES[area] += 1


json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
huge_strings = st.integers(min_value=1_000, max_value=200_000).map(lambda n: "x" * n)
odd_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60
) | st.sampled_from(["\u0000", "‮A1", "Ａ１", "🧪💎", "' OR 1=1 --", "<script>alert(1)</script>", "A1\n", " "])
bad_timestamps = (
    st.sampled_from(
        [
            "2026-01-01T00:00:00",  # naive: no time zone
            "2026-13-45T25:61:00Z",
            "yesterday",
            "",
            "9999999999",
            "0000-00-00T00:00:00Z",
            "2026-01-01T00:00:00+25:00",
        ]
    )
    | st.integers()
    | st.floats()
)
forbidden_uris = st.sampled_from(
    [
        "s3://axis-mlflow/artifacts/model.bin",
        "s3://axis-tansu/clusters/topic",
        "s3://other-bucket/image.jpg",
        "s3://axis-images/../axis-mlflow/secret",
        "http://example.org/image.jpg",
        "file:///etc/passwd",
        "/etc/passwd",
        "s3://AXIS-IMAGES/upper.jpg",
        "s3://axis-images/",
        "s3://x/y",
    ]
)
hostile_values = json_values | huge_strings | odd_text | bad_timestamps | forbidden_uris


def mutate(base: dict[str, Any], data: st.DataObject) -> dict[str, Any]:
    """Drop, replace or add one to three fields of a valid event with hostile values."""
    out = dict(base)
    keys = sorted(out)
    for _ in range(data.draw(st.integers(min_value=1, max_value=3), label="mutations")):
        action = data.draw(st.sampled_from(["drop", "replace", "replace", "add"]), label="action")
        key = data.draw(st.sampled_from(keys), label="field")
        if action == "drop":
            out.pop(key, None)
        elif action == "replace":
            out[key] = data.draw(hostile_values, label=f"value of {key}")
        else:
            out[data.draw(st.text(min_size=1, max_size=10), label="new field")] = data.draw(json_values)
    return out


DEEP_NESTING = (b"[" * 5000, b'{"a": ' * 3000)


def raw_messages(valid: bytes, *, deep: bool = True) -> st.SearchStrategy[bytes]:
    """Bytes a consumer may receive instead of ``valid``: garbage, truncations, non-UTF-8, non-objects."""
    n = len(valid)
    nested = st.sampled_from(DEEP_NESTING) if deep else st.nothing()
    return st.one_of(
        nested,
        st.binary(max_size=200),
        st.integers(min_value=0, max_value=max(0, n - 1)).map(lambda k: valid[:k]),
        st.just(b""),
        st.just(b"\xff\xfe" + valid),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.just(valid.replace(b"{", b"{\x00", 1)),
    )


def png_bytes(size: tuple[int, int] = (40, 30), level: int = 128) -> bytes:
    """A small valid grey PNG."""
    buf = io.BytesIO()
    Image.new("L", size, color=level).save(buf, format="PNG")
    return buf.getvalue()


def bomb_png(width: int = 50_000, height: int = 50_000) -> bytes:
    """A tiny PNG whose header claims ``width`` x ``height`` pixels (a decompression bomb's calling card)."""
    data = bytearray(png_bytes((8, 8)))
    # IHDR chunk: 8-byte signature, 4 length, 4 type, then width and height, then CRC over type+data
    ihdr_start = 8 + 4
    body = bytearray(data[ihdr_start : ihdr_start + 4 + 13])
    body[4:12] = struct.pack(">II", width, height)
    data[ihdr_start : ihdr_start + 17] = body
    data[ihdr_start + 17 : ihdr_start + 21] = struct.pack(">I", zlib.crc32(bytes(body)) & 0xFFFFFFFF)
    return bytes(data)


def _other_format(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), color=(10, 200, 30)).save(buf, format=fmt)
    return buf.getvalue()


GOOD_IMAGE = png_bytes()
BAD_IMAGES: list[tuple[str, bytes]] = [
    ("zero bytes", b""),
    ("truncated png", GOOD_IMAGE[: len(GOOD_IMAGE) // 2]),
    ("png header only", GOOD_IMAGE[:16]),
    ("decompression bomb", bomb_png()),
    ("gif", _other_format("GIF")),
    ("text", b"this is not an image"),
    ("pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n"),
    ("zip", b"PK\x03\x04" + b"\x00" * 40),
]
bad_images = st.sampled_from(BAD_IMAGES) | st.binary(min_size=1, max_size=300).map(lambda b: ("random", b))
