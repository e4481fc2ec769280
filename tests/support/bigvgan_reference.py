"""NVIDIA/BigVGAN (the package ``bigvgan==2.4.1``, requirements-test.lock) as a test oracle: its generator
(``use_cuda_kernel=False``: the torch activation path), discriminators and losses built from the published
configs in ``../shared/reference/bigvgan/`` at the sizes a test asks for, and one iteration of its
train.py loop, as written there (D first: mpd + the second discriminator on the detached prediction,
each clipped apart; then G: multi-scale or single-scale mel loss, feature matching, adversarial; both
ExponentialLR schedulers stepped after the step). Shared by tests/reference/test_reference_bigvgan.py and
benchmarks/bench_bigvgan.py.
"""

from __future__ import annotations

import copy
import itertools
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from tests.conftest import REPO_ROOT, missing_shared

REFERENCE = REPO_ROOT.parent / "shared" / "reference" / "bigvgan"
CONFIGS = {"bigvgan_v2": "bigvgan_v2_22khz_80band_256x.json", "bigvgan_base": "bigvgan_base_22khz_80band.json"}


def require_bigvgan() -> None:
    """Skip unless ``bigvgan`` (and nnAudio, which its CQT discriminator imports) and the configs are here
    (under ``CI=true``: fail, naming what is missing)."""
    if not REFERENCE.is_dir():
        missing_shared(f"published BigVGAN configs not found at {REFERENCE}")
    try:
        import bigvgan.bigvgan
        import bigvgan.discriminators
        import bigvgan.loss  # noqa: F401
        import nnAudio  # noqa: F401
    except ImportError as exc:
        missing_shared(f"bigvgan==2.4.1 (+ huggingface-hub, nnaudio) is not installed (scripts/test.sh installs it "
                       f"from requirements-test.lock): {exc}")


def config(variant: str, **changes: Any) -> Any:
    """The published config of ``variant`` as BigVGAN's ``AttrDict``, with ``changes`` applied."""
    from bigvgan.env import AttrDict

    h = AttrDict(json.loads((REFERENCE / CONFIGS[variant]).read_text()))
    h.update(changes)
    return h


def _copy(h: Any) -> Any:
    """A fresh ``AttrDict`` (the reference's networks write into the one they get; a deepcopy of its
    AttrDict loses the attribute access)."""
    from bigvgan.env import AttrDict

    return AttrDict(copy.deepcopy(dict(h)))


def generator(h: Any) -> torch.nn.Module:
    from bigvgan.bigvgan import BigVGAN

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BigVGAN(_copy(h), use_cuda_kernel=False)


def discriminators(h: Any) -> tuple[torch.nn.Module, torch.nn.Module]:
    """(mpd, mrd) as train.py builds them: the CQT discriminator where the config asks for it."""
    import contextlib
    import io

    import bigvgan.discriminators as D

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):  # both print their settings
        warnings.simplefilter("ignore")
        mpd = D.MultiPeriodDiscriminator(h)
        second = (D.MultiScaleSubbandCQTDiscriminator(_copy(h)) if h.get("use_cqtd_instead_of_mrd")
                  else D.MultiResolutionDiscriminator(h))
    return mpd, second


def randomize(module: torch.nn.Module, seed: int) -> None:
    """Move the Snake/SnakeBeta parameters and the biases off their initial values (0 / a narrow
    uniform), so that a comparison exercises them too."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name.endswith(("alpha", "beta")):
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


@dataclass
class Reference:
    """The reference's networks, optimisers and schedulers, as train.py sets them up."""
    h: Any
    generator: torch.nn.Module
    mpd: torch.nn.Module
    mrd: torch.nn.Module
    optim_g: torch.optim.Optimizer = field(init=False)
    optim_d: torch.optim.Optimizer = field(init=False)

    def __post_init__(self) -> None:
        h = self.h
        self.optim_g = torch.optim.AdamW(self.generator.parameters(), h.learning_rate, betas=[h.adam_b1, h.adam_b2])
        self.optim_d = torch.optim.AdamW(itertools.chain(self.mrd.parameters(), self.mpd.parameters()),
                                         h.learning_rate, betas=[h.adam_b1, h.adam_b2])
        self.scheduler_g = torch.optim.lr_scheduler.ExponentialLR(self.optim_g, gamma=h.lr_decay)
        self.scheduler_d = torch.optim.lr_scheduler.ExponentialLR(self.optim_d, gamma=h.lr_decay)


