"""gemelo-ai/vocos checkpoints -> a ganpipe generator file (``--format vocos``).

Files, as Vocos publishes them (e.g. charactr/vocos-mel-24khz): ``pytorch_model.bin``, the ``Vocos``
module's state dict (``feature_extractor.*``, ``backbone.*``, ``head.*``; a ``VocosExp`` Lightning
checkpoint, ``{"state_dict": ...}``, is read too, its discriminators and loss modules skipped), and
``config.yaml`` with the ``feature_extractor`` / ``backbone`` / ``head`` sections of
``Vocos.from_hparams`` (or the training ``vocos.yaml``, where they sit under ``model.init_args``).
The weights are read with ``torch.load(weights_only=True)``. Supported: the mel Vocos
(``MelSpectrogramFeatures`` + ``VocosBackbone`` without AdaLayerNorm + ``ISTFTHead``) as the
``vocos`` variant; the EnCodec Vocos is refused by name.

Mel: Vocos' ``MelSpectrogramFeatures`` is torchaudio's ``MelSpectrogram`` (Hann window of ``n_fft``,
magnitude ``|X|`` (power 1), HTK mel scale from 0 Hz to ``sample_rate // 2``, filters without area
normalisation) and ``log(max(mel, 1e-7))``, no normalisation (statistics zeros / ones). Its
``padding``: ``center`` (``torch.stft(center=True)``: ``T // hop + 1`` frames) is ganpipe's
``framing: center``; ``same`` (reflect ``(n_fft - hop) // 2`` each side, not centred: ``T // hop``
frames) is ganpipe's ``framing: jik876`` when ``n_fft - hop`` is even (otherwise Vocos pads one
sample less than ganpipe can, and the import is refused). So :class:`~ganpipe.mel.MelConfig`
``framing`` per the padding, ``mel_scale: htk``, ``mel_norm: none``, ``stft_eps: 0``, ``clamp: 1e-7``,
``log_base: e``, ``normalize: none``.

Failures (a missing or unreadable file, a pickle that needs code, a config ganpipe does not have, a
layer that does not fit) raise :class:`ImportModelError` naming the file; the generator file is
written atomically, only after everything succeeded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganpipe.importing.source import ImportedModel, ImportModelError, load_checkpoint, read_yaml
from ganpipe.mel import MelConfig

NAME = "vocos"
_WHAT = "Vocos checkpoint (pytorch_model.bin)"


def _section(config: dict[str, Any], name: str, class_suffix: str, path: Path) -> dict[str, Any]:
    section = config.get(name)
    if not isinstance(section, dict) or not isinstance(section.get("init_args"), dict):
        raise ImportModelError(f"{path}: no {name}.init_args section (not a Vocos config.yaml)")
    cls = str(section.get("class_path", ""))
    if not cls.endswith(class_suffix):
        raise ImportModelError(f"{path}: {name} is {cls!r}; only {class_suffix} is supported "
                               "(the mel Vocos: MelSpectrogramFeatures + VocosBackbone + ISTFTHead)")
    return dict(section["init_args"])


def read_config(path: Path) -> dict[str, dict[str, Any]]:
    """``{"feature_extractor", "backbone", "head"}`` init args of a Vocos ``config.yaml``, checked."""
    config = read_yaml(path, "Vocos config.yaml")
    model = config.get("model")
    if "feature_extractor" not in config and isinstance(model, dict) and isinstance(model.get("init_args"), dict):
        config = model["init_args"]  # the training vocos.yaml (VocosExp's init args)
    parts = {"feature_extractor": _section(config, "feature_extractor", "MelSpectrogramFeatures", path),
             "backbone": _section(config, "backbone", "VocosBackbone", path),
             "head": _section(config, "head", "ISTFTHead", path)}
    if parts["backbone"].get("adanorm_num_embeddings"):
        raise ImportModelError(f"{path}: the backbone uses AdaLayerNorm (adanorm_num_embeddings): the EnCodec "
                               "Vocos is not supported")
    fe, head = parts["feature_extractor"], parts["head"]
    for key in ("dim", "n_fft", "hop_length"):
        if key not in head:
            raise ImportModelError(f"{path}: head.init_args has no {key!r} (ISTFTHead needs it)")
    for key in ("input_channels", "dim", "intermediate_dim", "num_layers"):
        if key not in parts["backbone"]:
            raise ImportModelError(f"{path}: backbone.init_args has no {key!r} (VocosBackbone needs it)")
    if int(fe.get("hop_length", 256)) != int(head["hop_length"]):
        raise ImportModelError(f"{path}: feature_extractor hop_length {fe.get('hop_length', 256)} differs from the "
                               f"head's {head['hop_length']}")
    if int(fe.get("n_mels", 100)) != int(parts["backbone"]["input_channels"]):
        raise ImportModelError(f"{path}: feature_extractor n_mels {fe.get('n_mels', 100)} differs from the "
                               f"backbone's input_channels {parts['backbone']['input_channels']}")
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


def mel_config(parts: dict[str, dict[str, Any]], path: Path) -> MelConfig:
    """The :class:`MelConfig` that computes Vocos' ``MelSpectrogramFeatures`` (see the module doc)."""
    fe = parts["feature_extractor"]
    sr, n_fft, hop = int(fe.get("sample_rate", 24000)), int(fe.get("n_fft", 1024)), int(fe.get("hop_length", 256))
    padding = str(fe.get("padding", "center"))
    if padding == "center":
        framing = "center"
    elif padding == "same" and (n_fft - hop) % 2 == 0:
        framing = "jik876"  # reflect (n_fft - hop) / 2 on both sides, no crop: T // hop frames
    elif padding == "same":
        raise ImportModelError(f"{path}: feature_extractor padding 'same' with n_fft - hop_length = {n_fft - hop} "
                               "(odd): Vocos pads (n_fft - hop) // 2 on both sides, one sample less than "
                               "ganpipe's framings can express")
    else:
        raise ImportModelError(f"{path}: feature_extractor padding {padding!r}: Vocos knows 'center' and 'same'")
    return MelConfig(sample_rate=sr, n_fft=n_fft, hop_length=hop, win_length=n_fft, n_mels=int(fe.get("n_mels", 100)),
                     fmin=0.0, fmax=float(sr // 2), log_base="e", clamp=1e-7, normalize="none", framing=framing,
                     stft_eps=0.0, mel_scale="htk", mel_norm="none")


def _weights(path: Path) -> tuple[dict[str, torch.Tensor], int | None, list[str]]:
    """The ``Vocos`` state dict of ``pytorch_model.bin`` (or of a VocosExp Lightning checkpoint), its
    step count when known, and notes."""
    obj = load_checkpoint(path, _WHAT)
    steps, notes = None, []
    if isinstance(obj.get("state_dict"), dict):  # a VocosExp (Lightning) training checkpoint
        steps = obj["global_step"] if isinstance(obj.get("global_step"), int) else None
        obj = obj["state_dict"]
        notes.append("a VocosExp training checkpoint: its discriminators, loss modules and optimiser states are "
                     "not imported")
    if not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ImportModelError(f"{path}: not a {_WHAT}: not a state dict of tensors (it has "
                               f"{sorted(map(str, obj))[:8]})")
    return obj, steps, notes


def read(checkpoint: Path, config: Path | None = None, stats: Path | None = None,
         discriminator: Path | None = None) -> ImportedModel:
    """``pytorch_model.bin`` + ``config.yaml`` as a ganpipe ``vocos`` bundle."""
    from ganpipe.mlflow_store import file_sha256
    from ganpipe.models import build
    from ganpipe.models.reference_weights import WeightMappingError, from_vocos_generator

    checkpoint = Path(checkpoint)
    if config is None:
        raise ImportModelError(f"{checkpoint}: a Vocos checkpoint needs its config.yaml (--config)")
    if stats is not None:
        raise ImportModelError(f"{stats}: Vocos models use no feature statistics (their mel is not normalised)")
    if discriminator is not None:
        raise ImportModelError(f"{discriminator}: --discriminator is not supported for Vocos (the published "
                               "pytorch_model.bin holds the generator only)")
    config = Path(config)
    state, steps, notes = _weights(checkpoint)
    parts = read_config(config)
    mel = mel_config(parts, config)
    try:
        bundle = build(NAME, **model_overrides(parts))
    except (ValueError, TypeError) as exc:
        raise ImportModelError(f"{config}: its sizes do not make a ganpipe vocos: {exc}") from None
    try:
        bundle.generator.load_state_dict(from_vocos_generator(state, bundle.generator), strict=True)
    except (WeightMappingError, RuntimeError) as exc:
        raise ImportModelError(f"{checkpoint}: {exc}") from None
    bundle.generator.eval()
    zeros = np.zeros(mel.n_mels, dtype=np.float32)
    source = {"format": NAME, "file": str(checkpoint), "sha256": file_sha256(checkpoint), "steps": steps}
    return ImportedModel(bundle, mel, {"mean": zeros, "std": zeros + 1}, source, False,
                         notes + ["generator only: Vocos publishes no discriminator weights"])
