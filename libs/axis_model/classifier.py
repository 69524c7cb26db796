"""DINOv2 + LoRA crystal classifier: one shared backbone, one peft adapter (+ its own head) per imaging mode."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import Dinov2Config, Dinov2ForImageClassification

from axis_model.preprocess import PreprocessConfig
from axis_model.spec import CRYSTAL_INDEX, LABELS, MODES, BaseSpec, LoraSpec

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def lora_config(lora: LoraSpec) -> LoraConfig:
    """peft LoraConfig for one mode: every backbone linear layer, the head fully trained and saved."""
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,  # type: ignore[arg-type]  # peft annotates int but accepts float
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules if isinstance(lora.target_modules, str) else list(lora.target_modules),
        # peft's "all-linear" only skips the head for task_type=SEQ_CLS; exclude it explicitly instead.
        exclude_modules=list(lora.head_modules),
        modules_to_save=list(lora.head_modules),
    )


def load_base_model(base: BaseSpec) -> Dinov2ForImageClassification:
    """Plain 2-class Dinov2ForImageClassification (no LoRA) from a config, a directory or a hub id."""
    id2label = dict(enumerate(LABELS))
    label2id = {v: k for k, v in id2label.items()}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(base.seed)  # config kind: the seed makes the random base reproducible (and hashable)
        if base.kind == "config":
            assert base.config is not None
            config = Dinov2Config(**base.config, num_labels=2, id2label=id2label, label2id=label2id)  # type: ignore[call-arg]
            model = Dinov2ForImageClassification(config)
        else:
            assert base.path is not None
            model = Dinov2ForImageClassification.from_pretrained(
                base.path, num_labels=2, id2label=id2label, label2id=label2id, ignore_mismatched_sizes=True
            )
    return model.eval()


def weight_files(path: str | Path) -> list[Path]:
    """The weight files of a local model directory, sorted."""
    root = Path(path)
    return sorted(p for p in root.iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)


def file_sha256(path: Path) -> str:
    """sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    return digest.hexdigest()


