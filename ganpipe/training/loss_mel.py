"""The mel of a recipe's mel L1 loss (``Recipe.mel_loss_framing``): which framing, band and sizes, and
the loss module built from it. The modules themselves are in :mod:`ganpipe.training.losses`."""

from __future__ import annotations

import dataclasses

from torch import nn

from ganpipe.mel import MelConfig, MelSpectrogram
from ganpipe.training import losses
from ganpipe.training.recipes import Recipe


def mel_loss_fn(mel: MelConfig, recipe: Recipe) -> nn.Module:
    """The recipe's loss mel: the feature mel's framing (jik876), the toolkit's centred STFT or
    Vocos' torchaudio mel (``mel_loss_framing``: torchaudio)."""
    config = mel_loss_config(mel, recipe)
    if recipe.mel_loss_framing == "torchaudio":
        return losses.VocosLogMel(config)
    return MelSpectrogram(config) if recipe.mel_loss_framing == "jik876" else losses.CentredLogMel(config)


def mel_loss(mel: MelConfig, recipe: Recipe) -> nn.Module:
    """The recipe's mel L1 loss, called as ``loss(fake, real)`` on waveforms ``(B, samples)``: one loss
    mel (:func:`mel_loss_fn`) or the multi-scale mel loss over the recipe's band."""
    if recipe.mel_loss_framing == "multiscale":
        return losses.MultiScaleMelLoss(mel.sample_rate, recipe.mel_loss_scales, recipe.mel_loss_fmax)
    return losses.MelL1(mel_loss_fn(mel, recipe))


def mel_loss_config(mel: MelConfig, recipe: Recipe) -> MelConfig:
    """The mel of the L1 loss: the feature mel over the recipe's band (``None``: up to Nyquist),
    unnormalised, with the recipe's own sizes where it fixes them (``mel_loss_size``)."""
    fmax = recipe.mel_loss_fmax if recipe.mel_loss_fmax is not None else mel.sample_rate / 2
    sizes = {}
    if recipe.mel_loss_size is not None:
        n_fft, hop, n_mels = recipe.mel_loss_size
        sizes = {"n_fft": n_fft, "win_length": n_fft, "hop_length": hop, "n_mels": n_mels}
    return dataclasses.replace(mel, fmax=float(fmax), normalize="none", **sizes)
