"""Save and load one mode's LoRA adapter + head in peft's on-disk format, including published AXIS adapters.

Published AXIS adapters were saved with transformers 4, whose DINOv2 attention projections were named
``attention.attention.query/key/value`` and ``attention.output.dense``; transformers 5 calls them
``attention.q_proj/k_proj/v_proj/o_proj``. peft loads such a file without an error but silently drops the
attention LoRA (the keys are "unexpected" and ignored). Here old names are renamed, and any key that still
does not match raises ``AdapterMismatch`` instead of being dropped.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from peft import LoraConfig, PeftModel, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file

if TYPE_CHECKING:
    from axis_model.classifier import CrystalClassifier

ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_CONFIG = "adapter_config.json"

# transformers 4 -> 5 module paths inside a DINOv2 layer.
_KEY_RENAMES: tuple[tuple[str, str], ...] = (
    (".attention.attention.query.", ".attention.q_proj."),
    (".attention.attention.key.", ".attention.k_proj."),
    (".attention.attention.value.", ".attention.v_proj."),
    (".attention.output.dense.", ".attention.o_proj."),
)
_TARGET_RENAMES = {"query": "q_proj", "key": "k_proj", "value": "v_proj", "dense": "o_proj"}


class AdapterMismatch(ValueError):
    """An adapter file whose tensors do not fit the model (would otherwise be silently ignored)."""


def rename_old_key(key: str) -> str:
    """Map one transformers-4 DINOv2 parameter path to its transformers-5 name (others unchanged)."""
    for old, new in _KEY_RENAMES:
        if old in key:
            return key.replace(old, new)
    return key


def rename_old_keys(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], int]:
    """Rename every transformers-4 attention key; returns the new dict and how many keys were renamed."""
    out: dict[str, torch.Tensor] = {}
    renamed = 0
    for key, value in state.items():
        new = rename_old_key(key)
        renamed += new != key
        out[new] = value
    return out, renamed


def rename_target_modules(target: Any) -> Any:
    """Rewrite an adapter config's target_modules (list of names/paths, or a regex string) to new names."""
    if isinstance(target, str):
        if target == "all-linear":
            return target
        for old, new in _KEY_RENAMES:
            target = target.replace(old.strip("."), new.strip("."))
        return re.sub(r"\b(query|key|value|dense)\b", lambda m: _TARGET_RENAMES[m.group(1)], target)
    if isinstance(target, list | tuple | set):
        names = []
        for name in target:
            full = rename_old_key(f".{name}.").strip(".")
            names.append(_TARGET_RENAMES.get(full, full))
        return sorted(set(names))
    return target


