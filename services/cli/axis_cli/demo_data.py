"""Data the demo makes itself: the local DINOv2 base directory and the domain-A foundation dataset in S3."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from axis_adapters.objectstore import ObjectStore, make_uri
from axis_contracts import ImagingMode
from axis_core.dataset import ManifestRow, encode_manifest
from axis_simulators.robot import RobotConfig, encode_image, image_uri, plan
from axis_synth import PlannedImage


def ensure_base_model(choice: str, models_dir: Path) -> Path:
    """A local DINOv2 directory for every process: 'tiny'/'base' seeded configs saved once, or an existing path."""
    if choice not in ("tiny", "base"):
        path = Path(choice).expanduser().resolve()
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"--base-model {choice}: no config.json there; give a saved DINOv2 directory")
        return path
    out = models_dir / f"dinov2-{choice}-seed0"
    if (out / "config.json").is_file():
        return out
    from axis_model.classifier import load_base_model
    from axis_model.spec import BaseSpec

    spec = BaseSpec.tiny(seed=0) if choice == "tiny" else BaseSpec.base(seed=0)
    tmp = out.with_name(out.name + ".tmp")
    load_base_model(spec).save_pretrained(tmp)
    tmp.rename(out)
    return out


def _splits(plates: list[str]) -> dict[str, str]:
    """plate -> split: the last plate validates, the one before tests (with 3+ plates), the rest train."""
    out = {p: "train" for p in plates}
    if len(plates) >= 2:
        out[plates[-1]] = "val"
    if len(plates) >= 3:
        out[plates[-2]] = "test"
    return out


def foundation_dataset(
    config: RobotConfig,
    store: ObjectStore,
    *,
    datasets_bucket: str,
    name: str,
    version: str = "1",
) -> dict[str, tuple[str, str, list[ManifestRow]]]:
    """Render domain-A plates (known labels) into S3; write a train/val manifest and a test manifest.

    This stands in for a public dataset: the labels are the synthetic ground truth, split by plate.
    Returns {"trainval": (uri, sha256, rows), "test": (uri, sha256, rows)}.
    """
    images: list[PlannedImage] = plan(config)
    plates = sorted({im.plate_barcode for im in images})
    if len(plates) < 3:
        raise ValueError("the foundation dataset needs at least 3 plates (train, test, validation)")
    split_of = _splits(plates)
    domain = config.domain_obj()
    store.ensure_bucket(config.bucket)
    store.ensure_bucket(datasets_bucket)

    def put(im: PlannedImage) -> ManifestRow:
        uri = image_uri(im, bucket=config.bucket, image_format=config.image_format)
        data = encode_image(im, domain, image_format=config.image_format, size=config.size)
        store.put_bytes(uri, data, "image/jpeg" if config.image_format == "jpg" else "image/png")
        import hashlib

        return ManifestRow(
            image_uri=uri,
            sha256=hashlib.sha256(data).hexdigest(),
            label=im.label,
            label_source="curated",
            imaging_mode=ImagingMode(im.imaging_mode.value),
            plate_barcode=im.plate_barcode,
            well=im.well,
            drop=im.drop,
            inspection_id=im.inspection_id,
            imaged_at=im.imaged_at,
            split=split_of[im.plate_barcode],  # type: ignore[arg-type]
            sub_type=im.subtype,
        )

    with ThreadPoolExecutor(max_workers=config.render_threads) as pool:
        rows = list(pool.map(put, images))
    out: dict[str, tuple[str, str, list[ManifestRow]]] = {}
    for part, keep in (("trainval", ("train", "val")), ("test", ("test",))):
        part_rows = [r for r in rows if r.split in keep]
        data, sha = encode_manifest(part_rows)
        part_name = name if part == "trainval" else f"{name}-test"
        uri = make_uri(datasets_bucket, f"{part_name}/{version}/manifest.jsonl")
        store.put_bytes(uri, data, "application/x-ndjson")
        out[part] = (uri, sha, part_rows)
    card = {
        "name": name,
        "version": version,
        "source": f"synthetic domain {config.domain} (public-dataset stand-in), labels = ground truth",
        "splits": split_of,
        "images": len(rows),
    }
    store.put_bytes(make_uri(datasets_bucket, f"{name}/{version}/card.json"), json.dumps(card, indent=1).encode())
    return out


def lims_truth(truths: Sequence[dict[str, object]]) -> dict[str, str]:
    """The LIMS simulator's truth ({inspection_id: score class}) from robot truth documents."""
    out: dict[str, str] = {}
    for doc in truths:
        inspections = doc.get("inspections")
        assert isinstance(inspections, dict)
        for iid, entry in inspections.items():
            out[str(iid)] = str(entry["user_score_class"])
    return out
