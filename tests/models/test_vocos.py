"""The vocos variant without the reference package: its inverse STFT equals torch.istft (``center``)
and the irfft + fold definition (``same``), and its ONNX export (MatMul / Pad / Add only) equals the
torch forward, for a hop that divides n_fft (the slice overlap-add) and one that does not
(the transposed-convolution overlap-add)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ganpipe.models import TINY_OVERRIDES, build
from ganpipe.models.vocos import InverseSTFT
from ganpipe.serving.backends import onnxruntime_available, prepare_for_inference


def test_published_size():
    """vocos.yaml's sizes: 13,531,650 generator parameters, as vocos==0.1.0's VocosBackbone + ISTFTHead
    count (the paper's 13.5M); the discriminators: HiFi-GAN's MPD + 3 resolution discriminators."""
    bundle = build("vocos")
    counts = bundle.parameter_counts()
    assert counts["generator"] == 13_531_650
    assert counts["discriminator.mpd"] == 41_105_770 and counts["discriminator.mrd"] == 1_413_990
    assert bundle.generator(torch.randn(1, 100, 3)).shape == (1, 1, 3 * 256)


def _spectrum(bins: int, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    mag = torch.exp(torch.randn(2, frames, bins, generator=g))
    phase = torch.randn(2, frames, bins, generator=g) * 3
    return mag * torch.cos(phase), mag * torch.sin(phase)


@pytest.mark.parametrize("n_fft, hop", [(64, 16), (60, 18)])
def test_center_padding_is_torch_istft(n_fft, hop):
    re, im = _spectrum(n_fft // 2 + 1, 20)
    expected = torch.istft(torch.complex(re, im).transpose(1, 2), n_fft, hop, n_fft, torch.hann_window(n_fft),
                           center=True)
    got = InverseSTFT(n_fft, hop, "center")(re, im)
    assert got.shape == expected.shape == (2, 19 * hop)
    assert float((got - expected).abs().max()) <= 1e-5 * float(expected.abs().max())


@pytest.mark.parametrize("n_fft, hop", [(64, 16), (64, 24)])
def test_same_padding_is_irfft_and_fold(n_fft, hop):
    re, im = _spectrum(n_fft // 2 + 1, 20)
    window = torch.hann_window(n_fft)
    frames = torch.fft.irfft(torch.complex(re, im), n_fft, dim=-1) * window  # (B, F, n_fft)
    size = 19 * hop + n_fft
    fold = lambda x: F.fold(x.transpose(1, 2), (1, size), (1, n_fft), stride=(1, hop))[:, 0, 0]  # noqa: E731
    pad = (n_fft - hop) // 2
    expected = (fold(frames) / fold(window.square().expand(1, 20, -1)))[:, pad:-pad]
    got = InverseSTFT(n_fft, hop, "same")(re, im)
    assert got.shape == expected.shape == (2, 20 * hop)
    assert float((got - expected).abs().max()) <= 1e-5 * float(expected.abs().max())


@pytest.mark.skipif(not onnxruntime_available(), reason="onnx / onnxruntime not installed")
@pytest.mark.parametrize("extra", [{}, {"n_fft": 384}], ids=["hop-divides-n_fft", "conv-ola"])
def test_onnx_export_equals_torch(extra):
    overrides = {**TINY_OVERRIDES["vocos"], **extra}  # hop 256: 384 is not a multiple (transposed conv)
    generator = build("vocos", **overrides).generator.eval()
    fast = prepare_for_inference(generator, backend="onnxruntime")
    mel = torch.randn(1, 80, 37) - 4.0
    with torch.no_grad():
        expected = generator(mel)
    got = fast(mel)
    assert got.shape == expected.shape == (1, 1, 37 * generator.hop_length)
    assert float((got - expected).abs().max()) <= 1e-5


def test_cosine_warmup_schedule_runs_and_resumes(demo_corpus, tmp_path):
    """The recipe's scheduler, stepped per update: after 2 updates (warm-up 1, cosine to 0 at 5) the
    rate is 5e-4 x 0.5 (1 + cos(pi / 4)); a run raised to 4 steps resumes it from the checkpoint
    (loaded with weights_only) and ends at step 4's factor."""
    import math

    from ganpipe.training.trainer import Trainer
    from tests.support.training_data import tiny_params, train_paths

    train = {"steps": 2, "checkpoint_every": 2, "lr_warmup_steps": 1, "lr_total_steps": 5}
    paths = train_paths(demo_corpus, tmp_path)
    first = Trainer(tiny_params("vocos", train=train), paths, progress=False)
    assert first.recipe.discriminator_weights == (("mrd", 0.1),) and first.recipe.adversarial_loss == "hinge-relu"
    first.run()
    factor = lambda n: 0.5 * (1 + math.cos(math.pi * (n - 1) / 4))  # noqa: E731
    assert first.opt_g.param_groups[0]["lr"] == pytest.approx(5e-4 * factor(2))
    assert first.opt_d.param_groups[0]["lr"] == pytest.approx(5e-4 * factor(2))
    second = Trainer(tiny_params("vocos", train={**train, "steps": 4}), paths, progress=False)
    assert second.step == 2 and second.opt_g.param_groups[0]["lr"] == pytest.approx(5e-4 * factor(2))
    second.run()
    assert second.opt_g.param_groups[0]["lr"] == pytest.approx(5e-4 * factor(4))


def test_discriminator_weights_must_name_the_variants_discriminators(demo_corpus, tmp_path):
    from ganpipe.training.trainer import Trainer
    from tests.support.training_data import tiny_params, train_paths

    params = tiny_params("vocos", train={"discriminator_weights": {"msd": 0.5}})
    with pytest.raises(ValueError, match=r"train.discriminator_weights: msd .*allowed: mpd, mrd"):
        Trainer(params, train_paths(demo_corpus, tmp_path), progress=False)
