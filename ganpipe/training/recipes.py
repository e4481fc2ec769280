"""Each variant's published training recipe, as data: one :class:`Recipe` per (variant, source).

``train.*: auto`` in params.yaml takes the value from here; any explicit value overrides it, and
``train.recipe`` picks the source where a variant has more than one (HiFi-GAN: ``jik876``, the
paper's code and the default, or ``pwg``, the ParallelWaveGAN toolkit's ``hifigan.v1.yaml``).
Every row below is checked field by field against the published config named beside it (the
one-step tests in tests/reference/test_reference_step.py run one iteration both ways from the same weights).

Sources (../shared/reference): jik876/hifi-gan ``config_v1.json`` + its ``train.py``;
gemelo-ai/vocos ``vocos.yaml`` + its ``vocos/experiment.py`` (``vocos==0.1.0``);
kan-bayashi/ParallelWaveGAN ``egs/ljspeech/voc1/conf/{hifigan.v1, melgan.v1, multi_band_melgan.v2,
parallel_wavegan.v1}.yaml`` + its ``bin/train.py``; descript/melgan-neurips (MelGAN paper);
WaveGAN/SpecGAN (Donahue et al. 2019); the textbook GAN (Goodfellow et al. 2014).

Semantics of the less obvious fields:

* ``scheduler``: ``exponential_per_epoch`` (jik876: ExponentialLR(gamma) stepped after every
  epoch), ``exponential_per_update`` (BigVGAN-v2: the same, stepped after every update), ``step``
  (StepLR(step_size, gamma)) or ``multistep`` (MultiStepLR(milestones, gamma)),
  the last two stepped after every update of their network, as the toolkit does; or
  ``cosine_warmup`` (Vocos: transformers' ``get_cosine_schedule_with_warmup``: linear warm-up over
  ``lr_warmup_steps`` updates, then half a cosine to 0 at ``lr_total_steps`` updates, per network);
* ``update_order``: ``d_first`` (jik876: D on the step's prediction, then G) or ``g_first`` (the
  toolkit: G, then D on the *updated* generator's prediction of the same input and noise);
* ``g_step_real_first``: in the generator's step the discriminators see the real batch before the
  generated one (jik876's ``mpd(y, y_g_hat)``) or after it (the toolkit: ``D(y_)``, then ``D(y)``)
  — it decides which spectral-norm power iteration each pass sees;
* ``average_by_discriminators``: adversarial and feature-matching losses are averaged over the
  sub-discriminators instead of summed (the toolkit's default, off in its hifigan.v1.yaml);
* ``grad_clip_*``: max gradient norm per network, 0 = off; ``grad_clip_per_discriminator``: each
  discriminator of the bundle clipped at that norm on its own (BigVGAN clips mpd and mrd apart);
* ``mel_loss_framing``: ``jik876`` (frames of ``meldataset.mel_spectrogram``: reflect padding of
  (n_fft - hop) / 2, log of max(mel, 1e-5)) or ``centred`` (the toolkit's ``MelSpectrogramLoss``:
  torch.stft(center=True), amplitude sqrt(max(power, 1e-10)), log of max(mel, 1e-10)),
  ``multiscale`` (BigVGAN-v2's ``MultiScaleMelSpectrogramLoss``: the sum over ``mel_loss_scales`` of
  the L1 distance of log10 mels, see ganpipe.training.losses.MultiScaleMelLoss) or ``torchaudio``
  (Vocos' ``MelSpecReconstructionLoss``: torchaudio's centred magnitude mel, HTK scale from 0 Hz, no
  area normalisation, log of max(mel, 1e-7));
* ``mel_loss_size``: (n_fft, hop, n_mels) of the loss mel where the recipe fixes them (Vocos:
  1024 / 256 / 100 whatever the features), None = the feature mel's;
* ``discriminator_weights``: (bundle discriminator name, weight) pairs: that discriminator's
  adversarial and feature-matching terms, in both networks' losses, times the weight (Vocos: the
  multi-resolution discriminator's ``mrd_loss_coeff`` 0.1); unnamed ones weigh 1. With
  ``average_by_discriminators`` each discriminator's terms are averaged over its own
  sub-discriminators (Vocos: the 5 periods, the 3 resolutions) before weighting;
* ``stft_eps``: the multi-resolution STFT loss's floor on the power spectrum (toolkit: 1e-7);
* ``discriminator_start_step``: generator-only updates before the adversarial losses start.
  The toolkit writes ``discriminator_train_start_steps: N`` and starts at its step counter N + 1,
  but its step 0 updates nothing (``steps > start`` checks), so it too makes N generator-only
  updates first: the same N here.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from ganpipe.config import TrainParams

RECIPE_SOURCES = ("jik876", "pwg", "vocos", "paper", "bigvgan")


@dataclass(frozen=True)
class Recipe:
    source: str  # jik876 | pwg | vocos | paper | bigvgan (see RECIPE_SOURCES)
    adversarial_loss: str
    optimizer: str  # adamw | adam | radam
    lr_generator: float
    lr_discriminator: float
    adam_betas: tuple[float, float]
    adam_eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False
    # exponential_per_epoch | exponential_per_update | step | multistep | cosine_warmup
    scheduler: str = "exponential_per_epoch"
    lr_gamma: float = 1.0  # 1.0 = a constant learning rate
    lr_step_size: int = 0  # StepLR: updates between decays
    lr_milestones: tuple[int, ...] = ()  # MultiStepLR: updates at which the rate is multiplied by lr_gamma
    lr_warmup_steps: int = 0  # cosine_warmup: updates of linear warm-up
    lr_total_steps: int = 0  # cosine_warmup: updates at which the cosine reaches 0 (0: none published)
    lambda_mel: float = 0.0
    lambda_fm: float = 0.0
    lambda_adv: float = 1.0
    lambda_stft: float = 0.0
    subband_stft: bool = False  # MB-MelGAN: STFT loss on the PQMF sub-bands too (0.5 full + 0.5 sub-band)
    stft_eps: float = 1e-7
    critic_steps: int = 1
    discriminator_start_step: int = 0
    batch_size: int = 16
    segment_samples: int = 8192
    # mel L1 loss band: its upper edge in Hz, None = the full band (sample_rate / 2); the rest of the
    # loss mel (n_fft, hop, window, n_mels, fmin, log) is the project's feature mel
    mel_loss_fmax: float | None = None
    mel_loss_framing: str = "jik876"  # jik876 | centred | multiscale | torchaudio
    # multiscale: (STFT window, mel bands) of each scale (BigVGAN-v2 / DAC: hop = window / 4)
    mel_loss_scales: tuple[tuple[int, int], ...] = ((32, 5), (64, 10), (128, 20), (256, 40), (512, 80),
                                                    (1024, 160), (2048, 320))
    mel_loss_size: tuple[int, int, int] | None = None  # (n_fft, hop, n_mels); None = the feature mel's
    discriminator_weights: tuple[tuple[str, float], ...] = ()  # (discriminator, weight); others 1
    # feature matching over every discriminator layer *and* its final output (jik876's feature_loss
    # on fmap, which ends with the output map), or the hidden layers only (the toolkit's
    # include_final_outputs: false; descript's D_fake[i][:-1])
    fm_include_final: bool = True
    average_by_discriminators: bool = False
    grad_clip_generator: float = 0.0
    grad_clip_discriminator: float = 0.0
    grad_clip_per_discriminator: bool = False  # clip each discriminator (mpd, cqtd ...) at the norm apart
    update_order: str = "d_first"  # d_first | g_first
    g_step_real_first: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# --- The recipe table. One row per published config; check each value against the file named. ---
# jik876 config_v1.json (batch_size 16, learning_rate 2e-4, adam_b1 0.8, adam_b2 0.99, lr_decay
# 0.999, segment_size 8192, fmax_for_loss null) + train.py (AdamW: its default weight decay 0.01;
# ExponentialLR per epoch; D updated first; mel loss x45; feature_loss x2 over fmaps incl. the
# outputs; losses summed over discriminators; no clipping). V2/V3 use the same train.py/config.
JIK876_HIFIGAN = Recipe(
    "jik876", "lsgan", "adamw", 2e-4, 2e-4, (0.8, 0.99), adam_eps=1e-8, weight_decay=0.01,
    scheduler="exponential_per_epoch", lr_gamma=0.999, lambda_mel=45.0, lambda_fm=2.0, lambda_adv=1.0,
    batch_size=16, segment_samples=8192, mel_loss_fmax=None, mel_loss_framing="jik876",
    fm_include_final=True, average_by_discriminators=False, update_order="d_first", g_step_real_first=True)

# hifigan.v1.yaml: Adam (0.5, 0.9) 2e-4 both, weight_decay 0, MultiStepLR gamma 0.5 at 200k/400k/600k/800k,
# grad_norm -1 (off), lambda_aux 45 (mel loss, 0-11025 Hz, log_base null = ln), lambda_feat_match 2,
# include_final_outputs false, average_by_discriminators false, batch 16 x 8192; the trainer
# updates G first and runs D(y_) before D(y) in the generator's step.
PWG_HIFIGAN = Recipe(
    "pwg", "lsgan", "adam", 2e-4, 2e-4, (0.5, 0.9), adam_eps=1e-8, weight_decay=0.0,
    scheduler="multistep", lr_gamma=0.5, lr_milestones=(200_000, 400_000, 600_000, 800_000),
    lambda_mel=45.0, lambda_fm=2.0, lambda_adv=1.0, batch_size=16, segment_samples=8192,
    mel_loss_fmax=None, mel_loss_framing="centred", fm_include_final=False, average_by_discriminators=False,
    update_order="g_first", g_step_real_first=False)

# The toolkit's PWG-style recipe, shared by parallel_wavegan.v1.yaml and melgan.v1.yaml: RAdam
# (the toolkit's default optimizer type) lr 1e-4 G / 5e-5 D, eps 1e-6, StepLR 200k x 0.5, grad
# norm 10 G / 1 D, lambda_adv 4, multi-resolution STFT loss, no feature matching, D from 100k,
# mse adversarial losses averaged by discriminators (the losses' default; one D here anyway).
_PWG_STYLE = dict(adversarial_loss="lsgan", optimizer="radam", lr_generator=1e-4, lr_discriminator=5e-5,
                  adam_betas=(0.9, 0.999), adam_eps=1e-6, weight_decay=0.0, scheduler="step", lr_gamma=0.5,
                  lr_step_size=200_000, lambda_adv=4.0, lambda_stft=1.0, stft_eps=1e-7,
                  discriminator_start_step=100_000, segment_samples=25_600, fm_include_final=False,
                  average_by_discriminators=True, grad_clip_generator=10.0, grad_clip_discriminator=1.0,
                  update_order="g_first", g_step_real_first=False)
PWG_PARALLEL_WAVEGAN = Recipe("pwg", batch_size=6, **_PWG_STYLE)  # parallel_wavegan.v1.yaml
# melgan.v1.yaml: the same training settings, batch 8. (That YAML pairs the MelGAN generator with
# PWG's discriminator; our melgan variant keeps MelGAN's own multi-scale discriminator.)
PWG_MELGAN = Recipe("pwg", batch_size=8, **_PWG_STYLE)
# multi_band_melgan.v2.yaml: Adam amsgrad lr 1e-3 *both* networks, eps 1e-7, MultiStepLR x0.5 every
# 100k to 600k, no clipping, lambda_adv 2.5, full-band + sub-band STFT losses, no feature
# matching, D from 200k, batch 64 x 16384, adversarial losses averaged over the 3 scales.
PWG_MULTIBAND_MELGAN = Recipe(
    "pwg", "lsgan", "adam", 1e-3, 1e-3, (0.9, 0.999), adam_eps=1e-7, weight_decay=0.0, amsgrad=True,
    scheduler="multistep", lr_gamma=0.5, lr_milestones=(100_000, 200_000, 300_000, 400_000, 500_000, 600_000),
    lambda_adv=2.5, lambda_stft=1.0, subband_stft=True, stft_eps=1e-7, discriminator_start_step=200_000,
    batch_size=64, segment_samples=16_384, fm_include_final=False, average_by_discriminators=True,
    update_order="g_first", g_step_real_first=False)
# descript/melgan-neurips (the MelGAN paper): hinge, Adam (0.5, 0.9) 1e-4, feature matching x10
# over the hidden layers; D updated first. No oracle package: not proven here.
PAPER_MELGAN = Recipe("paper", "hinge", "adam", 1e-4, 1e-4, (0.5, 0.9), lambda_fm=10.0, batch_size=16,
                      segment_samples=8192, fm_include_final=False)

# gemelo-ai/vocos vocos.yaml (initial_learning_rate 5e-4, mel_loss_coeff 45, mrd_loss_coeff 0.1,
# num_warmup_steps 0, pretrain_mel_steps 0, batch_size 16, num_samples 16384, max_steps 2,000,000 over
# both optimisers) + vocos/experiment.py (VocosExp): AdamW betas (0.8, 0.9) for each network (its
# default weight decay 0.01, eps 1e-8); get_cosine_schedule_with_warmup over max_steps // 2 = 1M
# updates, stepped every update; D first on a no-grad prediction, then G; hinge D loss, G loss
# relu(1 - D(G(x))); per discriminator the sub-discriminator losses are averaged and the MRD's are
# x0.1, for D's loss and G's adversarial and feature-matching terms; feature matching x1 over every
# conv after the first and the output (the fmaps of vocos/discriminators.py); mel L1 x45 on
# MelSpecReconstructionLoss (1024 / 256 / 100 bands, full band); no gradient clipping.
VOCOS = Recipe(
    "vocos", "hinge-relu", "adamw", 5e-4, 5e-4, (0.8, 0.9), adam_eps=1e-8, weight_decay=0.01,
    scheduler="cosine_warmup", lr_warmup_steps=0, lr_total_steps=1_000_000, lambda_mel=45.0, lambda_fm=1.0,
    lambda_adv=1.0, batch_size=16, segment_samples=16384, mel_loss_fmax=None, mel_loss_framing="torchaudio",
    mel_loss_size=(1024, 256, 100), discriminator_weights=(("mrd", 0.1),), fm_include_final=True,
    average_by_discriminators=True, update_order="d_first", g_step_real_first=True)
# NVIDIA/BigVGAN bigvgan_v2_22khz_80band_256x.json + train.py (bigvgan==2.4.1): AdamW (its default weight
# decay 0.01) 1e-4 both, betas (0.8, 0.99), lr_decay 0.9999996 stepped after every step (v2's train.py),
# D first (mpd + cqtd on the detached prediction), clip_grad_norm 500 for G and for mpd and the CQT
# discriminator apart, multi-scale mel loss x15 (lambda_melloss), feature_loss x2 (MPD: its layers and
# output; the CQT discriminator's fmap lacks its output), LSGAN losses summed, batch 4 x 65536.
BIGVGAN_V2_RECIPE = Recipe(
    "bigvgan", "lsgan", "adamw", 1e-4, 1e-4, (0.8, 0.99), adam_eps=1e-8, weight_decay=0.01,
    scheduler="exponential_per_update", lr_gamma=0.9999996, lambda_mel=15.0, lambda_fm=2.0, lambda_adv=1.0,
    batch_size=4, segment_samples=65536, mel_loss_fmax=None, mel_loss_framing="multiscale",
    fm_include_final=True, average_by_discriminators=False, grad_clip_generator=500.0,
    grad_clip_discriminator=500.0, grad_clip_per_discriminator=True, update_order="d_first", g_step_real_first=True)
# bigvgan_base_22khz_80band.json with the same train.py: the single-scale mel loss (jik876's mel,
# fmax_for_loss null) x45 (lambda_melloss's default), clip_grad_norm's default 1000, batch 32 x 8192.
BIGVGAN_BASE_RECIPE = replace(BIGVGAN_V2_RECIPE, lambda_mel=45.0, mel_loss_framing="jik876", batch_size=32,
                              segment_samples=8192, grad_clip_generator=1000.0, grad_clip_discriminator=1000.0)

RECIPES: dict[str, dict[str, Recipe]] = {  # the first entry of each variant is its `auto`
    "hifigan_v1": {"jik876": JIK876_HIFIGAN, "pwg": PWG_HIFIGAN},
    "hifigan_v2": {"jik876": JIK876_HIFIGAN, "pwg": PWG_HIFIGAN},
    "hifigan_v3": {"jik876": JIK876_HIFIGAN, "pwg": PWG_HIFIGAN},
    "bigvgan_v2": {"bigvgan": BIGVGAN_V2_RECIPE},
    "bigvgan_base": {"bigvgan": BIGVGAN_BASE_RECIPE},
    "melgan": {"pwg": PWG_MELGAN, "paper": PAPER_MELGAN},
    "multiband_melgan": {"pwg": PWG_MULTIBAND_MELGAN},
    "parallel_wavegan": {"pwg": PWG_PARALLEL_WAVEGAN},
    "vocos": {"vocos": VOCOS},
    "wavegan": {"paper": Recipe("paper", "wgan-gp", "adam", 1e-4, 1e-4, (0.5, 0.9), critic_steps=5,
                                batch_size=64, segment_samples=16384)},
    "specgan": {"paper": Recipe("paper", "wgan-gp", "adam", 1e-4, 1e-4, (0.5, 0.9), critic_steps=5,
                                batch_size=64, segment_samples=16384)},
    "mel_mlp_gan": {"paper": Recipe("paper", "bce", "adam", 2e-4, 2e-4, (0.5, 0.999), batch_size=64,
                                    segment_samples=256)},
}

# train.* keys that override the recipe field of the same name when not `auto`
OVERRIDABLE = ("adversarial_loss", "optimizer", "lr_generator", "lr_discriminator", "adam_betas", "adam_eps",
               "weight_decay", "amsgrad", "scheduler", "lr_gamma", "lr_step_size", "lr_milestones",
               "lr_warmup_steps", "lr_total_steps", "discriminator_weights",
               "lambda_mel", "lambda_fm", "lambda_adv", "lambda_stft", "critic_steps",
               "discriminator_start_step", "batch_size", "segment_samples", "mel_loss_fmax", "fm_include_final",
               "average_by_discriminators", "grad_clip_generator", "grad_clip_discriminator", "update_order",
               "mel_loss_framing", "grad_clip_per_discriminator")


def resolve(variant: str, train: TrainParams) -> Recipe:
    """The variant's recipe (``train.recipe``) with every non-``auto`` train parameter applied."""
    choices = RECIPES[variant]
    if train.recipe == "auto":
        recipe = next(iter(choices.values()))
    elif train.recipe in choices:
        recipe = choices[train.recipe]
    else:
        raise ValueError(f"train.recipe: {train.recipe!r} is not published for model.variant {variant!r}; "
                         f"allowed: auto, {', '.join(choices)}")
    changes = {k: getattr(train, k) for k in OVERRIDABLE if getattr(train, k) != "auto"}
    if "adam_betas" in changes:
        changes["adam_betas"] = tuple(changes["adam_betas"])
    if "discriminator_weights" in changes:
        changes["discriminator_weights"] = tuple(sorted(changes["discriminator_weights"].items()))
    if "lr_milestones" in changes:
        changes["lr_milestones"] = tuple(changes["lr_milestones"])
    if train.grad_clip > 0:  # the one-knob form: both networks
        changes.setdefault("grad_clip_generator", train.grad_clip)
        changes.setdefault("grad_clip_discriminator", train.grad_clip)
    resolved = replace(recipe, **changes)
    if resolved.scheduler == "cosine_warmup" and resolved.lr_total_steps < 1:
        raise ValueError(f"train.lr_total_steps: scheduler cosine_warmup needs it (>= 1 updates); the "
                         f"{resolved.source} recipe of model.variant {variant!r} has none")
    return resolved
