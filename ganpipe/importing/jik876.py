"""jik876/hifi-gan checkpoints: ``g_XXXXXXXX`` (``{'generator': state dict}``, weight norm's old
``weight_g`` / ``weight_v`` names), optionally ``do_XXXXXXXX`` (``mpd``, ``msd``, the optimisers,
``steps``, ``epoch``), and the training ``config.json``.

Architecture: ``resblock``, ``upsample_rates``, ``upsample_kernel_sizes``,
``upsample_initial_channel``, ``resblock_kernel_sizes``, ``resblock_dilation_sizes``,
``num_mels``, ``hop_size``, ``sampling_rate`` -> :class:`ganpipe.models.hifigan.HiFiGANConfig`; the
variant is the one whose reference sizes these are (V1/V2/V3), else ``hifigan_v1`` (ResBlock1) or
``hifigan_v3`` (ResBlock2) with these sizes. Mel: the one of its ``inference.py`` (``n_fft``,
``hop_size``, ``win_size``, ``num_mels``, ``fmin``, ``fmax``; natural log, clamp 1e-5, no
normalisation; ganpipe's magnitude, and its framing applied to the whole waveform: ``framing: jik876``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ganpipe.importing.source import (
    ImportedModel,
    ImportModelError,
    build_bundle,
    choose_variant,
    config_value,
    load_checkpoint,
    load_mapped,
    read_json,
    state_dict_in,
    tuples,
)
from ganpipe.mel import MelConfig

NAME = "jik876"
_GENERATOR_KEYS = {  # ganpipe HiFiGANConfig field <- config.json key
    "resblock": "resblock", "upsample_rates": "upsample_rates", "upsample_kernel_sizes": "upsample_kernel_sizes",
    "upsample_initial_channel": "upsample_initial_channel", "resblock_kernel_sizes": "resblock_kernel_sizes",
    "resblock_dilation_sizes": "resblock_dilation_sizes", "n_mels": "num_mels", "hop_length": "hop_size",
    "sample_rate": "sampling_rate",
}
_VARIANTS = ("hifigan_v1", "hifigan_v2", "hifigan_v3")


def model_overrides(config: dict[str, Any], path: Path) -> tuple[str, dict[str, Any]]:
    """``(variant, overrides for ganpipe.models.build)`` of a jik876 ``config.json``."""
    overrides = {ours: tuples(config_value(config, theirs, path)) for ours, theirs in _GENERATOR_KEYS.items()}
    overrides["resblock"] = str(overrides["resblock"])
    return choose_variant(_VARIANTS, overrides, "hifigan_v1" if overrides["resblock"] == "1" else "hifigan_v3"), \
        overrides


def mel_config(config: dict[str, Any], path: Path) -> MelConfig:
    """The mel of jik876's ``inference.py`` / ``meldataset.mel_spectrogram`` (``fmax``, not ``fmax_for_loss``)."""
    sr = int(config_value(config, "sampling_rate", path))
    fmax = config_value(config, "fmax", path)
    return MelConfig(sample_rate=sr, n_fft=int(config_value(config, "n_fft", path)),
                     hop_length=int(config_value(config, "hop_size", path)),
                     win_length=int(config_value(config, "win_size", path)),
                     n_mels=int(config_value(config, "num_mels", path)),
                     fmin=float(config_value(config, "fmin", path) or 0.0),
                     fmax=float(sr / 2 if fmax is None else fmax), log_base="e", clamp=1e-5, normalize="none",
                     framing="jik876")


def _steps(generator_file: Path, do: dict[str, Any] | None) -> int | None:
    if do is not None and isinstance(do.get("steps"), int):
        return int(do["steps"])
    m = re.fullmatch(r"g_(\d+)", generator_file.name)  # train.py names it g_{steps:08d}
    return int(m.group(1)) if m else None


def read(checkpoint: Path, config: Path | None = None, stats: Path | None = None,
         discriminator: Path | None = None) -> ImportedModel:
    from ganpipe.models import reference_weights as rw

    if config is None:
        raise ImportModelError(f"{checkpoint}: a jik876 checkpoint needs its training config: --config config.json")
    if stats is not None:
        raise ImportModelError(f"{stats}: jik876 models use no feature statistics (--stats is for --format pwg)")
    checkpoint, config = Path(checkpoint), Path(config)
    obj = load_checkpoint(checkpoint, "jik876 generator checkpoint (g_XXXXXXXX)")
    generator_state = state_dict_in(obj, ("generator",), checkpoint, "jik876 generator checkpoint (g_XXXXXXXX)")
    cfg = read_json(config, "jik876 config")
    variant, overrides = model_overrides(cfg, config)
    mel = mel_config(cfg, config)
    bundle = build_bundle(variant, overrides, config)
    load_mapped(bundle.generator, rw.from_jik876_generator, checkpoint, generator_state)
    do = None
    if discriminator is not None:
        discriminator = Path(discriminator)
        do = load_checkpoint(discriminator, "jik876 discriminator checkpoint (do_XXXXXXXX)")
        mpd = state_dict_in(do, ("mpd",), discriminator, "jik876 discriminator checkpoint (do_XXXXXXXX)")
        msd = state_dict_in(do, ("msd",), discriminator, "jik876 discriminator checkpoint (do_XXXXXXXX)")
        load_mapped(bundle.discriminators, rw.from_jik876_discriminators, discriminator, mpd, msd)
    from ganpipe.mlflow_store import file_sha256

    zeros = np.zeros(mel.n_mels, dtype=np.float32)
    source = {"format": NAME, "file": str(checkpoint), "sha256": file_sha256(checkpoint),
              "steps": _steps(checkpoint, do)}
    notes = [] if do is not None else ["no --discriminator (do_XXXXXXXX) given: generator only"]
    return ImportedModel(bundle, mel, {"mean": zeros, "std": zeros + 1}, source, do is not None, notes)
