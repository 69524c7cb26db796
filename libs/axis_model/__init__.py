"""DINOv2 + LoRA crystal classifier: build, preprocess, score (two modes on one base), bundles, CPU and GPU paths."""

from axis_model.adapters import AdapterMismatch, load_adapter_dir, load_published_adapter, save_adapter_dir
from axis_model.bundle import BaseMismatch, BundleManifest, load_bundle, read_manifest, save_bundle
from axis_model.classifier import CrystalClassifier, build_classifier, count_parameters
from axis_model.fast import FastScorer
from axis_model.gpu import GpuScorer
from axis_model.preprocess import ImageRejected, PreprocessConfig, preprocess_batch, preprocess_bytes, random_flip
from axis_model.spec import CRYSTAL_INDEX, LABELS, MODES, BaseSpec, LoraSpec

__all__ = [
    "CRYSTAL_INDEX",
    "LABELS",
    "MODES",
    "AdapterMismatch",
    "BaseMismatch",
    "BaseSpec",
    "BundleManifest",
    "CrystalClassifier",
    "FastScorer",
    "GpuScorer",
    "ImageRejected",
    "LoraSpec",
    "PreprocessConfig",
    "build_classifier",
    "count_parameters",
    "load_adapter_dir",
    "load_bundle",
    "load_published_adapter",
    "preprocess_batch",
    "preprocess_bytes",
    "random_flip",
    "read_manifest",
    "save_adapter_dir",
    "save_bundle",
]