def iteration(ref: Reference, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """One iteration of BigVGAN's train.py loop body (``freeze_step`` 0) on mel ``x``, audio ``y`` ``(B, 1, T)``.
    Returns its loss terms (mel already times ``lambda_melloss``)."""
    from bigvgan.loss import MultiScaleMelSpectrogramLoss, discriminator_loss, feature_loss, generator_loss
    from bigvgan.meldataset import mel_spectrogram

    h, generator, mpd, mrd = ref.h, ref.generator, ref.mpd, ref.mrd
    for net in (generator, mpd, mrd):
        net.train()

    def loss_mel_spec(w: torch.Tensor) -> torch.Tensor:
        return mel_spectrogram(w, h.n_fft, h.num_mels, h.sampling_rate, h.hop_size, h.win_size, h.fmin,
                               h.fmax_for_loss)

    y_mel = loss_mel_spec(y.squeeze(1))
    y_g_hat = generator(x)
    y_g_hat_mel = loss_mel_spec(y_g_hat.squeeze(1))
    ref.optim_d.zero_grad()
    y_df_hat_r, y_df_hat_g, _, _ = mpd(y, y_g_hat.detach())
    loss_disc_f, _, _ = discriminator_loss(y_df_hat_r, y_df_hat_g)
    y_ds_hat_r, y_ds_hat_g, _, _ = mrd(y, y_g_hat.detach())
    loss_disc_s, _, _ = discriminator_loss(y_ds_hat_r, y_ds_hat_g)
    loss_disc_all = loss_disc_s + loss_disc_f
    clip_grad_norm = h.get("clip_grad_norm", 1000.0)
    loss_disc_all.backward()
    torch.nn.utils.clip_grad_norm_(mpd.parameters(), clip_grad_norm)
    torch.nn.utils.clip_grad_norm_(mrd.parameters(), clip_grad_norm)
    ref.optim_d.step()
    ref.optim_g.zero_grad()
    lambda_melloss = h.get("lambda_melloss", 45.0)
    if h.get("use_multiscale_melloss", False):
        loss_mel = MultiScaleMelSpectrogramLoss(sampling_rate=h.sampling_rate)(y, y_g_hat) * lambda_melloss
    else:
        loss_mel = F.l1_loss(y_mel, y_g_hat_mel) * lambda_melloss
    y_df_hat_r, y_df_hat_g, fmap_f_r, fmap_f_g = mpd(y, y_g_hat)
    loss_fm_f = feature_loss(fmap_f_r, fmap_f_g)
    loss_gen_f, _ = generator_loss(y_df_hat_g)
    y_ds_hat_r, y_ds_hat_g, fmap_s_r, fmap_s_g = mrd(y, y_g_hat)
    loss_fm_s = feature_loss(fmap_s_r, fmap_s_g)
    loss_gen_s, _ = generator_loss(y_ds_hat_g)
    loss_gen_all = loss_gen_s + loss_gen_f + loss_fm_s + loss_fm_f + loss_mel
    loss_gen_all.backward()
    torch.nn.utils.clip_grad_norm_(generator.parameters(), clip_grad_norm)
    ref.optim_g.step()
    ref.scheduler_g.step()
    ref.scheduler_d.step()
    return {"d_loss": float(loss_disc_all.detach()), "mel": float(loss_mel.detach()),
            "fm": float((loss_fm_s + loss_fm_f).detach()), "adv": float((loss_gen_s + loss_gen_f).detach()),
            "g_loss": float(loss_gen_all.detach()), "lr_g": ref.optim_g.param_groups[0]["lr"],
            "lr_d": ref.optim_d.param_groups[0]["lr"]}


def load_real(wavs: list[Path], length: int, offset: int = 8192) -> torch.Tensor:
    """``(2, 1, length)``: two real LJSpeech segments."""
    import soundfile as sf

    return torch.stack([torch.from_numpy(sf.read(w, dtype="float32")[0][offset:offset + length]) for w in wavs[:2]])[:, None]