def lora_config_from_dict(data: dict[str, Any]) -> LoraConfig:
    """LoraConfig from an adapter_config.json dict, ignoring keys this peft version does not know."""
    if str(data.get("peft_type", "LORA")).upper() != "LORA":
        raise AdapterMismatch(f"only LoRA adapters are supported, got peft_type={data.get('peft_type')!r}")
    known = {f.name for f in dataclasses.fields(LoraConfig)}
    kwargs = {k: v for k, v in data.items() if k in known and k not in ("peft_type", "auto_mapping")}
    kwargs["inference_mode"] = False
    for key in ("target_modules", "exclude_modules"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = sorted(kwargs[key])
    return LoraConfig(**kwargs)


def read_adapter_dir(adapter_dir: str | Path) -> tuple[LoraConfig, dict[str, torch.Tensor], int]:
    """Read adapter_config.json + adapter_model.safetensors, renaming transformers-4 names (count returned)."""
    root = Path(adapter_dir)
    cfg_path, weights_path = root / ADAPTER_CONFIG, root / ADAPTER_WEIGHTS
    if not cfg_path.is_file() or not weights_path.is_file():
        raise FileNotFoundError(f"{root} must contain {ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}")
    data = json.loads(cfg_path.read_text())
    state, renamed = rename_old_keys(load_file(str(weights_path)))
    if renamed:
        data["target_modules"] = rename_target_modules(data.get("target_modules"))
    return lora_config_from_dict(data), state, renamed


def _adapter_key(key: str, adapter_name: str) -> str:
    """peft's saved key -> the model's parameter name for this adapter."""
    for part in (".lora_A.", ".lora_B.", ".lora_embedding_A.", ".lora_embedding_B."):
        if part in key:
            return key.replace(part, f"{part}{adapter_name}.")
    return key


def attach_adapter(
    model: PeftModel | torch.nn.Module, config: LoraConfig, state: dict[str, torch.Tensor], adapter_name: str
) -> PeftModel:
    """Add an adapter to a model (wrapping a plain model in peft) and load its tensors strictly."""
    if isinstance(model, PeftModel):
        if adapter_name in model.peft_config:
            raise ValueError(f"adapter {adapter_name!r} already loaded; pick another name or build a fresh model")
        model.add_adapter(adapter_name, config)
        peft_model = model
    else:
        wrapped = get_peft_model(model, config, adapter_name=adapter_name)
        assert isinstance(wrapped, PeftModel)
        peft_model = wrapped
    expected = set(get_peft_model_state_dict(peft_model, adapter_name=adapter_name))
    given = set(state)
    if given != expected:
        unexpected, missing = sorted(given - expected), sorted(expected - given)
        if len(peft_model.peft_config) > 1:
            peft_model.delete_adapter(adapter_name)
        raise AdapterMismatch(
            f"adapter {adapter_name!r} does not fit the model: {len(unexpected)} unexpected keys "
            f"(e.g. {unexpected[:2]}), {len(missing)} missing (e.g. {missing[:2]}); is the base the same architecture?"
        )
    result: Any = set_peft_model_state_dict(peft_model, state, adapter_name=adapter_name)
    unexpected = [k for k in result.unexpected_keys if "lora_" in k or "modules_to_save" in k]
    if unexpected:
        raise AdapterMismatch(f"adapter {adapter_name!r}: unexpected keys {unexpected[:3]}")
    peft_model.set_adapter(adapter_name)
    peft_model.eval()
    return peft_model


def load_adapter_dir(model: PeftModel | torch.nn.Module, adapter_dir: str | Path, adapter_name: str) -> PeftModel:
    """Load a peft adapter directory (old or new DINOv2 names) as ``adapter_name``; strict, never silent."""
    config, state, _ = read_adapter_dir(adapter_dir)
    return attach_adapter(model, config, state, adapter_name)


def load_published_adapter(model: Any, adapter_dir: str | Path, adapter_name: str) -> PeftModel:
    """Load a published AXIS adapter (transformers-4 names) under ``adapter_name``; outputs match exactly.

    ``model`` is a CrystalClassifier, a PeftModel or a plain Dinov2ForImageClassification.
    """
    target = getattr(model, "model", None) if not isinstance(model, torch.nn.Module) else model
    if target is None:
        raise TypeError(f"expected a CrystalClassifier, PeftModel or torch module, got {type(model).__name__}")
    peft_model = load_adapter_dir(target, adapter_dir, adapter_name)
    if hasattr(model, "thresholds"):
        model.thresholds.setdefault(adapter_name, 0.5)
    return peft_model


def save_adapter_dir(model: PeftModel, adapter_name: str, out_dir: str | Path) -> Path:
    """Write one adapter (LoRA + head) as adapter_model.safetensors + adapter_config.json (peft format)."""
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    state = {
        k: v.detach().contiguous().cpu() for k, v in get_peft_model_state_dict(model, adapter_name=adapter_name).items()
    }
    save_file(state, str(root / ADAPTER_WEIGHTS), metadata={"format": "pt"})
    data = model.peft_config[adapter_name].to_dict()
    for key, value in list(data.items()):
        if isinstance(value, set):
            data[key] = sorted(value)
    data["peft_type"] = str(getattr(data.get("peft_type"), "value", data.get("peft_type")))
    data["task_type"] = getattr(data.get("task_type"), "value", data.get("task_type"))
    (root / ADAPTER_CONFIG).write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    return root


@torch.no_grad()
def randomise_adapter(classifier: CrystalClassifier, mode: str, *, seed: int = 0, scale: float = 0.3) -> None:
    """Give one mode non-zero LoRA B matrices and a perturbed head (tests and benchmarks: a 'trained-looking' adapter).

    Nothing is trained: the weights are random. Trained weights come from axis_model.finetune.train_mode.
    """
    gen = torch.Generator().manual_seed(seed)
    for name, param in classifier.model.named_parameters():
        parts = name.split(".")
        if mode in parts and ("lora_B" in parts or "modules_to_save" in parts):
            param.add_(torch.randn(param.shape, generator=gen) * scale)
