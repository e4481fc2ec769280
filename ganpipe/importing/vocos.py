"""Import a published Vocos model (``pytorch_model.bin`` + ``config.yaml``, e.g. charactr/vocos-mel-24khz)
as a ganpipe generator file.

``config.yaml`` is Vocos' own (the ``feature_extractor`` / ``backbone`` / ``head`` sections of its
``Vocos.from_hparams``); ``pytorch_model.bin`` the ``Vocos`` module's state dict (``feature_extractor.*``,
``backbone.*``, ``head.*``), read with ``torch.load(weights_only=True)``. Supported: the mel Vocos
(``MelSpectrogramFeatures`` + ``VocosBackbone`` without AdaLayerNorm + ``ISTFTHead``); the EnCodec
Vocos is refused by name.

The mel: Vocos' ``MelSpectrogramFeatures`` is torchaudio's ``MelSpectrogram`` (``center`` or ``same``
framing, magnitude, HTK mel scale from 0 Hz to Nyquist without area normalisation) and
``log(max(mel, 1e-7))``. The file must carry a :class:`~ganpipe.mel.MelConfig` that computes exactly
that, or every consumer would feed the model another mel: :func:`vocos_mel_config` builds it and
raises :class:`VocosImportError`, naming the fields, while ``MelConfig`` cannot express it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ganpipe import generator_io
from ganpipe.mel import MelConfig
from ganpipe.models import ModelBundle, build
from ganpipe.models.reference_weights import WeightMappingError, from_vocos_generator

FORMAT = "vocos"


class VocosImportError(ValueError):
    """The Vocos checkpoint / config cannot be imported (the message names the file and the reason)."""


def _section(config: dict[str, Any], name: str, class_suffix: str, path: Path) -> dict[str, Any]:
    section = config.get(name)
    if not isinstance(section, dict) or "init_args" not in section:
        raise VocosImportError(f"{path}: no {name}.init_args section (not a Vocos config.yaml)")
    cls = str(section.get("class_path", ""))
    if not cls.endswith(class_suffix):
        raise VocosImportError(f"{path}: {name} is {cls!r}; only {class_suffix} is supported "
                               "(the mel Vocos: MelSpectrogramFeatures + VocosBackbone + ISTFTHead)")
    return dict(section["init_args"])


def read_config(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{"feature_extractor", "backbone", "head"}`` init args of a Vocos ``config.yaml``, checked."""
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise VocosImportError(f"{path}: cannot read the Vocos config: {exc}") from None
    if not isinstance(config, dict):
        raise VocosImportError(f"{path}: not a Vocos config.yaml (a mapping with feature_extractor/backbone/head)")
    parts = {"feature_extractor": _section(config, "feature_extractor", "MelSpectrogramFeatures", path),
             "backbone": _section(config, "backbone", "VocosBackbone", path),
             "head": _section(config, "head", "ISTFTHead", path)}
    if parts["backbone"].get("adanorm_num_embeddings"):
        raise VocosImportError(f"{path}: the backbone uses AdaLayerNorm (adanorm_num_embeddings): the EnCodec "
                               "Vocos is not supported")
    fe, head = parts["feature_extractor"], parts["head"]
    if int(fe.get("hop_length", 256)) != int(head["hop_length"]):
        raise VocosImportError(f"{path}: feature_extractor hop_length {fe.get('hop_length')} differs from the "
                               f"head's {head['hop_length']}")
    return parts


