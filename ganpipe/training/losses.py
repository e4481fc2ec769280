"""GAN losses usable by every variant.

Adversarial losses take lists of logits (one tensor per sub-discriminator, e.g. HiFi-GAN's
periods and scales) and *sum* over sub-discriminators, as the references do:

* ``bce``: non-saturating GAN with logits; optional one-sided label smoothing (real target 1-s);
* ``lsgan``: least squares, real -> 1, fake -> 0;
* ``hinge``: D: relu(1 - real) + relu(1 + fake); G: -fake;
* ``hinge-relu``: D as ``hinge``; G: relu(1 - fake) (hinge for the generator too: Vocos);
* ``wgan-gp``: D: fake - real (+ gradient penalty, :func:`gradient_penalty`); G: -fake.

Feature matching: sum over sub-discriminators and layers of the mean absolute difference.
Every sum over sub-discriminators takes optional per-sub-discriminator ``weights`` (the trainer's
per-discriminator weights and averaging, see ganpipe/training/recipes.py); None = 1 each.
The mel loss uses the project's one :class:`ganpipe.mel.MelSpectrogram`; the multi-resolution
STFT loss is :class:`ganpipe.stft_distance.MultiResolutionSTFT` (checked against auraloss).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ganpipe.mel import MelConfig, MelSpectrogram
from ganpipe.models.outputs import DiscriminatorOutput

ADVERSARIAL_LOSSES = ("bce", "lsgan", "hinge", "hinge-relu", "wgan-gp")


def _check(kind: str) -> None:
    if kind not in ADVERSARIAL_LOSSES:
        raise ValueError(f"unknown adversarial loss {kind!r}; allowed: {', '.join(ADVERSARIAL_LOSSES)}")


def _weights(weights: list[float] | None, n: int) -> list[float]:
    if weights is None:
        return [1.0] * n
    if len(weights) != n:
        raise ValueError(f"{len(weights)} sub-discriminator weights for {n} sub-discriminators")
    return list(weights)


def discriminator_loss(kind: str, real: list[Tensor], fake: list[Tensor], label_smoothing: float = 0.0,
                       weights: list[float] | None = None) -> Tensor:
    _check(kind)
    total = real[0].new_zeros(())
    for r, g, w in zip(real, fake, _weights(weights, len(real))):
        r, g = r.float(), g.float()
        if kind == "bce":
            term = F.binary_cross_entropy_with_logits(r, torch.full_like(r, 1.0 - label_smoothing)) \
                + F.binary_cross_entropy_with_logits(g, torch.zeros_like(g))
        elif kind == "lsgan":
            term = torch.mean((1.0 - r) ** 2) + torch.mean(g ** 2)
        elif kind in ("hinge", "hinge-relu"):
            term = torch.mean(F.relu(1.0 - r)) + torch.mean(F.relu(1.0 + g))
        else:  # wgan-gp (the penalty is added by the caller)
            term = torch.mean(g) - torch.mean(r)
        total = total + (term if w == 1.0 else w * term)
    return total


def generator_loss(kind: str, fake: list[Tensor], weights: list[float] | None = None) -> Tensor:
    _check(kind)
    total = fake[0].new_zeros(())
    for g, w in zip(fake, _weights(weights, len(fake))):
        g = g.float()
        if kind == "bce":
            term = F.binary_cross_entropy_with_logits(g, torch.ones_like(g))
        elif kind == "lsgan":
            term = torch.mean((1.0 - g) ** 2)
        elif kind == "hinge-relu":
            term = torch.mean(F.relu(1.0 - g))
        else:  # hinge and wgan-gp
            term = -torch.mean(g)
        total = total + (term if w == 1.0 else w * term)
    return total


def feature_matching(real: list[list[Tensor]], fake: list[list[Tensor]], weights: list[float] | None = None
                     ) -> Tensor:
    total = fake[0][0].new_zeros(()).float()
    for rs, gs, w in zip(real, fake, _weights(weights, len(fake))):
        term = fake[0][0].new_zeros(()).float()
        for r, g in zip(rs, gs):
            term = term + torch.mean(torch.abs(r.detach().float() - g.float()))
        total = total + (term if w == 1.0 else w * term)
    return total


def sub_discriminator_weights(out: DiscriminatorOutput, weights: dict[str, float], average: bool
                              ) -> list[float] | None:
    """Per sub-discriminator, its weight in the adversarial and feature-matching sums: its
    discriminator's entry in ``weights`` (the recipe's ``discriminator_weights``, default 1), divided
    by that discriminator's number of sub-discriminators when ``average`` (the recipe's
    ``average_by_discriminators``); ``None`` (all 1) when neither applies."""
    if not average and not weights:
        return None
    groups = out.groups or [""] * len(out.logits)
    return [weights.get(group, 1.0) / (groups.count(group) if average else 1) for group in groups]


def feature_maps(real: DiscriminatorOutput, fake: DiscriminatorOutput, include_final: bool
                 ) -> tuple[list[list[Tensor]], list[list[Tensor]]]:
    """The per-discriminator feature maps that feature matching compares (with the outputs, if asked,
    of the sub-discriminators whose output is matched: ``DiscriminatorOutput.final_matched``)."""
    if not include_final:
        return real.features, fake.features
    matched = fake.final_matched or [True] * len(fake.logits)
    return ([f + [o] if m else f for f, o, m in zip(real.features, real.logits, matched)],
            [f + [o] if m else f for f, o, m in zip(fake.features, fake.logits, matched)])


def classification_loss(class_logits: list[Tensor] | None, labels: Tensor | None) -> Tensor | None:
    """AC-GAN auxiliary loss: cross-entropy of every sub-discriminator's class scores."""
    if class_logits is None or labels is None:
        return None
    return sum(F.cross_entropy(c.float(), labels) for c in class_logits) / len(class_logits)


