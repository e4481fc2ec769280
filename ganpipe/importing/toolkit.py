"""kan-bayashi/ParallelWaveGAN ("the toolkit") checkpoints: ``checkpoint-XXXXsteps.pkl`` as its trainer
saves it (``{'model': {'generator', 'discriminator'}, 'optimizer', 'scheduler', 'steps', 'epochs'}``),
its ``config.yml`` and the feature statistics ``stats.h5`` / ``stats.npy`` (``mean``, ``scale``), by
default beside the checkpoint, as the toolkit's own ``load_model`` finds them.

Generators: one row of :data:`GENERATORS` per ``generator_type`` (HiFi-GAN, MelGAN -- with
``out_channels`` > 1 the multi-band MelGAN --, Parallel WaveGAN); any other (e.g.
``StyleMelGANGenerator``) is refused. A ``generator_params`` value that ganpipe's model does not
implement (a causal conv, another activation, ...) is refused naming the key. Discriminators: one
row of :data:`DISCRIMINATORS` per ``discriminator_type``; when the checkpoint's discriminator is not
the one ganpipe pairs with the generator (``melgan.v1.yaml`` trains MelGAN against Parallel
WaveGAN's discriminator), the generator is imported alone and a note says so.

Mel: the toolkit's ``logmelfilterbank`` (``center=True`` framing, plain ``|X|``, ``max(1e-10, mel)``,
log10) with its statistics as ganpipe's mean/variance normalisation: ``framing: center``,
``stft_eps: 0``, ``clamp: 1e-10``, ``log_base: "10"``, ``normalize: meanvar``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
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
    read_yaml,
    state_dict_in,
    tuples,
    unsupported,
)
from ganpipe.mel import MelConfig

NAME = "pwg"
_WHAT = "ParallelWaveGAN-toolkit checkpoint"
_LRELU = "LeakyReLU"


def _params(given: dict[str, Any], defaults: dict[str, Any], fixed: dict[str, Any], path: Path,
            where: str) -> dict[str, Any]:
    """``given`` over the toolkit's ``defaults``; keys ganpipe does not know, or ``fixed`` keys with
    another value than ganpipe implements, raise :class:`ImportModelError`."""
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        raise ImportModelError(f"{path}: {where}{', '.join(unknown)}: unknown to ganpipe's import of this model "
                               f"(known: {', '.join(sorted(defaults))})")
    params = {**defaults, **given}
    for key, value in fixed.items():
        if tuples(params[key]) != tuples(value):
            raise unsupported(path, where, key, params[key], value)
    return params


# -- generators ------------------------------------------------------------------------------------
_HIFIGAN_DEFAULTS = {  # the toolkit's HiFiGANGenerator defaults
    "in_channels": 80, "out_channels": 1, "channels": 512, "kernel_size": 7, "upsample_scales": (8, 8, 2, 2),
    "upsample_kernel_sizes": (16, 16, 4, 4), "resblock_kernel_sizes": (3, 7, 11),
    "resblock_dilations": ((1, 3, 5), (1, 3, 5), (1, 3, 5)), "use_additional_convs": True, "bias": True,
    "nonlinear_activation": _LRELU, "nonlinear_activation_params": {"negative_slope": 0.1},
    "use_causal_conv": False, "use_weight_norm": True,
}
_HIFIGAN_FIXED = {"out_channels": 1, "kernel_size": 7, "bias": True, "nonlinear_activation": _LRELU,
                  "nonlinear_activation_params": {"negative_slope": 0.1}, "use_causal_conv": False}

_MELGAN_DEFAULTS = {  # MelGANGenerator
    "in_channels": 80, "out_channels": 1, "kernel_size": 7, "channels": 512, "bias": True,
    "upsample_scales": (8, 8, 2, 2), "stack_kernel_size": 3, "stacks": 3, "nonlinear_activation": _LRELU,
    "nonlinear_activation_params": {"negative_slope": 0.2}, "pad": "ReflectionPad1d", "pad_params": {},
    "use_final_nonlinear_activation": True, "use_weight_norm": True, "use_causal_conv": False,
}
_MELGAN_FIXED = {"kernel_size": 7, "bias": True, "stack_kernel_size": 3, "nonlinear_activation": _LRELU,
                 "nonlinear_activation_params": {"negative_slope": 0.2}, "pad": "ReflectionPad1d", "pad_params": {},
                 "use_final_nonlinear_activation": True, "use_causal_conv": False}

_PWG_DEFAULTS = {  # ParallelWaveGANGenerator
    "in_channels": 1, "out_channels": 1, "kernel_size": 3, "layers": 30, "stacks": 3, "residual_channels": 64,
    "gate_channels": 128, "skip_channels": 64, "aux_channels": 80, "aux_context_window": 2, "dropout": 0.0,
    "bias": True, "use_weight_norm": True, "use_causal_conv": False, "upsample_conditional_features": True,
    "upsample_net": "ConvInUpsampleNetwork", "upsample_params": {"upsample_scales": (4, 4, 4, 4)},
}
_PWG_FIXED = {"in_channels": 1, "out_channels": 1, "dropout": 0.0, "bias": True, "use_causal_conv": False,
              "upsample_conditional_features": True, "upsample_net": "ConvInUpsampleNetwork"}
_PWG_UPSAMPLE_DEFAULTS = {"upsample_scales": (4, 4, 4, 4), "nonlinear_activation": None,
                          "nonlinear_activation_params": {}, "interpolate_mode": "nearest", "freq_axis_kernel_size": 1,
                          "use_causal_conv": False}
_PWG_UPSAMPLE_FIXED = {"nonlinear_activation": None, "nonlinear_activation_params": {}, "interpolate_mode": "nearest",
                       "freq_axis_kernel_size": 1, "use_causal_conv": False}
_PQMF_DEFAULTS = {"taps": 62, "cutoff_ratio": 0.142, "beta": 9.0}  # the toolkit's PQMF
_PQMF_BEFORE_0_4_3 = {"taps": 62, "cutoff_ratio": 0.15, "beta": 9.0}  # what load_model uses for versions <= 0.4.2


@dataclass(frozen=True)
class _Generator:
    """What a toolkit generator is in ganpipe: our variant, its overrides, and the function of
    ganpipe.models.reference_weights that maps its weights."""

    variant: str
    overrides: dict[str, Any]
    mapper: str


def _common(config: dict[str, Any]) -> dict[str, Any]:
    return {"hop_length": int(config["hop_size"]), "sample_rate": int(config["sampling_rate"])}


def _hifigan(config: dict[str, Any], given: dict[str, Any], path: Path) -> _Generator:
    p = _params(given, _HIFIGAN_DEFAULTS, _HIFIGAN_FIXED, path, "generator_params.")
    overrides = {
        "resblock": "1" if p["use_additional_convs"] else "2", "upsample_rates": tuples(p["upsample_scales"]),
        "upsample_kernel_sizes": tuples(p["upsample_kernel_sizes"]), "upsample_initial_channel": p["channels"],
        "resblock_kernel_sizes": tuples(p["resblock_kernel_sizes"]),
        "resblock_dilation_sizes": tuples(p["resblock_dilations"]), "n_mels": p["in_channels"], **_common(config),
    }
    variant = choose_variant(("hifigan_v1", "hifigan_v2", "hifigan_v3"), overrides,
                             "hifigan_v1" if overrides["resblock"] == "1" else "hifigan_v3")
    return _Generator(variant, overrides, "from_toolkit_hifigan_generator")


def _version(text: Any) -> tuple[int, ...]:
    parts = []
    for part in str(text).split("."):
        digits = "".join(ch for ch in part if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _melgan(config: dict[str, Any], given: dict[str, Any], path: Path) -> _Generator:
    p = _params(given, _MELGAN_DEFAULTS, _MELGAN_FIXED, path, "generator_params.")
    scales = tuples(p["upsample_scales"])
    common = {"n_mels": p["in_channels"], "residual_stacks": p["stacks"], **_common(config)}
    if p["out_channels"] == 1:
        if p["channels"] % 2 ** len(scales):
            raise ImportModelError(f"{path}: generator_params.channels={p['channels']} is not divisible by "
                                   f"2**{len(scales)}: not a MelGAN ganpipe can build")
        return _Generator("melgan", {"ngf": p["channels"] // 2 ** len(scales), "upsample_rates": scales, **common},
                          "from_toolkit_melgan_generator")
    defaults = _PQMF_BEFORE_0_4_3 if _version(config.get("version", "0.1.0")) <= (0, 4, 2) else _PQMF_DEFAULTS
    pqmf = _params(config.get("pqmf_params") or {}, defaults, {}, path, "pqmf_params.")
    return _Generator("multiband_melgan", {
        "channels": p["channels"], "upsample_scales": scales, "subbands": p["out_channels"], "pqmf_taps": pqmf["taps"],
        "pqmf_cutoff_ratio": pqmf["cutoff_ratio"], "pqmf_beta": pqmf["beta"], **common},
        "from_toolkit_multiband_melgan_generator")  # the MelGAN body plus its PQMF


def _pwg(config: dict[str, Any], given: dict[str, Any], path: Path) -> _Generator:
    p = _params(given, _PWG_DEFAULTS, _PWG_FIXED, path, "generator_params.")
    up = _params(p["upsample_params"], _PWG_UPSAMPLE_DEFAULTS, _PWG_UPSAMPLE_FIXED, path,
                 "generator_params.upsample_params.")
    return _Generator("parallel_wavegan", {
        "layers": p["layers"], "stacks": p["stacks"], "kernel_size": p["kernel_size"],
        "residual_channels": p["residual_channels"], "gate_channels": p["gate_channels"],
        "skip_channels": p["skip_channels"], "aux_context_window": p["aux_context_window"],
        "upsample_scales": tuples(up["upsample_scales"]), "n_mels": p["aux_channels"], **_common(config)},
        "from_toolkit_pwg_generator")


# generator_type -> how to import it (the variant comes from the params: MelGAN with bands is multi-band)
GENERATORS: dict[str, Callable[[dict[str, Any], dict[str, Any], Path], _Generator]] = {
    "HiFiGANGenerator": _hifigan,
    "MelGANGenerator": _melgan,
    "ParallelWaveGANGenerator": _pwg,
}


# -- discriminators --------------------------------------------------------------------------------
def _hifigan_discriminator(p: dict[str, Any]) -> dict[str, Any]:
    scale = p.get("scale_discriminator_params", {})
    period = p.get("period_discriminator_params", {})
    kernels = period.get("kernel_sizes", (5, 3))
    channels = scale.get("channels", 128)  # ganpipe scales the published channel counts by one divisor;
    divisor = 128 // channels if channels and 128 % channels == 0 else 1  # the weights' shapes check it
    return {"discriminator_channel_divisor": divisor, "msd_scales": p.get("scales", 3),
            "msd_strides": tuples(scale.get("downsample_scales", (2, 2, 4, 4, 1))),
            "mpd_periods": tuples(p.get("periods", (2, 3, 5, 7, 11))), "mpd_post_kernel": kernels[1] - 1}


def _melgan_discriminator(p: dict[str, Any]) -> dict[str, Any]:
    return {"discriminator_scales": p.get("scales", 3), "discriminator_channels": p.get("channels", 16),
            "discriminator_max_channels": p.get("max_downsample_channels", 1024),
            "discriminator_downsample_scales": tuples(p.get("downsample_scales", (4, 4, 4, 4)))}


def _pwg_discriminator(p: dict[str, Any]) -> dict[str, Any]:
    return {"discriminator_layers": p.get("layers", 10), "discriminator_channels": p.get("conv_channels", 64),
            "discriminator_kernel_size": p.get("kernel_size", 3)}


@dataclass(frozen=True)
class _DiscriminatorType:
    variants: tuple[str, ...]  # the ganpipe variants whose discriminators these are
    overrides: Callable[[dict[str, Any]], dict[str, Any]]
    mapper: str


DISCRIMINATORS: dict[str, _DiscriminatorType] = {
    "HiFiGANMultiScaleMultiPeriodDiscriminator": _DiscriminatorType(
        ("hifigan_v1", "hifigan_v2", "hifigan_v3"), _hifigan_discriminator, "from_toolkit_hifigan_discriminator"),
    "MelGANMultiScaleDiscriminator": _DiscriminatorType(
        ("melgan", "multiband_melgan"), _melgan_discriminator, "from_toolkit_melgan_discriminator"),
    "ParallelWaveGANDiscriminator": _DiscriminatorType(
        ("parallel_wavegan",), _pwg_discriminator, "from_toolkit_pwg_discriminator"),
}


# -- mel and statistics ----------------------------------------------------------------------------
def mel_config(config: dict[str, Any], path: Path) -> MelConfig:
    """The toolkit's ``logmelfilterbank`` as a ganpipe mel (see module doc)."""
    if config.get("sampling_rate_for_feats") is not None:
        raise unsupported(path, "", "sampling_rate_for_feats", config["sampling_rate_for_feats"], None)
    window = config.get("window", "hann")
    if window != "hann":
        raise unsupported(path, "", "window", window, "hann")
    sr = int(config_value(config, "sampling_rate", path))
    n_fft = int(config_value(config, "fft_size", path))
    fmin, fmax = config.get("fmin"), config.get("fmax")
    return MelConfig(sample_rate=sr, n_fft=n_fft, hop_length=int(config_value(config, "hop_size", path)),
                     win_length=int(config.get("win_length") or n_fft),
                     n_mels=int(config_value(config, "num_mels", path)),
                     fmin=float(fmin or 0.0), fmax=float(sr / 2 if fmax is None else fmax), log_base="10",
                     clamp=1e-10, normalize="meanvar", framing="center", stft_eps=0.0)


