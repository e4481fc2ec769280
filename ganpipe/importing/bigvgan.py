"""NVIDIA/BigVGAN checkpoints -> a ganpipe generator file (``--format bigvgan``).

Files, as BigVGAN's train.py and its Hugging Face uploads name them: ``bigvgan_generator.pt``
(``{'generator': state dict}``, with or without weight norm; its anti-aliasing filter buffers are
checked, not copied), the training ``config.json``, and optionally ``bigvgan_discriminator_optimizer.pt``
(``mpd``, ``mrd`` — the sub-band CQT discriminator when the config says ``use_cqtd_instead_of_mrd`` —
``optim_g``, ``optim_d``, ``steps``, ``epoch``; only the discriminators' weights and ``steps`` are
kept). Every file is read with ``torch.load(weights_only=True)``.

Variant: ``bigvgan_v2`` when the config uses the CQT discriminator, else ``bigvgan_base`` (UnivNet's
MRD, BigVGAN v1), each with the config's sizes as overrides. Mel: BigVGAN's ``get_mel_spectrogram``
is jik876's (``n_fft``, ``hop_size``, ``win_size``, ``num_mels``, ``fmin``, ``fmax``; Hann window,
reflect padding of (n_fft - hop) / 2, magnitude ``sqrt(re^2 + im^2 + 1e-9)``, Slaney filters, natural
log of max(mel, 1e-5), no normalisation): ganpipe's :class:`~ganpipe.mel.MelConfig` with these values.

Failures (a missing or unreadable file, a pickle that needs code, a config or discriminator ganpipe
does not have, a layer that does not fit) raise :class:`ImportModelError` naming the file; the
generator file is written atomically, only after everything succeeded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganpipe.importing.source import ImportedModel, ImportModelError, load_checkpoint, read_json, state_dict_in
from ganpipe.mel import MelConfig

NAME = "bigvgan"
# ganpipe BigVGANConfig field <- config.json key (with BigVGAN's default where the key may be absent)
_REQUIRED = {"resblock": "resblock", "upsample_rates": "upsample_rates",
             "upsample_kernel_sizes": "upsample_kernel_sizes",
             "upsample_initial_channel": "upsample_initial_channel", "resblock_kernel_sizes": "resblock_kernel_sizes",
             "resblock_dilation_sizes": "resblock_dilation_sizes", "activation": "activation",
             "snake_logscale": "snake_logscale", "n_mels": "num_mels", "hop_length": "hop_size",
             "sample_rate": "sampling_rate"}
_OPTIONAL = {"use_tanh_at_final": ("use_tanh_at_final", True), "use_bias_at_final": ("use_bias_at_final", True),
             "mpd_periods": ("mpd_reshapes", [2, 3, 5, 7, 11])}
_CQTD = {"cqtd_filters": 32, "cqtd_max_filters": 1024, "cqtd_filters_scale": 1, "cqtd_dilations": [1, 2, 4],
         "cqtd_hop_lengths": [512, 256, 256], "cqtd_n_octaves": [9, 9, 9], "cqtd_bins_per_octaves": [24, 36, 48],
         "cqtd_normalize_volume": False}  # MultiScaleSubbandCQTDiscriminator's defaults


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def model_overrides(config: dict[str, Any], path: Path) -> tuple[str, dict[str, Any]]:
    """``(variant, overrides for ganpipe.models.build)`` of a BigVGAN ``config.json``."""
    missing = sorted(theirs for theirs in _REQUIRED.values() if theirs not in config)
    if missing:
        raise ImportModelError(f"{path}: not a BigVGAN config: missing {', '.join(missing)}")
    overrides = {ours: _tuples(config[theirs]) for ours, theirs in _REQUIRED.items()}
    overrides["resblock"] = str(overrides["resblock"])
    overrides.update({ours: _tuples(config.get(theirs, default)) for ours, (theirs, default) in _OPTIONAL.items()})
    if config.get("use_mbd_instead_of_mrd"):
        raise ImportModelError(f"{path}: use_mbd_instead_of_mrd: BigVGAN's multi-band discriminator is not a "
                                 "ganpipe discriminator (bigvgan_v2 has the CQT one, bigvgan_base the MRD)")
    if config.get("use_spectral_norm"):
        raise ImportModelError(f"{path}: use_spectral_norm: true is not supported (the published configs use "
                                 "weight norm)")
    mult = float(config.get("discriminator_channel_mult", 1))
    divisor = round(1 / mult) if mult > 0 else 0
    if divisor < 1 or abs(divisor * mult - 1) > 1e-9:
        raise ImportModelError(f"{path}: discriminator_channel_mult {mult}: only 1 (the published value) or 1 / n "
                                 "is supported")
    overrides["discriminator_channel_divisor"] = divisor
    if config.get("use_cqtd_instead_of_mrd"):
        variant = "bigvgan_v2"
        overrides.update({key: _tuples(config.get(key, default)) for key, default in _CQTD.items()})
    else:
        variant = "bigvgan_base"
        overrides["mrd_resolutions"] = _tuples(config.get("resolutions", [[1024, 120, 600], [2048, 240, 1200],
                                                                          [512, 50, 240]]))
    return variant, overrides


def mel_config(config: dict[str, Any], path: Path) -> MelConfig:
    """The mel BigVGAN's generator takes (``meldataset.get_mel_spectrogram``: ``fmax``, not ``fmax_for_loss``)."""
    try:
        sr = int(config["sampling_rate"])
        fmax = config.get("fmax")
        return MelConfig(sample_rate=sr, n_fft=int(config["n_fft"]), hop_length=int(config["hop_size"]),
                         win_length=int(config["win_size"]), n_mels=int(config["num_mels"]),
                         fmin=float(config.get("fmin") or 0.0), fmax=float(sr / 2 if fmax is None else fmax),
                         log_base="e", clamp=1e-5, normalize="none", framing="jik876")
    except KeyError as exc:
        raise ImportModelError(f"{path}: not a BigVGAN config: missing {exc.args[0]}") from None


