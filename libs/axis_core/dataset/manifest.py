"""Deterministic JSONL manifest: sorted rows, fixed key order, so equal inputs give equal bytes."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC
from typing import Any

from axis_core.dataset.model import MANIFEST_FIELDS, ManifestRow, sha256_hex


def row_dict(row: ManifestRow) -> dict[str, Any]:
    """One row as a dict in manifest key order (times in UTC ISO 8601 with a Z)."""
    values: dict[str, Any] = {
        "image_uri": row.image_uri,
        "sha256": row.sha256,
        "label": row.label,
        "label_source": row.label_source,
        "imaging_mode": row.imaging_mode.value,
        "plate_barcode": row.plate_barcode,
        "well": row.well,
        "drop": row.drop,
        "inspection_id": row.inspection_id,
        "imaged_at": row.imaged_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "split": row.split,
        "sub_type": row.sub_type,
    }
    return {k: values[k] for k in MANIFEST_FIELDS}


def manifest_bytes(rows: Iterable[ManifestRow]) -> bytes:
    """JSON Lines, one row per image, sorted by split/plate/well/drop/inspection/mode/URI."""
    lines = [
        json.dumps(row_dict(r), ensure_ascii=True, separators=(",", ":"), allow_nan=False)
        for r in sorted(rows, key=ManifestRow.sort_key)
    ]
    return "".join(line + "\n" for line in lines).encode("ascii")


def manifest_sha256(rows: Iterable[ManifestRow]) -> str:
    """SHA-256 of the manifest bytes: the identity of a dataset version's content."""
    return sha256_hex(manifest_bytes(rows))


def encode_manifest(rows: Iterable[ManifestRow]) -> tuple[bytes, str]:
    """The manifest bytes and their SHA-256, computed once."""
    data = manifest_bytes(rows)
    return data, sha256_hex(data)


def parse_manifest(data: bytes) -> list[ManifestRow]:
    """Read manifest bytes back into rows; a bad line raises ValueError naming the line number."""
    rows: list[ManifestRow] = []
    for n, line in enumerate(data.decode("utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(ManifestRow.model_validate_json(line))
        except ValueError as exc:
            raise ValueError(f"manifest line {n} is not a valid row: {exc}") from exc
    return rows
