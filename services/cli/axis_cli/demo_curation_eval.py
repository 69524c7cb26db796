"""The curation experiment's frozen test set (rendered with ground truth, in S3 as a manifest the trainer reads)
and the measurement of a generation on it, fused per inspection as the demo's report does."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from axis_core.dataset import ManifestRow

    from axis_cli.demo_context import DemoContext
    from axis_cli.demo_eval import VersionEval


@dataclass(frozen=True)
class TestSet:
    """The frozen test set of a seed: manifest rows, the images' bytes and the manifest's URI in S3."""

    rows: list[ManifestRow]
    images: dict[str, bytes]
    manifest_uri: str


def test_set(ctx: DemoContext) -> TestSet:
    """The demo's facility-B test plates with their ground-truth labels, in S3 as a manifest the trainer reads."""
    import hashlib

    from axis_adapters.objectstore import make_uri
    from axis_contracts import ImagingMode
    from axis_core.dataset import ManifestRow, encode_manifest
    from axis_simulators.robot import encode_image, image_uri, plan

    from axis_cli.demo_loop import robot_config

    config = robot_config(ctx, "T", ctx.opts.test_plates, 11)
    domain = config.domain_obj()
    store = ctx.store()
    store.ensure_bucket(config.bucket)
    store.ensure_bucket("axis-datasets")
    rows, images = [], {}
    for im in plan(config):
        uri = image_uri(im, bucket=config.bucket, image_format=config.image_format)
        images[uri] = data = encode_image(im, domain, image_format=config.image_format, size=config.size)
        store.put_bytes(uri, data, "image/jpeg" if config.image_format == "jpg" else "image/png")
        rows.append(
            ManifestRow(
                image_uri=uri,
                sha256=hashlib.sha256(data).hexdigest(),
                label=im.label,  # type: ignore[arg-type]
                label_source="curated",
                imaging_mode=ImagingMode(im.imaging_mode.value),
                plate_barcode=im.plate_barcode,
                well=im.well,
                drop=im.drop,
                inspection_id=im.inspection_id,
                imaged_at=im.imaged_at,
                split="test",
                sub_type=im.subtype,
            )
        )
    manifest, _sha = encode_manifest(rows)
    manifest_uri = make_uri("axis-datasets", f"experiment-test-{ctx.tag}/1/manifest.jsonl")
    store.put_bytes(manifest_uri, manifest, "application/x-ndjson")
    return TestSet(rows, images, manifest_uri)


def measure(ctx: DemoContext, name: str, versions: dict[str, str], test: TestSet) -> VersionEval:
    """One generation (a registered version per mode) on the test set, as the demo's report measures it."""
    from axis_adapters.registry import ModelRegistry

    from axis_cli.demo_context import model_names, need
    from axis_cli.demo_eval import ModeModel, evaluate

    reg = ModelRegistry(ctx.stack.mlflow_uri)
    with tempfile.TemporaryDirectory(prefix="axis-experiment-eval-") as tmp:
        models = {}
        for mode, version in versions.items():
            mname = model_names()[mode]
            rv = reg.version(mname, version)
            bundle = reg.download_bundle(mname, version, Path(tmp) / f"{mname}-{version}")
            models[mode] = ModeModel(mode, mname, version, bundle, threshold=rv.threshold)
        return evaluate(name, models, test.rows, test.images, base_path=str(need(ctx.base_path, "the base model")))
