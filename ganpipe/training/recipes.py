"""Each variant's published training recipe: loss, weights, optimisers, schedule, warm-up.

``train.*: auto`` in params.yaml takes the value from here; any explicit value overrides it.
Sources: HiFi-GAN (Kong et al. 2020, config_v1), MelGAN (Kumar et al. 2019), Multi-band MelGAN
(Yang et al. 2020) and Parallel WaveGAN (Yamamoto et al. 2020) as in the ParallelWaveGAN recipes,
WaveGAN/SpecGAN (Donahue et al. 2019), and the textbook GAN (Goodfellow et al. 2014).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ganpipe.config import TrainParams


@dataclass(frozen=True)
class Recipe:
    adversarial_loss: str
    optimizer: str  # adamw | adam | radam
    lr_generator: float
    lr_discriminator: float
    betas: tuple[float, float]
    eps: float = 1e-8
    weight_decay: float = 0.0
    lr_decay_per_epoch: float = 1.0  # ExponentialLR gamma, stepped once per epoch (1.0 = constant)
    lambda_mel: float = 0.0
    lambda_fm: float = 0.0
    lambda_adv: float = 1.0
    lambda_stft: float = 0.0
    subband_stft: bool = False  # MB-MelGAN: STFT loss on the PQMF sub-bands too
    critic_steps: int = 1
    discriminator_start_step: int = 0
    segment_samples: int = 8192
    # mel L1 loss band: its upper edge in Hz, None = the full band (sample_rate / 2); the rest of the
    # loss mel (n_fft, hop, window, n_mels, fmin, log) is the project's feature mel
    mel_loss_fmax: float | None = None
    # feature matching over every discriminator layer *and* its final output (jik876's feature_loss
    # on fmap, which ends with the output map), or the hidden layers only (MelGAN; the toolkit's
    # include_final_outputs: false)
    fm_include_final: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# jik876 config_v1.json + train.py: AdamW (its default weight decay 0.01), ExponentialLR 0.999 per
# epoch, mel loss on the full band (fmax_for_loss: null), feature_loss over fmaps incl. the outputs
_HIFIGAN = Recipe("lsgan", "adamw", 2e-4, 2e-4, (0.8, 0.99), weight_decay=0.01, lr_decay_per_epoch=0.999,
                  lambda_mel=45.0, lambda_fm=2.0, segment_samples=8192, mel_loss_fmax=None, fm_include_final=True)
RECIPES: dict[str, Recipe] = {
    "hifigan_v1": _HIFIGAN,
    "hifigan_v2": _HIFIGAN,
    "hifigan_v3": _HIFIGAN,
    # descript/melgan-neurips: feature matching over D_fake[i][:-1] (the hidden layers only)
    "melgan": Recipe("hinge", "adam", 1e-4, 1e-4, (0.5, 0.9), lambda_fm=10.0, segment_samples=8192,
                     fm_include_final=False),
    "multiband_melgan": Recipe("lsgan", "adam", 1e-3, 5e-4, (0.9, 0.999), eps=1e-7, lambda_adv=2.5,
                               lambda_stft=1.0, subband_stft=True, discriminator_start_step=200_000,
                               segment_samples=16384),
    "parallel_wavegan": Recipe("lsgan", "radam", 1e-4, 5e-5, (0.9, 0.999), eps=1e-6, lambda_adv=4.0,
                               lambda_stft=1.0, discriminator_start_step=100_000, segment_samples=25600),
    "wavegan": Recipe("wgan-gp", "adam", 1e-4, 1e-4, (0.5, 0.9), critic_steps=5, segment_samples=16384),
    "specgan": Recipe("wgan-gp", "adam", 1e-4, 1e-4, (0.5, 0.9), critic_steps=5, segment_samples=16384),
    "mel_mlp_gan": Recipe("bce", "adam", 2e-4, 2e-4, (0.5, 0.999), segment_samples=256),
}

_OVERRIDABLE = ("adversarial_loss", "lr_generator", "lr_discriminator", "lambda_mel", "lambda_fm",
                "lambda_adv", "lambda_stft", "critic_steps", "discriminator_start_step", "segment_samples", "mel_loss_fmax", "fm_include_final")


def resolve(variant: str, train: TrainParams) -> Recipe:
    """The variant's recipe with every non-``auto`` train parameter applied."""
    recipe = RECIPES[variant]
    changes = {k: getattr(train, k) for k in _OVERRIDABLE if getattr(train, k) != "auto"}
    return replace(recipe, **changes)
