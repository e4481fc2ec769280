"""Multi-band MelGAN (Yang et al., SLT 2021), following kan-bayashi/ParallelWaveGAN.

The MelGAN network body (:class:`.melgan.MelGANStack`: 384 initial channels, 4 residual stacks
per upsampling, dilations 1-3-9-27) produces ``K = 4`` sub-band signals at ``1 / K`` of the sample
rate; a :class:`.pqmf.PQMF` synthesis filter bank sums them back to the full band. Upsampling
``4 x 4 x 4 = 64`` per frame and sub-band, times 4 bands = hop 256.

Generator parameters (80 mels) with weight norm's ``g`` and ``v`` / without: 1,968,056 /
1,962,964 for ganpipe's default scales (4, 4, 4), 3.0% above the paper's 1.91M (a 16 kHz, hop-200
model). The reference LJSpeech recipe (``multi_band_melgan.v2.yaml``) actually uses (8, 4, 2):
2,539,448 parameters; pass ``upsample_scales=(8, 4, 2)`` to get it.

Discriminator: MelGAN's multi-scale discriminator with channels capped at 512 and three
downsampling layers, as in the reference recipe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor, nn

from .conditioning_options import SpeakerConditioningOptions
from .generator_conditioning import concat_label_embedding
from .melgan import MelGANStack
from .normalization import remove_weight_norm
from .pqmf import PQMF


@dataclass(frozen=True)
class MultiBandMelGANConfig(SpeakerConditioningOptions):
    channels: int = 384
    upsample_scales: tuple[int, ...] = (4, 4, 4)
    residual_stacks: int = 4
    subbands: int = 4
    pqmf_taps: int = 62
    pqmf_cutoff_ratio: float = 0.142
    pqmf_beta: float = 9.0
    n_mels: int = 80
    hop_length: int = 256
    sample_rate: int = 22050
    discriminator_scales: int = 3
    discriminator_channels: int = 16
    discriminator_max_channels: int = 512
    discriminator_downsample_scales: tuple[int, ...] = (4, 4, 4)

    def __post_init__(self) -> None:
        super().__post_init__()
        if math.prod(self.upsample_scales) * self.subbands != self.hop_length:
            raise ValueError(
                f"product of upsample_scales {self.upsample_scales} times subbands {self.subbands} "
                f"must equal hop_length {self.hop_length}"
            )
        if self.residual_stacks < 1 or self.discriminator_scales < 1:
            raise ValueError("residual_stacks and discriminator_scales must be >= 1")


class MultiBandMelGANGenerator(nn.Module):
    """mel ``(B, n_mels, F)`` [+ speaker ids] -> waveform ``(B, 1, F * hop_length)``.

    :meth:`forward_subbands` gives the ``(B, K, F * hop_length / K)`` sub-band signals (for the
    sub-band STFT loss); :attr:`pqmf` turns real audio into sub-bands (``analysis``) and sub-bands
    into audio (``synthesis``); :meth:`forward` is ``pqmf.synthesis(forward_subbands(...))``.
    """

    def __init__(self, config: MultiBandMelGANConfig) -> None:
        super().__init__()
        self.config = config
        self.hop_length = config.hop_length
        self.n_mels = config.n_mels
        self.subbands = config.subbands
        self.speaker_conditioning = config.generator_conditioning()
        self.stack = MelGANStack(
            config.n_mels + config.label_channels,
            config.subbands,
            config.channels,
            config.upsample_scales,
            config.residual_stacks,
        )
        self.min_frames = self.stack.min_frames  # reflection padding: 7 frames for the default
        self.pqmf = PQMF(config.subbands, config.pqmf_taps, config.pqmf_cutoff_ratio, config.pqmf_beta)

    def forward_subbands(self, mel: Tensor, speaker: Tensor | None = None) -> Tensor:
        return self.stack(concat_label_embedding(self.speaker_conditioning, mel, speaker, "speaker"))

    def forward(self, mel: Tensor, speaker: Tensor | None = None) -> Tensor:
        return self.pqmf.synthesis(self.forward_subbands(mel, speaker))

    def remove_weight_norm(self) -> None:
        remove_weight_norm(self)