def model_overrides(parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The ``vocos`` variant's build options of a Vocos config (as :func:`read_config` returns it)."""
    fe, b, h = parts["feature_extractor"], parts["backbone"], parts["head"]
    overrides = {"n_mels": int(b["input_channels"]), "dim": int(b["dim"]),
                 "intermediate_dim": int(b["intermediate_dim"]), "num_layers": int(b["num_layers"]),
                 "n_fft": int(h["n_fft"]), "hop_length": int(h["hop_length"]),
                 "sample_rate": int(fe.get("sample_rate", 24000)), "padding": str(h.get("padding", "same"))}
    if b.get("layer_scale_init_value"):
        overrides["layer_scale_init"] = float(b["layer_scale_init_value"])
    return overrides


def vocos_mel_config(parts: dict[str, dict[str, Any]], source: str | Path = "config.yaml") -> MelConfig:
    """The :class:`MelConfig` of Vocos' ``MelSpectrogramFeatures``; :class:`VocosImportError` naming
    what ``MelConfig`` lacks while it cannot express that mel."""
    fe = parts["feature_extractor"]
    sr = int(fe.get("sample_rate", 24000))
    wanted = {"sample_rate": sr, "n_fft": int(fe.get("n_fft", 1024)), "hop_length": int(fe.get("hop_length", 256)),
              "win_length": int(fe.get("n_fft", 1024)), "n_mels": int(fe.get("n_mels", 100)), "fmin": 0.0,
              "fmax": float(sr // 2), "log_base": "e", "clamp": 1e-7, "normalize": "none"}
    # what Vocos' mel is beyond those fields (torchaudio.transforms.MelSpectrogram's defaults + its padding)
    needs = {"framing": f"{fe.get('padding', 'center')} (torch.stft center=True: samples // hop + 1 frames)"
             if fe.get("padding", "center") == "center" else "same (reflect (n_fft - hop) / 2 each side)",
             "mel_scale": "htk", "mel_norm": "none (no Slaney area normalisation)",
             "magnitude": "|STFT| with no +1e-9 floor (power 1)"}
    fields = set(MelConfig.__dataclass_fields__)
    missing = [k for k in ("framing", "mel_scale", "mel_norm") if k not in fields]
    if missing:
        raise VocosImportError(
            f"{source}: ganpipe's MelConfig cannot express Vocos' mel yet; it lacks "
            + "; ".join(f"{k} = {needs[k]}" for k in missing)
            + f" (and a {needs['magnitude']}). Without them every consumer would compute another mel "
            "than the model was trained on, so the import is refused.")
    return MelConfig.from_dict({**wanted, "framing": fe.get("padding", "center"), "mel_scale": "htk",
                                "mel_norm": "none"})


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable / unsafe file: name it
        raise VocosImportError(f"{path}: cannot load the Vocos weights ({type(exc).__name__}: {exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a Lightning checkpoint of VocosExp
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VocosImportError(f"{path}: not a Vocos state dict (a mapping of tensor names to tensors)")
    return state


def vocos_generator(weights: str | Path, config: str | Path) -> tuple[ModelBundle, dict[str, dict[str, Any]]]:
    """A ``vocos`` bundle built from ``config.yaml`` with ``pytorch_model.bin``'s weights loaded."""
    parts = read_config(config)
    try:
        bundle = build("vocos", **model_overrides(parts))
    except ValueError as exc:
        raise VocosImportError(f"{config}: {exc}") from None
    try:
        bundle.generator.load_state_dict(from_vocos_generator(load_state(weights), bundle.generator))
    except WeightMappingError as exc:
        raise VocosImportError(f"{weights}: {exc}") from None
    bundle.generator.eval()
    return bundle, parts


def import_vocos(weights: str | Path, config: str | Path, out: str | Path) -> Path:
    """Write ``out``, a ganpipe generator file of the published Vocos model (``source`` records the
    format, the weights file and its sha256). :class:`VocosImportError` names the file and the reason."""
    bundle, parts = vocos_generator(weights, config)
    mel = vocos_mel_config(parts, config)
    n = mel.n_mels
    stats = {"mean": np.zeros(n, dtype=np.float32), "std": np.ones(n, dtype=np.float32)}  # unnormalised mel
    digest = hashlib.sha256(Path(weights).read_bytes()).hexdigest()
    generator_io.save_generator(out, bundle, bundle.generator, mel, stats, [], step=0, run_id=None,
                                source={"format": FORMAT, "file": Path(weights).name, "sha256": digest,
                                        "steps": None})
    return Path(out)
