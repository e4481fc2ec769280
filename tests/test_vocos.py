"""The vocos variant without the reference package: its inverse STFT equals torch.istft (``center``)
and the irfft + fold definition (``same``), and its ONNX export (MatMul / Pad / Add only) equals the
torch forward, for a hop that divides n_fft (the slice overlap-add) and one that does not
(the transposed-convolution overlap-add)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ganpipe.inference import onnxruntime_available, prepare_for_inference
from ganpipe.models import TINY_OVERRIDES, build
from ganpipe.models.vocos import InverseSTFT


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