def read_stats(path: Path, n_mels: int) -> dict[str, np.ndarray]:
    """``mean`` / ``scale`` of a ``stats.h5`` (datasets ``mean``, ``scale``) or ``stats.npy`` (``[mean, scale]``)."""
    if not path.is_file():
        raise ImportModelError(f"{path}: feature statistics not found (the toolkit's models take normalised mels): "
                               "give --stats stats.h5|stats.npy")
    if path.suffix == ".h5":
        try:
            import h5py
        except ImportError:
            raise ImportModelError(f"{path}: reading .h5 statistics needs h5py (pip install h5py), or give "
                                   "--stats stats.npy ([mean, scale], as the toolkit's npy format)") from None
        try:
            with h5py.File(path, "r") as f:
                mean, scale = np.asarray(f["mean"][()]), np.asarray(f["scale"][()])
        except (OSError, KeyError) as exc:
            raise ImportModelError(f"{path}: not the toolkit's statistics (datasets 'mean' and 'scale'): "
                                   f"{exc}") from None
    elif path.suffix == ".npy":
        try:
            both = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ImportModelError(f"{path}: not a .npy array: {exc}") from None
        if both.ndim < 1 or both.shape[0] != 2:
            raise ImportModelError(f"{path}: expected [mean, scale] (shape (2, n_mels)), got shape {both.shape}")
        mean, scale = both[0], both[1]
    else:
        raise ImportModelError(f"{path}: statistics must be stats.h5 or stats.npy")
    mean, scale = mean.reshape(-1).astype(np.float32), scale.reshape(-1).astype(np.float32)
    if mean.shape != (n_mels,) or scale.shape != (n_mels,):
        raise ImportModelError(f"{path}: statistics of {mean.size} / {scale.size} bins, the config's num_mels is "
                               f"{n_mels}")
    if not (np.isfinite(mean).all() and np.isfinite(scale).all() and (scale > 0).all()):
        raise ImportModelError(f"{path}: statistics hold non-finite values or a scale <= 0")
    return {"mean": mean, "std": scale}


