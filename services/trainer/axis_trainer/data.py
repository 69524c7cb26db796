"""Dataset manifests and images for training: read from the object store, validated, preprocessed per mode."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from axis_adapters.objectstore import ObjectMissing, ObjectStore
from axis_model.finetune import labels_to_ids
from axis_model.preprocess import ImageRejected, PreprocessConfig, preprocess_bytes
from axis_model.spec import LABELS


class DatasetError(ValueError):
    """The dataset cannot be trained on (missing, empty class, broken URI, bad row); the message says why."""


@dataclass(frozen=True)
class TrainRow:
    """One manifest row, reduced to what training needs."""

    line: int
    image_uri: str
    sha256: str | None
    label: str
    mode: str
    plate: str
    split: str
    sub_type: str | None = None
    inspection_id: str = ""  # groups the images of one drop look (fused evaluation, gate resampling)


@dataclass
class ModeData:
    """Preprocessed images of one mode and one split."""

    rows: list[TrainRow]
    pixels: np.ndarray
    label_ids: np.ndarray

    @property
    def sub_types(self) -> list[str | None]:
        """Sub-type of each image (None where the row has none)."""
        return [r.sub_type for r in self.rows]

    @property
    def has_sub_types(self) -> bool:
        """Whether any row carries a sub-type."""
        return any(r.sub_type for r in self.rows)


def parse_rows(data: bytes, *, source: str = "manifest") -> list[TrainRow]:
    """JSONL manifest bytes → rows; a bad line raises DatasetError naming it."""
    rows: list[TrainRow] = []
    for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            label = str(raw["label"])
            if label not in LABELS:
                raise ValueError(f"label {label!r} is not one of {LABELS}")
            rows.append(
                TrainRow(
                    line=n,
                    image_uri=str(raw["image_uri"]),
                    sha256=raw.get("sha256"),
                    label=label,
                    mode=str(raw.get("imaging_mode") or raw["mode"]),
                    plate=str(raw.get("plate_barcode") or raw.get("plate") or ""),
                    split=str(raw.get("split") or "train"),
                    sub_type=raw.get("sub_type"),
                    inspection_id=str(raw.get("inspection_id") or raw.get("image_uri")),
                )
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{source} line {n} is not a valid row: {type(exc).__name__}: {exc}") from None
    if not rows:
        raise DatasetError(f"{source} has no rows: nothing to train or evaluate on")
    return rows


def read_manifest(store: ObjectStore, uri: str, *, expected_sha256: str | None = None) -> tuple[list[TrainRow], str]:
    """Fetch and parse a manifest; returns its rows and sha256 (checked against ``expected_sha256``)."""
    try:
        data = store.get_bytes(uri)
    except ObjectMissing:
        raise DatasetError(f"dataset manifest {uri} does not exist: was the dataset exported to this store?") from None
    except ValueError as exc:
        raise DatasetError(f"dataset manifest URI {uri!r} is unusable: {exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    if expected_sha256 and digest != expected_sha256:
        raise DatasetError(
            f"manifest {uri} has sha256 {digest[:12]}…, the event announced {expected_sha256[:12]}…: "
            "the dataset changed after export; export a new version"
        )
    return parse_rows(data, source=f"manifest {uri}"), digest


def modes_of(rows: Sequence[TrainRow]) -> list[str]:
    """Imaging modes present, visible first."""
    present = {r.mode for r in rows}
    return [m for m in ("visible", "uv") if m in present] + sorted(present - {"visible", "uv"})


def select(rows: Sequence[TrainRow], *, mode: str, splits: Sequence[str]) -> list[TrainRow]:
    """Rows of one mode in the given splits, in manifest order."""
    return [r for r in rows if r.mode == mode and r.split in splits]


def check_trainable(train: Sequence[TrainRow], val: Sequence[TrainRow], mode: str) -> None:
    """Refuse a split without both classes in train or without validation images."""
    for name, part in (("train", train), ("validation", val)):
        missing = [label for label in LABELS if not any(r.label == label for r in part)]
        if missing:
            raise DatasetError(
                f"{mode}: the {name} split has no '{missing[0]}' images ({len(part)} rows): "
                "an empty class cannot be trained on or selected against; add labelled images of that class"
            )


def _fetch(store: ObjectStore, row: TrainRow, config: PreprocessConfig, max_bytes: int) -> np.ndarray:
    try:
        data = store.get_bytes(row.image_uri, max_bytes=max_bytes)
    except ObjectMissing:
        raise DatasetError(f"manifest line {row.line}: image {row.image_uri} does not exist") from None
    except ValueError as exc:  # bad URI, forbidden bucket, too large
        raise DatasetError(f"manifest line {row.line}: image URI {row.image_uri!r} is unusable: {exc}") from None
    if row.sha256 and hashlib.sha256(data).hexdigest() != row.sha256:
        raise DatasetError(f"manifest line {row.line}: image {row.image_uri} does not match its sha256")
    try:
        return preprocess_bytes(data, config)
    except ImageRejected as exc:
        raise DatasetError(f"manifest line {row.line}: image {row.image_uri} rejected: {exc.reason}") from None


def load_images(
    store: ObjectStore, rows: Sequence[TrainRow], config: PreprocessConfig, *, max_bytes: int, threads: int = 4
) -> ModeData:
    """Fetch and preprocess images (I/O in threads); order follows ``rows``."""
    size = config.size
    if not rows:
        return ModeData([], np.zeros((0, 3, size, size), dtype=np.float32), np.zeros(0, dtype=np.int64))
    with ThreadPoolExecutor(max_workers=threads) as pool:
        arrays = list(pool.map(lambda r: _fetch(store, r, config, max_bytes), rows))
    return ModeData(list(rows), np.stack(arrays), labels_to_ids([r.label for r in rows]))