def gradient_penalty(critic: Callable[[Tensor], list[Tensor]], real: Tensor, fake: Tensor) -> Tensor:
    """WGAN-GP: (||grad critic(x_hat)|| - 1)^2 on random interpolates of real and fake."""
    alpha = torch.rand((real.shape[0],) + (1,) * (real.dim() - 1), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake.detach()).requires_grad_(True)
    scores = critic(x_hat)
    total = sum(s.sum() for s in scores)
    (grad,) = torch.autograd.grad(total, x_hat, create_graph=True)
    return torch.mean((grad.flatten(1).norm(2, dim=1) - 1.0) ** 2)


class CentredLogMel(nn.Module):
    """The ParallelWaveGAN toolkit's loss mel (``MelSpectrogramLoss``): ``torch.stft(center=True)``
    with reflect padding, amplitude ``sqrt(max(power, eps))``, ``log(max(mel, eps))`` with
    ``eps = 1e-10``; the filters, band, sizes and log base of ``config`` (its slaney mel basis)."""

    def __init__(self, config: MelConfig, eps: float = 1e-10):
        super().__init__()
        self.config, self.eps = config, eps
        self.register_buffer("mel_basis", MelSpectrogram(config).mel_basis.T.contiguous(), persistent=False)
        self.register_buffer("window", torch.hann_window(config.win_length), persistent=False)
        self._log_scale = 1.0 / torch.log(torch.tensor(10.0)).item() if config.log_base == "10" else 1.0

    def forward(self, wav: Tensor) -> Tensor:
        c = self.config
        spec = torch.stft(wav.reshape(-1, wav.shape[-1]), c.n_fft, c.hop_length, c.win_length, self.window,
                          center=True, pad_mode="reflect", return_complex=True)
        amp = torch.sqrt(torch.clamp(spec.real.square() + spec.imag.square(), min=self.eps)).transpose(1, 2)
        mel = torch.clamp(torch.matmul(amp, self.mel_basis), min=self.eps)
        return (torch.log(mel) * self._log_scale).transpose(1, 2)


class MelL1(nn.Module):
    """``mean |mel(fake) - mel(real)|`` of one loss mel (jik876's or the toolkit's framing)."""

    def __init__(self, mel: nn.Module):
        super().__init__()
        self.mel = mel

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        return torch.mean(torch.abs(self.mel(fake) - self.mel(real)))


class MultiScaleMelLoss(nn.Module):
    """BigVGAN-v2's multi-scale mel loss (after descript-audio-codec): for each ``(window, n_mels)``
    scale, a centred STFT (reflect padding, periodic Hann window, hop ``window // 4``), its magnitude
    through a ``n_mels``-band Slaney mel filterbank over ``[0, fmax]`` (librosa's default, built by
    torchaudio), ``log10(max(mel, 1e-5))``; the loss is the sum over scales of the mean absolute
    difference of fake and real."""

    def __init__(self, sample_rate: int, scales: tuple[tuple[int, int], ...], fmax: float | None = None,
                 eps: float = 1e-5):
        super().__init__()
        import warnings

        import torchaudio

        self.scales, self.eps = tuple(scales), eps
        for i, (window, n_mels) in enumerate(self.scales):
            with warnings.catch_warnings():  # the small windows leave some narrow bands empty, as in the reference
                warnings.simplefilter("ignore")
                basis = torchaudio.functional.melscale_fbanks(
                    n_freqs=window // 2 + 1, f_min=0.0, f_max=float(fmax or sample_rate / 2), n_mels=n_mels,
                    sample_rate=sample_rate, norm="slaney", mel_scale="slaney").T.contiguous()
            self.register_buffer(f"basis{i}", basis, persistent=False)
            self.register_buffer(f"window{i}", torch.hann_window(window), persistent=False)

    def _log_mel(self, wav: Tensor, i: int) -> Tensor:
        window, _ = self.scales[i]
        spec = torch.stft(wav.reshape(-1, wav.shape[-1]), window, window // 4, window, getattr(self, f"window{i}"),
                          center=True, pad_mode="reflect", return_complex=True).abs()
        mel = torch.matmul(getattr(self, f"basis{i}"), spec)
        return torch.log10(torch.clamp(mel, min=self.eps))

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        total = fake.new_zeros(())
        for i in range(len(self.scales)):
            total = total + torch.mean(torch.abs(self._log_mel(fake, i) - self._log_mel(real, i)))
        return total


class VocosLogMel(nn.Module):
    """Vocos' loss mel (``MelSpecReconstructionLoss``): torchaudio's ``MelSpectrogram`` with its
    defaults — centred reflect-padded STFT, Hann window, magnitude (power 1), HTK mel scale from
    0 Hz without area normalisation — at ``config``'s sample rate, ``n_fft``, hop, ``n_mels`` and
    ``fmax``; then ``log(max(mel, 1e-7))`` (natural log; the config's fmin, clamp and log base are
    not used)."""

    def __init__(self, config: MelConfig, eps: float = 1e-7):
        super().__init__()
        import torchaudio

        self.eps = eps
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate, n_fft=config.n_fft, win_length=config.n_fft, hop_length=config.hop_length,
            f_max=config.fmax, n_mels=config.n_mels, center=True, power=1)

    def forward(self, wav: Tensor) -> Tensor:
        return torch.log(torch.clamp(self.mel(wav), min=self.eps))