# -- the import ------------------------------------------------------------------------------------
def read(checkpoint: Path, config: Path | None = None, stats: Path | None = None,
         discriminator: Path | None = None) -> ImportedModel:
    from ganpipe.models import reference_weights as rw

    checkpoint = Path(checkpoint)
    if discriminator is not None:
        raise ImportModelError(f"{discriminator}: the toolkit keeps the discriminator in the checkpoint itself "
                               "(--discriminator is for --format jik876)")
    config = Path(config) if config is not None else checkpoint.parent / "config.yml"
    obj = load_checkpoint(checkpoint, _WHAT)
    generator_state = state_dict_in(obj, ("model", "generator"), checkpoint, _WHAT)
    cfg = read_yaml(config, "ParallelWaveGAN-toolkit config")
    mel = mel_config(cfg, config)
    g_type = cfg.get("generator_type", "ParallelWaveGANGenerator")
    if g_type not in GENERATORS:
        raise ImportModelError(f"{config}: generator_type {g_type} is not supported: ganpipe has no such model "
                               f"(supported: {', '.join(GENERATORS)})")
    given = {k.replace("upsample_kernal_sizes", "upsample_kernel_sizes"): v  # the toolkit's typo #295
             for k, v in (config_value(cfg, "generator_params", config) or {}).items()}
    generator = GENERATORS[g_type](cfg, given, config)
    variant, overrides = generator.variant, generator.overrides
    if overrides["n_mels"] != mel.n_mels:
        raise ImportModelError(f"{config}: the generator takes {overrides['n_mels']} mel bins, "
                               f"num_mels is {mel.n_mels}")
    notes: list[str] = []
    if float(cfg.get("global_gain_scale", 1.0) or 1.0) != 1.0:
        notes.append(f"trained on audio scaled by global_gain_scale={cfg['global_gain_scale']}: its output is too")
    d_type = cfg.get("discriminator_type", "ParallelWaveGANDiscriminator")
    d_row = DISCRIMINATORS.get(d_type)
    discriminator_state = None
    if d_row is None or variant not in d_row.variants:
        notes.append(f"discriminator not imported: the checkpoint's {d_type} is not the discriminator of ganpipe's "
                     f"{variant}")
    elif not isinstance(obj["model"].get("discriminator"), dict):
        notes.append("discriminator not imported: the checkpoint holds none")
    else:
        discriminator_state = state_dict_in(obj, ("model", "discriminator"), checkpoint, _WHAT)
        overrides.update(d_row.overrides(cfg.get("discriminator_params") or {}))
    stats_path = Path(stats) if stats is not None else \
        checkpoint.parent / f"stats.{'h5' if cfg.get('format', 'hdf5') == 'hdf5' else 'npy'}"
    statistics = read_stats(stats_path, mel.n_mels)
    bundle = build_bundle(variant, overrides, config)
    mapper = getattr(rw, generator.mapper)
    load_mapped(bundle.generator, mapper, checkpoint, generator_state)
    if discriminator_state is not None:
        load_mapped(bundle.discriminators, getattr(rw, d_row.mapper), checkpoint, discriminator_state)
    from ganpipe.mlflow_store import file_sha256

    steps = obj.get("steps")
    source = {"format": NAME, "file": str(checkpoint), "sha256": file_sha256(checkpoint),
              "steps": int(steps) if isinstance(steps, int) and not isinstance(steps, bool) else None}
    return ImportedModel(bundle, mel, statistics, source, discriminator_state is not None, notes)
