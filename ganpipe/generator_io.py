"""The trained-generator file: weights plus everything needed to use them correctly.

``models/generator.pt`` is a plain dict (loads with ``weights_only=True``): variant, the
architecture config, the generator state dict, the mel configuration and the train-split mel
statistics (so a consumer computes exactly the features the model was trained on), sample rate,
hop length, label names, step and the MLflow run id.

Optional keys: ``discriminators_state_dict`` (the bundle's ``discriminators`` ``ModuleDict``
state, e.g. of an imported published checkpoint, for fine-tuning with its discriminators) and
``source`` (where an imported model came from: ``{"format", "file", "sha256", "steps"}``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganpipe.atomic import atomic_path
from ganpipe.mel import MelConfig
from ganpipe.models import ModelBundle, build

FORMAT = "ganpipe-generator/1"


@dataclass
class LoadedGenerator:
    bundle: ModelBundle
    generator: torch.nn.Module
    mel_config: MelConfig
    mel_stats: dict[str, np.ndarray]
    label_names: list[str]
    meta: dict[str, Any]
    discriminators_state_dict: dict[str, torch.Tensor] | None = None


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def save_generator(path: str | Path, bundle: ModelBundle, generator: torch.nn.Module, mel: MelConfig,
                   stats: dict[str, np.ndarray], label_names: list[str], step: int, run_id: str | None,
                   discriminators: torch.nn.Module | None = None, source: dict[str, Any] | None = None) -> None:
    obj = {
        "format": FORMAT,
        "variant": bundle.variant,
        "kind": bundle.kind,
        "config": _plain(bundle.config),
        "state_dict": {k: v.detach().cpu() for k, v in generator.state_dict().items()},
        "mel_config": mel.to_dict(),
        "mel_stats": {"mean": torch.as_tensor(stats["mean"]), "std": torch.as_tensor(stats["std"])},
        "sample_rate": bundle.sample_rate,
        "hop_length": bundle.hop_length,
        "label_names": list(label_names),
        "step": int(step),
        "run_id": run_id,
    }
    if discriminators is not None:
        obj["discriminators_state_dict"] = {k: v.detach().cpu() for k, v in discriminators.state_dict().items()}
    if source is not None:
        obj["source"] = _plain(source)
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def load_generator(path: str | Path, device: str | torch.device = "cpu") -> LoadedGenerator:
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if obj.get("format") != FORMAT:
        raise ValueError(f"{path}: not a ganpipe generator file (format {obj.get('format')!r})")
    bundle = build(obj["variant"], **obj["config"])
    gen = bundle.generator
    gen.load_state_dict(obj["state_dict"])
    gen.to(device).eval()
    meta = {k: v for k, v in obj.items() if k not in ("state_dict", "mel_stats", "discriminators_state_dict")}
    return LoadedGenerator(bundle, gen, MelConfig.from_dict(obj["mel_config"]),
                           {k: v.numpy() for k, v in obj["mel_stats"].items()}, list(obj["label_names"]), meta,
                           obj.get("discriminators_state_dict"))


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Generator weights for fine-tuning from a local file: a generator file or a training checkpoint
    (a registered model is fetched first: ganpipe.training.starting_model.load)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"train.fine_tune_from: file not found: {path}")
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in obj and obj.get("format") == FORMAT:
        return obj["state_dict"]
    if "generator" in obj:
        return obj["generator"]
    raise ValueError(f"{path}: neither a ganpipe generator file nor a training checkpoint")
