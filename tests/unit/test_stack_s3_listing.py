"""The S3 server's listing walks only the prefix's folder yet answers exactly what localbucket's own listing does."""

from __future__ import annotations

import tempfile
from pathlib import Path

import localbucket
import pytest
from axis_stack.s3server import list_page
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.unit

KEYS = [
    "a.txt",
    "a/b.txt",
    "a/b/c.txt",
    "a/b/d.txt",
    "a/bb.txt",
    "a/é.txt",
    "ab/c.txt",
    "clusters/t/topics/x.json",
    "clusters/t/topics/x/partitions/0000000000/records/00000000000000000000.batch",
    "clusters/t/topics/x/partitions/0000000000/records/00000000000000000001.batch",
    "clusters/t/topics/x/partitions/0000000001/records/00000000000000000000.batch",
    "clusters/t/topics/x/partitions/0000000001/watermark.json",
    "z/a b+c=d.bin",
]
PREFIXES = ["", "a", "a/", "a/b", "a/b/", "ab", "b", "z/", "nothing/", "clusters/t/topics/x"]
PREFIXES += ["clusters/t/topics/x/partitions/0000000000/", "clusters/t/topics/x/partitions/0000000000/records/"]


def _bucket(root: Path) -> Path:
    bucket = root / "bkt"
    for key in KEYS:
        path = bucket.joinpath(*key.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(key.encode())
    # An unfinished write left by a killed server is not an object.
    (bucket / "a" / f"{localbucket.TEMP_PREFIX}tmp123").write_bytes(b"partial")
    return bucket


def _reference(bucket: Path, *args: object) -> tuple[list[tuple[str, Path]], list[str], bool, str]:
    handler = object.__new__(localbucket.S3Handler)  # its listing uses no state of the handler
    return handler._list_entries(bucket, *args)  # type: ignore[no-any-return]


@settings(max_examples=150, deadline=None)
@given(
    prefix=st.sampled_from(PREFIXES),
    delimiter=st.sampled_from(["", "/"]),
    marker=st.sampled_from(["", "a/b.txt", "a/b/", "clusters/t/topics/x.json", "zz"]),
    max_keys=st.sampled_from([0, 1, 2, 3, 1000]),
)
def test_every_page_equals_localbucket_own_listing(prefix: str, delimiter: str, marker: str, max_keys: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        bucket = _bucket(Path(tmp))
        marker_is_prefix = bool(delimiter) and marker.endswith(delimiter)
        args = (prefix, delimiter, marker, marker_is_prefix, max_keys)
        assert list_page(bucket, *args) == _reference(bucket, *args)


def test_paging_through_a_prefix_returns_every_key_once_in_order(tmp_path: Path) -> None:
    bucket = _bucket(tmp_path)
    seen: list[str] = []
    marker = ""
    while True:
        contents, _, truncated, last = list_page(bucket, "a/", "", marker, False, 2)
        seen += [key for key, _ in contents]
        if not truncated:
            break
        marker = last[2:]
    assert seen == sorted((k for k in KEYS if k.startswith("a/")), key=str.encode)


def test_a_prefix_outside_the_bucket_lists_nothing(tmp_path: Path) -> None:
    bucket = _bucket(tmp_path)
    (tmp_path / "secret").mkdir()
    (tmp_path / "secret" / "key").write_text("x")
    assert list_page(bucket, "../secret/", "", "", False, 1000) == ([], [], False, "")
