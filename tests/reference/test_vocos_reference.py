"""Vocos equals its reference code: ``vocos==0.1.0`` (test-only, requirements-test.lock)
built from the published ``vocos.yaml`` (../shared/reference/vocos), weights perturbed and mapped
with :mod:`ganpipe.models.reference_weights`:

* the generator (``VocosBackbone`` + ``ISTFTHead``, both ISTFT paddings) gives the same waveform on a
  real LJSpeech clip's mel, to 1e-5;
* the multi-period and multi-resolution discriminators give the same outputs and feature maps;
* one training iteration (tests/support/reference_step.vocos_step: ``VocosExp.training_step`` as written,
  with the package's losses) gives the same loss terms (1e-5 relative) and updated weights (within
  5 % of one AdamW step, see the test).
"""

from __future__ import annotations

import warnings

import pytest
import soundfile as sf
import torch

from ganpipe.models import build
from ganpipe.models import reference_weights as rw
from ganpipe.training.setup import cosine_with_warmup
from tests.support import oracles
from tests.support import reference_step as rs

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning",
                                        "ignore::DeprecationWarning")
TOL = 1e-5


@pytest.fixture(scope="module", autouse=True)
def _oracles():
    oracles.require_vocos()


@pytest.fixture(scope="module")
def clip(lj_wavs) -> torch.Tensor:
    wav, _ = sf.read(lj_wavs[0], dtype="float32")
    return torch.from_numpy(wav[: 200 * 256])


def perturb(module: torch.nn.Module, seed: int) -> None:
    """Every parameter times 1 + 0.1 N(0, 1) (no two layers alike, g != ||v||, biases non-zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.parameters():
            tensor.add_(0.01 * torch.randn(tensor.shape, generator=g)).mul_(1 + 0.1 * torch.randn(tensor.shape, generator=g))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


def scaled_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max|a - b| relative to the reference's scale where it exceeds 1 (the resolution discriminator's
    first maps reach ~40 on the peak-normalised STFT: float rounding there is ~4e-5 absolute)."""
    return max_diff(a, b) / max(1.0, float(b.abs().max()))


@pytest.mark.parametrize("padding", ["center", "same"])
def test_generator_equals_reference(padding, clip):
    """vocos.yaml's sizes (100 bands) on the clip's mel from Vocos' own feature extractor."""
    from vocos.feature_extractors import MelSpectrogramFeatures

    c = oracles.vocos_config()
    backbone, head = oracles.vocos_models(padding=padding)
    perturb(backbone, 0)
    perturb(head, 1)
    fe = c["feature_extractor"]["init_args"]
    mel = MelSpectrogramFeatures(**{**fe, "padding": "center"})(clip[None])
    b = c["backbone"]["init_args"]
    ours = build("vocos", n_mels=b["input_channels"], dim=b["dim"], intermediate_dim=b["intermediate_dim"],
                 num_layers=b["num_layers"], n_fft=c["head"]["init_args"]["n_fft"],
                 hop_length=c["head"]["init_args"]["hop_length"], sample_rate=c["sample_rate"], padding=padding)
    state = {**{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
             **{f"head.{k}": v for k, v in head.state_dict().items()}}
    ours.generator.load_state_dict(rw.from_vocos_generator(state, ours.generator))
    ours.generator.eval()
    with torch.no_grad():
        expected = head(backbone(mel))
        got = ours.generator(mel)[:, 0]
    assert got.shape[-1] == (mel.shape[-1] - (padding == "center")) * 256
    assert float(expected.abs().max()) > 0.05  # a real signal, not a vanishing one
    assert max_diff(got, expected) <= TOL


def test_discriminators_equal_reference(clip):
    from vocos.discriminators import MultiPeriodDiscriminator, MultiResolutionDiscriminator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mpd, mrd = MultiPeriodDiscriminator(), MultiResolutionDiscriminator()
    perturb(mpd, 2)
    perturb(mrd, 3)
    ours = build("vocos").discriminators
    ours.load_state_dict(rw.from_vocos_discriminators(mpd.state_dict(), mrd.state_dict(), ours))
    real, fake = clip[None, :8192], clip[None, 8192:16384] * 0.5
    with torch.no_grad():
        for name, ref in (("mpd", mpd), ("mrd", mrd)):
            r_scores, g_scores, r_maps, g_maps = ref(y=real, y_hat=fake)
            for x, scores, maps in ((real, r_scores, r_maps), (fake, g_scores, g_maps)):
                out = ours[name](x[:, None])
                assert len(out.logits) == len(scores)
                for score, logits, fmap, feats in zip(scores, out.logits, maps, out.features):
                    assert len(fmap) == len(feats) + 1  # the reference's maps end with the output
                    assert scaled_diff(logits, score.flatten(1)) <= TOL
                    for a, b in zip(feats, fmap[:-1]):
                        assert scaled_diff(a, b) <= TOL


def test_mapping_refuses_other_sizes():
    backbone, head = oracles.vocos_models(num_layers=2, dim=16, intermediate_dim=32)
    state = {**{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
             **{f"head.{k}": v for k, v in head.state_dict().items()}}
    wrong = build("vocos", n_mels=100, dim=16, intermediate_dim=32, num_layers=3).generator
    with pytest.raises(rw.WeightMappingError, match="blocks.2"):
        rw.from_vocos_generator(state, wrong)
    with pytest.raises(rw.WeightMappingError, match="shape"):
        rw.from_vocos_generator(state, build("vocos", n_mels=80, dim=16, intermediate_dim=32, num_layers=2).generator)


def test_cosine_schedule_is_transformers_formula():
    """get_cosine_schedule_with_warmup (num_cycles 0.5): linear warm-up, then 0.5 (1 + cos(pi p))."""
    assert cosine_with_warmup(0, 0, 100) == 1.0
    assert cosine_with_warmup(5, 10, 110) == 0.5
    assert cosine_with_warmup(60, 10, 110) == pytest.approx(0.5)
    assert cosine_with_warmup(110, 10, 110) == pytest.approx(0.0, abs=1e-12)
    assert cosine_with_warmup(210, 10, 110) == pytest.approx(1.0)  # transformers' formula does not stop at 0


@pytest.mark.slow  # the full-size multi-period discriminator's step both ways: ~10 s
def test_one_training_step_equals_reference(lj_corpus, lj_wavs, tmp_path):
    """Every loss term to 1e-5 relative. The updated weights to 5 % of one learning rate (AdamW's
    first step moves every weight by about one): entries whose gradient is near Adam's eps (1e-8)
    turn the float rounding of the other arithmetic (ganpipe's iSTFT is a matmul where Vocos calls
    irfft; weight norm is a parametrisation where Vocos hooks) into up to ~1.4 % of a step (measured)."""
    c = rs.vocos_step(lj_corpus, tmp_path, lj_wavs)
    assert c.losses and c.worst_loss_rel <= TOL, c.loss_rel()
    assert max(steps for _, steps in c.weights.values()) <= 0.05, c.weights
    assert c.moved["G"] > 0.1 and c.moved["D"] > 0.1, c.moved
