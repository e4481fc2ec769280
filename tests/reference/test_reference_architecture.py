"""Architecture equivalence with the published reference code.

Each reference model is built from its published config (../shared/reference), its weights are
perturbed (so that g differs from ||v|| and no two layers are alike), mapped into ours with
:mod:`ganpipe.models.reference_weights`, and both run on a real LJSpeech clip: the generator on a
mel made with the reference's own mel function, the discriminators on the clip's waveform. The
waveforms, every discriminator output and every feature map must agree to 1e-5.
"""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from ganpipe.models import build
from ganpipe.models import reference_weights as rw
from tests.support import oracles

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
TOL = 1e-5
FRAMES = 200  # generator input frames (51,200 samples); discriminators see 8,192 samples


@pytest.fixture(scope="module", autouse=True)
def _oracles():
    oracles.require_oracles()


@pytest.fixture(scope="module")
def clip(lj_wavs) -> torch.Tensor:
    wav, sr = sf.read(lj_wavs[0], dtype="float32")
    assert sr == 22050
    return torch.from_numpy(wav[: FRAMES * 256])


def perturb(module: torch.nn.Module, seed: int = 0) -> None:
    """Scale every reference tensor by 1 + 0.1 N(0, 1): no two layers alike, g != ||v||."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in [*module.parameters()]:
            tensor.mul_(1 + 0.1 * torch.randn(tensor.shape, generator=g))


def jik876_mel(wav: torch.Tensor) -> torch.Tensor:
    return oracles.jik876_mel_spectrogram()(wav[None], 1024, 80, 22050, 256, 1024, 0, 8000)


def toolkit_mel(wav: torch.Tensor) -> torch.Tensor:
    """The toolkit's log10 mel (80-7600 Hz) of its preprocessing, normalised over the clip as its stats would."""
    mel = oracles.parallel_wavegan_losses().MelSpectrogram(fs=22050, fft_size=1024, hop_size=256, fmin=80, fmax=7600)
    m = mel(wav[None])[..., :FRAMES]
    return (m - m.mean(-1, keepdim=True)) / m.std(-1, keepdim=True)


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


def compare_discriminator(ref_outs: list[list[torch.Tensor]], ours) -> float:
    """The reference's per-sub-discriminator layer lists (final output last) vs our features + logits."""
    assert len(ref_outs) == len(ours.logits)
    worst = 0.0
    for ref, feats, logits in zip(ref_outs, ours.features, ours.logits):
        assert len(ref) == len(feats) + 1
        for r, f in zip(ref[:-1], feats):
            worst = max(worst, max_diff(r, f))
        worst = max(worst, max_diff(ref[-1].flatten(1), logits))
    return worst


@pytest.mark.parametrize("variant", [pytest.param("hifigan_v1", marks=pytest.mark.slow),  # full size: ~14 s
                                     "hifigan_v2", "hifigan_v3"])
def test_jik876_generator_and_discriminators(variant, clip):
    ref_g, ref_mpd, ref_msd = oracles.jik876_models(variant)
    for i, m in enumerate((ref_g, ref_mpd, ref_msd)):
        perturb(m, i)
    ours = build(variant)
    ours.generator.load_state_dict(rw.from_jik876_generator(ref_g.state_dict(), ours.generator))
    mel = jik876_mel(clip)
    with torch.no_grad():
        assert max_diff(ref_g(mel), ours.generator(mel)) <= TOL
    if variant != "hifigan_v3":  # the discriminators are the same for every variant
        return
    ours.discriminators.load_state_dict(
        rw.from_jik876_discriminators(ref_mpd.state_dict(), ref_msd.state_dict(), ours.discriminators))
    wav = clip[None, None, :8192]
    for m in (ref_mpd, ref_msd, ours.discriminators):
        m.eval()  # spectral norm: the stored power-iteration vectors, no update
    with torch.no_grad():
        mpd_logits, _, mpd_fmaps, _ = ref_mpd(wav, wav)
        msd_logits, _, msd_fmaps, _ = ref_msd(wav, wav)
        mpd, msd = ours.discriminators["mpd"](wav), ours.discriminators["msd"](wav)
    assert compare_discriminator(mpd_fmaps, mpd) <= TOL
    assert compare_discriminator(msd_fmaps, msd) <= TOL
    for ref, logits in zip(mpd_logits + msd_logits, mpd.logits + msd.logits):
        assert max_diff(ref, logits) <= TOL


@pytest.mark.slow  # full-size HiFi-GAN V1 both ways: ~15 s
def test_toolkit_hifigan_v1(clip):
    ref_g, ref_d, _ = oracles.toolkit_models("hifigan")
    perturb(ref_g, 1)
    perturb(ref_d, 2)
    ours = build("hifigan_v1", msd_strides=(4, 4, 4, 4, 1), mpd_post_kernel=2)
    ours.generator.load_state_dict(rw.from_toolkit_hifigan_generator(ref_g.state_dict(), ours.generator))
    ours.discriminators.load_state_dict(rw.from_toolkit_hifigan_discriminator(ref_d.state_dict(), ours.discriminators))
    mel = toolkit_mel(clip)
    wav = clip[None, None, :8192]
    ref_d.eval()
    ours.discriminators.eval()
    with torch.no_grad():
        assert max_diff(ref_g(mel), ours.generator(mel)) <= TOL
        ref_outs = ref_d(wav)  # msd's then mpd's
        out = {name: d(wav) for name, d in ours.discriminators.items()}
    assert compare_discriminator(ref_outs[:3], out["msd"]) <= TOL
    assert compare_discriminator(ref_outs[3:], out["mpd"]) <= TOL