def read(checkpoint: Path, config: Path | None = None, stats: Path | None = None,
         discriminator: Path | None = None) -> ImportedModel:
    """``bigvgan_generator.pt`` (+ ``config.json``, + ``bigvgan_discriminator_optimizer.pt``) as a ganpipe bundle."""
    from ganpipe.mlflow_store import file_sha256
    from ganpipe.models import build
    from ganpipe.models import reference_weights as rw

    checkpoint = Path(checkpoint)
    if config is None:
        raise ImportModelError(f"{checkpoint}: a BigVGAN checkpoint needs its config.json (--config)")
    if stats is not None:
        raise ImportModelError(f"{stats}: BigVGAN models use no feature statistics")
    config = Path(config)
    what = "BigVGAN generator (bigvgan_generator.pt)"
    generator_state = state_dict_in(load_checkpoint(checkpoint, what), ("generator",), checkpoint, what)
    cfg = read_json(config, "BigVGAN config.json")
    variant, overrides = model_overrides(cfg, config)
    mel = mel_config(cfg, config)
    try:
        bundle = build(variant, **overrides)
    except (ValueError, TypeError) as exc:
        raise ImportModelError(f"{config}: its sizes do not make a ganpipe {variant}: {exc}") from None

    def load(module: torch.nn.Module, mapping: Any, path: Path, *states: Any) -> None:
        try:
            module.load_state_dict(mapping(*states, module), strict=True)
        except (rw.WeightMappingError, RuntimeError) as exc:
            raise ImportModelError(f"{path}: {exc}") from None

    load(bundle.generator, rw.from_bigvgan_generator, checkpoint, generator_state)
    steps, notes = None, []
    if discriminator is not None:
        discriminator = Path(discriminator)
        what = "BigVGAN discriminator checkpoint (bigvgan_discriminator_optimizer.pt)"
        do = load_checkpoint(discriminator, what)
        mpd, mrd = (state_dict_in(do, (key,), discriminator, what) for key in ("mpd", "mrd"))
        load(bundle.discriminators, rw.from_bigvgan_discriminators, discriminator, mpd, mrd)
        steps = int(do["steps"]) if isinstance(do.get("steps"), int) else None
        notes.append("discriminators imported; the optimiser states (optim_g, optim_d) are not")
    else:
        notes.append("no discriminator checkpoint (bigvgan_discriminator_optimizer.pt) given: generator only")
    zeros = np.zeros(mel.n_mels, dtype=np.float32)
    source = {"format": NAME, "file": str(checkpoint), "sha256": file_sha256(checkpoint), "steps": steps}
    return ImportedModel(bundle, mel, {"mean": zeros, "std": zeros + 1}, source, discriminator is not None, notes)
