"""The model registry: variant name + overrides -> :class:`~ganpipe.models.bundle.ModelBundle`.

Every variant has a frozen config dataclass holding the reference hyper-parameters; keyword
overrides replace fields (lists become tuples) and are validated by the config itself.
:data:`TINY_OVERRIDES` shrinks each variant (channels / layers, never the hop length or output
shape) so that tests can train every variant for a few CPU steps.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from .bigvgan import BIGVGAN_BASE, BIGVGAN_V2, BigVGANConfig, BigVGANGenerator, build_discriminators
from .bundle import AdversarialLoss, ModelBundle, TensorSpec, VariantDescription
from .catalogue import VARIANT_NAMES
from .conditioning_options import ClassConditioningOptions, SpeakerConditioningOptions
from .hifigan import (
    HIFIGAN_V1,
    HIFIGAN_V2,
    HIFIGAN_V3,
    HiFiGANConfig,
    HiFiGANGenerator,
    MultiPeriodDiscriminator,
    MultiScaleDiscriminator,
)
from .mel_mlp_gan import MelMLPDiscriminator, MelMLPGANConfig, MelMLPGenerator
from .melgan import MelGANConfig, MelGANGenerator, MelGANMultiScaleDiscriminator
from .multiband_melgan import MultiBandMelGANConfig, MultiBandMelGANGenerator
from .parallel_wavegan import ParallelWaveGANConfig, ParallelWaveGANDiscriminator, ParallelWaveGANGenerator
from .specgan import SpecGANConfig, SpecGANDiscriminator, SpecGANGenerator
from .vocos import MultiResolutionDiscriminator, VocosConfig, VocosGenerator, VocosMultiPeriodDiscriminator
from .wavegan import WaveGANConfig, WaveGANDiscriminator, WaveGANGenerator


def _vocoder_bundle(
    variant: str,
    config: Any,
    generator: nn.Module,
    discriminators: dict[str, nn.Module],
    loss: AdversarialLoss,
    description: VariantDescription,
) -> ModelBundle:
    options: SpeakerConditioningOptions = config
    return ModelBundle(
        variant=variant,
        kind="vocoder",
        generator=generator,
        discriminators=nn.ModuleDict(discriminators),
        sample_rate=config.sample_rate,
        hop_length=config.hop_length,
        min_frames=generator.min_frames,
        input_spec=TensorSpec("mel", (config.n_mels, None)),
        output_spec=TensorSpec("waveform", (1, None)),
        conditioning="speaker" if options.n_speakers else "none",
        n_classes=options.n_speakers,
        discriminator_uses_labels=options.discriminator_projection,
        discriminator_classifies=options.discriminator_aux_classifier,
        adversarial_loss=loss,
        config=dataclasses.asdict(config),
        description=description,
    )


def _latent_bundle(
    variant: str,
    config: Any,
    generator: nn.Module,
    discriminators: dict[str, nn.Module],
    output_spec: TensorSpec,
    loss: AdversarialLoss,
    description: VariantDescription,
) -> ModelBundle:
    options: ClassConditioningOptions = config
    return ModelBundle(
        variant=variant,
        kind="unconditional",
        generator=generator,
        discriminators=nn.ModuleDict(discriminators),
        sample_rate=config.sample_rate,
        hop_length=None,
        min_frames=None,
        input_spec=TensorSpec("latent", (config.latent_dim,)),
        output_spec=output_spec,
        conditioning="class" if options.n_classes else "none",
        n_classes=options.n_classes,
        discriminator_uses_labels=options.discriminator_projection,
        discriminator_classifies=options.discriminator_aux_classifier,
        adversarial_loss=loss,
        config=dataclasses.asdict(config),
        description=description,
    )


def _hifigan(variant: str, config: HiFiGANConfig, description: VariantDescription) -> ModelBundle:
    conditioning = config.discriminator_conditioning()
    divisor = config.discriminator_channel_divisor
    return _vocoder_bundle(
        variant,
        config,
        HiFiGANGenerator(config),
        {
            "mpd": MultiPeriodDiscriminator(config.mpd_periods, conditioning, divisor, config.mpd_post_kernel),
            "msd": MultiScaleDiscriminator(config.msd_scales, conditioning, divisor, config.msd_strides),
        },
        "lsgan",
        description,
    )


def _bigvgan(variant: str, config: BigVGANConfig, description: VariantDescription) -> ModelBundle:
    return _vocoder_bundle(variant, config, BigVGANGenerator(config), build_discriminators(config), "lsgan",
                           description)


def _melgan(variant: str, config: MelGANConfig, description: VariantDescription) -> ModelBundle:
    discriminator = MelGANMultiScaleDiscriminator(
        config.discriminator_scales,
        config.discriminator_conditioning(),
        config.discriminator_channels,
        config.discriminator_max_channels,
        config.discriminator_downsample_scales,
    )
    return _vocoder_bundle(variant, config, MelGANGenerator(config), {"msd": discriminator}, "hinge", description)


def _multiband_melgan(variant: str, config: MultiBandMelGANConfig, description: VariantDescription) -> ModelBundle:
    discriminator = MelGANMultiScaleDiscriminator(
        config.discriminator_scales,
        config.discriminator_conditioning(),
        config.discriminator_channels,
        config.discriminator_max_channels,
        config.discriminator_downsample_scales,
    )
    return _vocoder_bundle(variant, config, MultiBandMelGANGenerator(config), {"msd": discriminator}, "lsgan",
                           description)


def _parallel_wavegan(variant: str, config: ParallelWaveGANConfig, description: VariantDescription) -> ModelBundle:
    discriminator = ParallelWaveGANDiscriminator(
        config.discriminator_conditioning(),
        config.discriminator_layers,
        config.discriminator_channels,
        config.discriminator_kernel_size,
    )
    return _vocoder_bundle(variant, config, ParallelWaveGANGenerator(config), {"pwg": discriminator}, "lsgan",
                           description)


def _vocos(variant: str, config: VocosConfig, description: VariantDescription) -> ModelBundle:
    conditioning = config.discriminator_conditioning()
    divisor = config.discriminator_channel_divisor
    return _vocoder_bundle(
        variant,
        config,
        VocosGenerator(config),
        {
            "mpd": VocosMultiPeriodDiscriminator(config.mpd_periods, conditioning, divisor),
            "mrd": MultiResolutionDiscriminator(config.mrd_fft_sizes, conditioning,
                                                max(1, config.mrd_channels // divisor)),
        },
        "hinge-relu",
        description,
    )


def _wavegan(variant: str, config: WaveGANConfig, description: VariantDescription) -> ModelBundle:
    return _latent_bundle(
        variant,
        config,
        WaveGANGenerator(config),
        {"wavegan": WaveGANDiscriminator(config)},
        TensorSpec("waveform", (1, config.output_length)),
        "wgan-gp",
        description,
    )


def _specgan(variant: str, config: SpecGANConfig, description: VariantDescription) -> ModelBundle:
    size = config.image_size
    return _latent_bundle(
        variant,
        config,
        SpecGANGenerator(config),
        {"specgan": SpecGANDiscriminator(config)},
        TensorSpec("log_magnitude", (1, size, size)),
        "wgan-gp",
        description,
    )


def _mel_mlp_gan(variant: str, config: MelMLPGANConfig, description: VariantDescription) -> ModelBundle:
    return _latent_bundle(
        variant,
        config,
        MelMLPGenerator(config),
        {"mlp": MelMLPDiscriminator(config)},
        TensorSpec("mel_frame", (config.n_mels,)),
        "bce",
        description,
    )


# -- what each variant is (stages ask this, never the name) -----------------------------------
_UNIFORM = "uniform in [-1, 1]"


def _vocoder(config: Any, subbands: bool = False) -> VariantDescription:
    return VariantDescription(
        kind="vocoder", consumes="mel", discriminates="waveform", mel_params=("n_mels", "hop_length", "sample_rate"),
        label_option="n_speakers", subbands=subbands, clip_samples=None, sample_rate=config.sample_rate,
        onnx_exportable=True)


def _waveform(config: WaveGANConfig) -> VariantDescription:
    return VariantDescription(
        kind="waveform", consumes="latent", discriminates="waveform", mel_params=(), label_option="n_classes",
        subbands=False, clip_samples=config.output_length, sample_rate=config.sample_rate, onnx_exportable=True,
        rendering="the generator's output waveform", latent_distribution=_UNIFORM)


def _spectrogram(config: SpecGANConfig) -> VariantDescription:
    return VariantDescription(
        kind="spectrogram", consumes="latent", discriminates="log_magnitude", mel_params=(),
        label_option="n_classes", subbands=False, clip_samples=config.image_size * config.hop_length,
        sample_rate=config.sample_rate, onnx_exportable=False,  # Griffin-Lim runs after the network
        rendering="Griffin-Lim of the generated spectrogram (generator.spectrogram.to_audio)",
        latent_distribution=_UNIFORM)


def _frames(config: MelMLPGANConfig) -> VariantDescription:
    return VariantDescription(
        kind="frames", consumes="latent", discriminates="mel_frame", mel_params=("n_mels",),
        label_option="n_classes", subbands=False, clip_samples=None, sample_rate=config.sample_rate,
        onnx_exportable=False, latent_distribution="standard normal")


@dataclass(frozen=True)
class _Variant:
    default: Any
    build: Callable[[str, Any, VariantDescription], ModelBundle]
    describe: Callable[[Any], VariantDescription]


_REGISTRY: dict[str, _Variant] = {
    "hifigan_v1": _Variant(HIFIGAN_V1, _hifigan, _vocoder),
    "hifigan_v2": _Variant(HIFIGAN_V2, _hifigan, _vocoder),
    "hifigan_v3": _Variant(HIFIGAN_V3, _hifigan, _vocoder),
    "bigvgan_v2": _Variant(BIGVGAN_V2, _bigvgan, _vocoder),
    "bigvgan_base": _Variant(BIGVGAN_BASE, _bigvgan, _vocoder),
    "melgan": _Variant(MelGANConfig(), _melgan, _vocoder),
    "multiband_melgan": _Variant(MultiBandMelGANConfig(), _multiband_melgan, lambda c: _vocoder(c, subbands=True)),
    "parallel_wavegan": _Variant(ParallelWaveGANConfig(), _parallel_wavegan, _vocoder),
    "vocos": _Variant(VocosConfig(), _vocos, _vocoder),
    "wavegan": _Variant(WaveGANConfig(), _wavegan, _waveform),
    "specgan": _Variant(SpecGANConfig(), _specgan, _spectrogram),
    "mel_mlp_gan": _Variant(MelMLPGANConfig(), _mel_mlp_gan, _frames),
}

VARIANTS: frozenset[str] = frozenset(_REGISTRY)
if VARIANTS != frozenset(VARIANT_NAMES):
    raise ImportError(f"ganpipe.models.catalogue.VARIANT_NAMES {sorted(VARIANT_NAMES)} differs from the registry "
                      f"{sorted(VARIANTS)}: a variant is added in both")

TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    "hifigan_v1": {"upsample_initial_channel": 32, "discriminator_channel_divisor": 32},
    "hifigan_v2": {"upsample_initial_channel": 16, "discriminator_channel_divisor": 32},
    "hifigan_v3": {"upsample_initial_channel": 16, "discriminator_channel_divisor": 32},
    # BigVGAN: 64 channels (6 upsamplings halve them), one AMP block of two dilations per stage
    "bigvgan_v2": {"upsample_initial_channel": 64, "resblock_kernel_sizes": (3,), "resblock_dilation_sizes": ((1, 3),),
                   "discriminator_channel_divisor": 32, "cqtd_filters": 4, "cqtd_max_filters": 4,
                   "cqtd_hop_lengths": (512,), "cqtd_n_octaves": (7,), "cqtd_bins_per_octaves": (12,)},
    "bigvgan_base": {"upsample_initial_channel": 32, "resblock_kernel_sizes": (3,),
                     "resblock_dilation_sizes": ((1, 3),),
                     "discriminator_channel_divisor": 32},
    "melgan": {"ngf": 2, "discriminator_channels": 4, "discriminator_max_channels": 16},
    "multiband_melgan": {"channels": 16, "discriminator_channels": 4, "discriminator_max_channels": 16},
    "parallel_wavegan": {
        "layers": 4, "stacks": 2, "residual_channels": 8, "gate_channels": 16, "skip_channels": 8,
        "discriminator_layers": 4, "discriminator_channels": 8,
    },
    "vocos": {"dim": 16, "intermediate_dim": 32, "num_layers": 2, "discriminator_channel_divisor": 32,
              "n_mels": 80},  # (the tests feed the project default mel, not vocos.yaml's 100 bands)
    "wavegan": {"model_size": 2},
    "specgan": {"model_size": 2},
    "mel_mlp_gan": {"generator_hidden": (16, 32), "discriminator_hidden": (32, 16)},
}


def _as_tuples(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_as_tuples(item) for item in value)
    return value


def default_config(variant: str) -> Any:
    """The reference configuration dataclass of ``variant``."""
    if variant not in _REGISTRY:
        raise ValueError(f"unknown model variant {variant!r}; allowed: {', '.join(sorted(VARIANTS))}")
    return _REGISTRY[variant].default


def _config(variant: str, overrides: dict[str, Any]) -> Any:
    defaults = default_config(variant)
    fields = {f.name for f in dataclasses.fields(defaults)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(
            f"unknown option(s) for model {variant!r}: {', '.join(unknown)}; allowed: {', '.join(sorted(fields))}"
        )
    return dataclasses.replace(defaults, **{k: _as_tuples(v) for k, v in overrides.items()})


def describe(variant: str, **overrides: Any) -> VariantDescription:
    """What ``variant`` (with ``overrides``) is, without building it: see :class:`VariantDescription`."""
    return _REGISTRY[variant].describe(_config(variant, overrides))


def build(variant: str, **overrides: Any) -> ModelBundle:
    """Build ``variant`` with its reference hyper-parameters, replaced by ``overrides``.

    Raises ``ValueError`` for an unknown variant (listing the allowed names), an unknown override
    (listing the variant's fields) or an invalid combination of values.
    """
    config = _config(variant, overrides)
    entry = _REGISTRY[variant]
    return entry.build(variant, config, entry.describe(config))
