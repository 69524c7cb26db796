"""Dataset builder: staged, configurable QC of training candidates, grouped split, manifest, report, card."""

from axis_core.dataset.builder import (
    DatasetResult,
    ImageLoader,
    build_dataset,
    build_test_set,
    measure_candidates,
)
from axis_core.dataset.card import dataset_card
from axis_core.dataset.config import (
    ConsensusConfig,
    DatasetConfig,
    ImageQCConfig,
    SimilarityConfig,
    SplitConfig,
    TestGuardConfig,
    UniquenessConfig,
)
from axis_core.dataset.imageqc import measure_image
from axis_core.dataset.manifest import encode_manifest, manifest_bytes, manifest_sha256, parse_manifest
from axis_core.dataset.model import (
    Candidate,
    CuratorLabel,
    ImageFailure,
    ImageStats,
    ManifestRow,
    Removal,
)
from axis_core.dataset.report import Counts, QCReport, StageReport
from axis_core.dataset.stages import STAGE_ORDER

__all__ = [
    "STAGE_ORDER",
    "Candidate",
    "ConsensusConfig",
    "Counts",
    "CuratorLabel",
    "DatasetConfig",
    "DatasetResult",
    "ImageFailure",
    "ImageLoader",
    "ImageQCConfig",
    "ImageStats",
    "ManifestRow",
    "QCReport",
    "Removal",
    "SimilarityConfig",
    "SplitConfig",
    "StageReport",
    "TestGuardConfig",
    "UniquenessConfig",
    "build_dataset",
    "build_test_set",
    "dataset_card",
    "encode_manifest",
    "manifest_bytes",
    "manifest_sha256",
    "measure_candidates",
    "measure_image",
    "parse_manifest",
]