def state_dict_sha256(model: torch.nn.Module) -> str:
    """sha256 over the names, dtypes, shapes and bytes of a model's tensors (for bases built from a config)."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().contiguous().cpu()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}\n".encode())
        digest.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def base_fingerprint(base: BaseSpec, model: torch.nn.Module) -> str:
    """sha256 identifying the base weights: of the weight file(s) for a local directory, else of the tensors."""
    if base.kind == "path" and base.path and Path(base.path).is_dir():
        files = weight_files(base.path)
        if files:
            if len(files) == 1:
                return file_sha256(files[0])
            combined = hashlib.sha256()
            for f in files:
                combined.update(f"{f.name}:{file_sha256(f)}\n".encode())
            return combined.hexdigest()
    backbone = getattr(model, "dinov2", model)
    return state_dict_sha256(backbone)


class CrystalClassifier:
    """A DINOv2 base shared by several LoRA adapters, one per imaging mode, each with its own 2-class head."""

    def __init__(
        self,
        model: PeftModel,
        *,
        base: BaseSpec,
        lora: LoraSpec,
        preprocess: PreprocessConfig,
        base_sha256: str,
        thresholds: Mapping[str, float] | None = None,
    ) -> None:
        self.model = model
        self.base = base
        self.lora = lora
        self.preprocess = preprocess
        self.base_sha256 = base_sha256
        self.thresholds: dict[str, float] = {m: 0.5 for m in self.modes}
        self.thresholds.update(thresholds or {})

    @property
    def modes(self) -> list[str]:
        """Adapter (imaging mode) names loaded on the shared base."""
        return list(self.model.peft_config)

    def add_mode(self, mode: str, lora: LoraSpec | None = None) -> None:
        """Add a fresh adapter + head for a mode (LoRA B = 0: starts equal to the base)."""
        if mode in self.model.peft_config:
            raise ValueError(f"mode {mode!r} already has an adapter")
        self.model.add_adapter(mode, lora_config(lora or self.lora))
        self.thresholds.setdefault(mode, 0.5)

    def use(self, mode: str) -> None:
        """Make a mode's adapter and head the active ones (no reload of the base)."""
        if mode not in self.model.peft_config:
            raise KeyError(f"no adapter for mode {mode!r}; loaded: {self.modes}")
        if self.model.active_adapter != mode:
            self.model.set_adapter(mode)

    def logits(self, pixel_values: torch.Tensor, mode: str) -> torch.Tensor:
        """Raw 2-class logits (index 0 = crystal) of a batch through one mode's adapter."""
        self.use(mode)
        return self.model(pixel_values=pixel_values).logits

    @torch.inference_mode()
    def predict_proba(self, pixels: np.ndarray | torch.Tensor, mode: str) -> np.ndarray:
        """P(crystal) per image (softmax[:, 0]) for an N x 3 x H x W batch of one mode."""
        was_training = self.model.training
        self.model.eval()
        x = torch.as_tensor(pixels, dtype=torch.float32)
        probs = torch.softmax(self.logits(x, mode).float(), dim=-1)[:, CRYSTAL_INDEX]
        self.model.train(was_training)
        return probs.numpy().astype(np.float64)

    def score(self, images_by_mode: Mapping[str, np.ndarray | torch.Tensor]) -> dict[str, np.ndarray]:
        """Score a mixed batch given as {mode: N x 3 x H x W}; one adapter switch per mode."""
        return {mode: self.predict_proba(pixels, mode) for mode, pixels in images_by_mode.items() if len(pixels)}

    def score_items(self, items: Sequence[tuple[str, np.ndarray]]) -> np.ndarray:
        """Score (mode, 3 x H x W) items in any order; grouped by mode internally, results in input order."""
        return score_grouped(self.predict_proba, items)

    def label(self, probability: float, mode: str) -> str:
        """'crystal' if P(crystal) >= the mode's decision threshold, else 'other'."""
        return LABELS[0] if probability >= self.thresholds[mode] else LABELS[1]

    def parameter_counts(self, mode: str | None = None) -> tuple[int, int]:
        """(trainable params of one mode: LoRA + head, total params of the plain classifier)."""
        mode = mode or self.modes[0]
        trainable = total = 0
        for name, p in self.model.named_parameters():
            parts = name.split(".")
            if "lora_A" in parts or "lora_B" in parts or "modules_to_save" in parts:
                trainable += p.numel() if mode in parts else 0
            else:
                total += p.numel()
        return trainable, total


def count_parameters(classifier: CrystalClassifier, mode: str | None = None) -> tuple[int, int]:
    """(trainable, total) parameters; base config: about 4.15 M trainable per mode of 86.6 M."""
    return classifier.parameter_counts(mode)


def build_classifier(
    base: BaseSpec,
    lora: LoraSpec | None = None,
    *,
    modes: Sequence[str] = MODES,
    preprocess: PreprocessConfig | None = None,
) -> CrystalClassifier:
    """DINOv2 base + one fresh LoRA adapter and head per mode (default visible and uv) on one shared backbone."""
    if not modes:
        raise ValueError("at least one mode is needed")
    lora = lora or LoraSpec()
    model = load_base_model(base)
    sha = base_fingerprint(base, model)
    image_size = int(getattr(model.config, "image_size", 518))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(base.seed)  # the same fresh adapters (LoRA A init) on every build of the same spec
        peft_model = get_peft_model(model, lora_config(lora), adapter_name=modes[0])
        assert isinstance(peft_model, PeftModel)
        for mode in modes[1:]:
            peft_model.add_adapter(mode, lora_config(lora))
    peft_model.set_adapter(modes[0])
    peft_model.eval()
    return CrystalClassifier(
        peft_model,
        base=base,
        lora=lora,
        preprocess=preprocess or PreprocessConfig(size=image_size),
        base_sha256=sha,
    )


def score_grouped(
    predict_proba: Callable[[np.ndarray, str], np.ndarray], items: Sequence[tuple[str, np.ndarray]]
) -> np.ndarray:
    """Score (mode, 3 x H x W) items with one batched call per mode; results in input order."""
    out = np.empty(len(items), dtype=np.float64)
    by_mode: dict[str, list[int]] = {}
    for i, (mode, _) in enumerate(items):
        by_mode.setdefault(mode, []).append(i)
    for mode, idx in by_mode.items():
        out[idx] = predict_proba(np.stack([items[i][1] for i in idx]), mode)
    return out