def test_toolkit_melgan_v1_generator_and_melgan_discriminator(clip):
    """melgan.v1.yaml pairs the MelGAN generator with PWG's discriminator (tested below); our melgan
    variant's discriminator is MelGAN's own, the toolkit's ``MelGANMultiScaleDiscriminator`` defaults."""
    ref_g, _, _ = oracles.toolkit_models("melgan")
    ref_d = oracles.parallel_wavegan_models().MelGANMultiScaleDiscriminator()
    perturb(ref_g, 3)
    perturb(ref_d, 4)
    ours = build("melgan")
    ours.generator.load_state_dict(rw.from_toolkit_melgan_generator(ref_g.state_dict(), ours.generator))
    ours.discriminators.load_state_dict(rw.from_toolkit_melgan_discriminator(ref_d.state_dict(), ours.discriminators))
    mel = toolkit_mel(clip)
    wav = clip[None, None, :8192]
    with torch.no_grad():
        assert max_diff(ref_g(mel), ours.generator(mel)) <= TOL
        assert compare_discriminator(ref_d(wav), ours.discriminators["msd"](wav)) <= TOL


def test_toolkit_multiband_melgan_v2(clip):
    ref_g, ref_d, config = oracles.toolkit_models("multiband_melgan")
    pqmf = oracles.toolkit_pqmf(config)
    perturb(ref_g, 5)
    perturb(ref_d, 6)
    ours = build("multiband_melgan", upsample_scales=(8, 4, 2))  # the v2 recipe's scales
    ours.generator.load_state_dict(
        rw.from_toolkit_multiband_melgan_generator(ref_g.state_dict(), ours.generator, pqmf.state_dict()))
    ours.discriminators.load_state_dict(rw.from_toolkit_melgan_discriminator(ref_d.state_dict(), ours.discriminators))
    mel = toolkit_mel(clip)
    wav = clip[None, None, :8192]
    with torch.no_grad():
        ref_sub = ref_g(mel)
        our_sub = ours.generator.forward_subbands(mel)
        assert max_diff(ref_sub, our_sub) <= TOL
        assert max_diff(pqmf.synthesis(ref_sub), ours.generator(mel)) <= TOL
        assert max_diff(pqmf.analysis(wav), ours.generator.pqmf.analysis(wav)) <= TOL
        assert compare_discriminator(ref_d(wav), ours.discriminators["msd"](wav)) <= TOL


def test_toolkit_parallel_wavegan_v1(clip):
    ref_g, ref_d, config = oracles.toolkit_models("parallel_wavegan")
    perturb(ref_g, 7)
    perturb(ref_d, 8)
    ours = build("parallel_wavegan")
    ours.generator.load_state_dict(rw.from_toolkit_pwg_generator(ref_g.state_dict(), ours.generator))
    ours.discriminators.load_state_dict(rw.from_toolkit_pwg_discriminator(ref_d.state_dict(), ours.discriminators))
    frames = 40  # 30 layers on 10,240 samples
    mel = toolkit_mel(clip)[..., :frames]
    noise = torch.randn(1, 1, frames * 256, generator=torch.Generator().manual_seed(0))
    window = config["generator_params"]["aux_context_window"]
    with torch.no_grad():
        # the toolkit's loader pads the mel by aux_context_window frames (replicate at inference)
        ref = ref_g(noise, F.pad(mel, (window, window), mode="replicate"))
        assert max_diff(ref, ours.generator(mel, noise=noise)) <= TOL
        wav = clip[None, None, :8192]
        assert max_diff(ref_d(wav), ours.discriminators["pwg"](wav).logits[0].view(1, 1, -1)) <= TOL


def test_a_checkpoint_of_other_sizes_names_the_first_layer_that_does_not_fit():
    ref_g, _, _ = oracles.jik876_models("hifigan_v1")
    small = build("hifigan_v1", upsample_initial_channel=256)
    with pytest.raises(rw.WeightMappingError, match=r"'conv_pre' bias has shape \(512,\), ganpipe's 'conv_pre' \(256,\)"):
        rw.from_jik876_generator(ref_g.state_dict(), small.generator)
    v3 = build("hifigan_v1", resblock="2", resblock_dilation_sizes=((1, 2), (2, 6), (3, 12)))
    with pytest.raises(rw.WeightMappingError, match="resblocks.0.convs1.0"):
        rw.from_jik876_generator(ref_g.state_dict(), v3.generator)
    state = ref_g.state_dict()
    del state["conv_post.bias"]
    with pytest.raises(rw.WeightMappingError, match="conv_post.bias"):
        rw.from_jik876_generator(state, build("hifigan_v1").generator)


def test_parametrization_names_and_plain_weights_map_too():
    """A state dict saved with the new parametrisation names, or after remove_weight_norm, maps as well."""
    ref_g, _, _ = oracles.jik876_models("hifigan_v3")
    perturb(ref_g)
    ours = build("hifigan_v3")
    ours.generator.load_state_dict(rw.from_jik876_generator(ref_g.state_dict(), ours.generator))
    mel = torch.randn(1, 80, 20, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = ours.generator(mel)
        again = build("hifigan_v3")  # its own (parametrisation) names: an identity mapping
        again.generator.load_state_dict(rw.map_state_dict(ours.generator.state_dict(), again.generator,
                                                          lambda layer: layer, "ganpipe"))
        assert max_diff(again.generator(mel), expected) == 0.0
        for m in ref_g.modules():
            try:
                torch.nn.utils.remove_weight_norm(m)
            except ValueError:
                pass
        plain = build("hifigan_v3")
        plain.generator.load_state_dict(rw.from_jik876_generator(ref_g.state_dict(), plain.generator))
        assert max_diff(plain.generator(mel), expected) <= TOL
    assert np.isfinite(float(expected.abs().max()))
