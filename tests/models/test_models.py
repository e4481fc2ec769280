"""ganpipe.models: reference architectures (exact parameter counts), shapes, PQMF, phase shuffle,
weight-norm removal, label conditioning and the registry."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from ganpipe.models import TINY_OVERRIDES, VARIANTS, DiscriminatorOutput, ModelBundle, build, count_parameters
from ganpipe.models.hifigan import HIFIGAN_V1, HIFIGAN_V2, HIFIGAN_V3, HiFiGANGenerator
from ganpipe.models.mel_mlp_gan import bce_discriminator_loss, bce_generator_loss
from ganpipe.models.melgan import MelGANConfig, MelGANGenerator
from ganpipe.models.multiband_melgan import MultiBandMelGANConfig, MultiBandMelGANGenerator
from ganpipe.models.parallel_wavegan import ParallelWaveGANConfig, ParallelWaveGANGenerator
from ganpipe.models.phase_shuffle import PhaseShuffle, reflect_shift
from ganpipe.models.pqmf import PQMF
from ganpipe.models.specgan_spectrogram import SpecGANSpectrogram

VOCODERS = ("hifigan_v1", "hifigan_v2", "hifigan_v3", "melgan", "multiband_melgan", "parallel_wavegan")
UNCONDITIONAL = ("wavegan", "specgan", "mel_mlp_gan")
HOP = 256


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    """These are many tiny ops: one thread avoids contention on shared CI cores (2-3x faster)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(0)


def tiny(variant: str, **extra: object) -> ModelBundle:
    return build(variant, **TINY_OVERRIDES[variant], **extra)


def plain_count(generator: torch.nn.Module) -> int:
    generator.remove_weight_norm()
    return count_parameters(generator)


# ------------------------------------------------------------------------------------------------
# parameter counts
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("config", "with_weight_norm", "without_weight_norm", "published_millions"),
    [
        (HIFIGAN_V1, 13_936_130, 13_926_017, 13.92),
        (HIFIGAN_V2, 928_514, 925_985, 0.92),
        (HIFIGAN_V3, 1_464_322, 1_462_273, 1.46),
    ],
    ids=["V1", "V2", "V3"],
)
def test_hifigan_generator_parameter_counts(config, with_weight_norm, without_weight_norm, published_millions):
    generator = HiFiGANGenerator(config)
    assert count_parameters(generator) == with_weight_norm
    with torch.no_grad():
        assert generator(torch.randn(1, 80, 2)).shape == (1, 1, 2 * HOP)
    assert plain_count(generator) == without_weight_norm
    # the paper's table (two decimals, in millions) truncates the weight-norm-free count
    assert math.floor(without_weight_norm / 1e4) / 100 == pytest.approx(published_millions)


@pytest.mark.parametrize(
    ("make", "with_weight_norm", "without_weight_norm", "published", "tolerance"),
    [
        # MelGAN (descript reference, ngf 32, ratios 8-8-2-2, 3 stacks): paper 4.26M
        (lambda: MelGANGenerator(MelGANConfig()), 4_266_050, 4_260_257, 4.26e6, 0.02),
        # MB-MelGAN with scales (4, 4, 4), 384 channels, 4 stacks: +3.0% vs the paper's 1.91M
        # (a 16 kHz / hop-200 model; no 22.05 kHz / hop-256 layout of the reference matches it)
        (lambda: MultiBandMelGANGenerator(MultiBandMelGANConfig()), 1_968_056, 1_962_964, 1.91e6, 0.031),
        # PWG (kan-bayashi reference): -6.5% vs the paper's 1.44M, about the discriminator's size
        (lambda: ParallelWaveGANGenerator(ParallelWaveGANConfig()), 1_346_042, 1_334_309, 1.44e6, 0.066),
    ],
    ids=["melgan", "multiband_melgan", "parallel_wavegan"],
)
def test_vocoder_generator_parameter_counts(make, with_weight_norm, without_weight_norm, published, tolerance):
    generator = make()
    assert count_parameters(generator) == with_weight_norm
    assert abs(with_weight_norm / published - 1) <= tolerance
    assert plain_count(generator) == without_weight_norm


def test_reference_multiband_recipe_layout_is_available():
    generator = MultiBandMelGANGenerator(MultiBandMelGANConfig(upsample_scales=(8, 4, 2)))
    assert count_parameters(generator) == 2_539_448


def test_bundle_reports_counts_of_every_network():
    counts = build("parallel_wavegan").parameter_counts()
    assert counts == {"generator": 1_346_042, "discriminator.pwg": 99_842}


# ------------------------------------------------------------------------------------------------
# shapes
# ------------------------------------------------------------------------------------------------
EXPECTED_SUB_DISCRIMINATORS = {
    "hifigan_v1": {"mpd": 5, "msd": 3},
    "hifigan_v2": {"mpd": 5, "msd": 3},
    "hifigan_v3": {"mpd": 5, "msd": 3},
    "melgan": {"msd": 3},
    "multiband_melgan": {"msd": 3},
    "parallel_wavegan": {"pwg": 1},
}


def check_discriminator_output(output: DiscriminatorOutput, parts: int, batch: int) -> None:
    assert isinstance(output, DiscriminatorOutput)
    assert len(output.logits) == len(output.features) == parts
    assert output.class_logits is None
    for logits, features in zip(output.logits, output.features):
        assert logits.dim() == 2 and logits.shape[0] == batch and logits.shape[1] >= 1
        assert features and all(f.shape[0] == batch for f in features)


@pytest.mark.parametrize(
    ("variant", "size"),
    # reference-size HiFi-GAN V2 / V3 share V1's discriminators; their generators are run in
    # test_hifigan_generator_parameter_counts
    [(v, "reference") for v in VOCODERS if v not in ("hifigan_v2", "hifigan_v3")] + [(v, "tiny") for v in VOCODERS],
)
def test_vocoder_shapes(variant, size):
    bundle = build(variant) if size == "reference" else tiny(variant)
    frames, batch = max(2, bundle.min_frames), 2
    mel = torch.randn(batch, 80, frames)
    assert bundle.kind == "vocoder"
    assert bundle.hop_length == bundle.generator.hop_length == HOP
    assert bundle.sample_rate == 22050
    assert bundle.input_spec.shape == (80, None) and bundle.output_spec.shape == (1, None)
    with torch.no_grad():
        wav = bundle.generator(mel)
        assert wav.shape == (batch, 1, frames * HOP)
        assert set(bundle.discriminators) == set(EXPECTED_SUB_DISCRIMINATORS[variant])
        for name, discriminator in bundle.discriminators.items():
            check_discriminator_output(discriminator(wav), EXPECTED_SUB_DISCRIMINATORS[variant][name], batch)


@pytest.mark.parametrize(
    ("variant", "min_frames"),
    [("hifigan_v1", 1), ("melgan", 4), ("multiband_melgan", 7), ("parallel_wavegan", 1)],
)
def test_shortest_mel_input(variant, min_frames):
    bundle = tiny(variant)
    assert bundle.min_frames == bundle.generator.min_frames == min_frames
    with torch.no_grad():
        assert bundle.generator(torch.randn(1, 80, min_frames)).shape == (1, 1, min_frames * HOP)
        if min_frames > 1:
            with pytest.raises(ValueError, match=f"at least {min_frames} input frames"):
                bundle.generator(torch.randn(1, 80, min_frames - 1))


def test_multiband_generator_exposes_subbands_and_their_synthesis():
    generator = tiny("multiband_melgan").generator
    mel = torch.randn(2, 80, 7)
    with torch.no_grad():
        subbands = generator.forward_subbands(mel)
        assert subbands.shape == (2, 4, 7 * HOP // 4)
        torch.testing.assert_close(generator(mel), generator.pqmf.synthesis(subbands))


def test_parallel_wavegan_is_driven_by_noise():
    generator = tiny("parallel_wavegan").generator
    mel = torch.randn(1, 80, 2)
    noise = torch.randn(1, 1, 2 * HOP)
    with torch.no_grad():
        torch.testing.assert_close(generator(mel, noise=noise), generator(mel, noise=noise))
        assert not torch.allclose(generator(mel, noise=noise), generator(mel, noise=-noise))
        with pytest.raises(ValueError, match="noise must have shape"):
            generator(mel, noise=torch.randn(1, 1, HOP))


@pytest.mark.parametrize(
    ("variant", "output_shape", "discriminator_name"),
    [
        ("wavegan", (1, 16384), "wavegan"),
        ("specgan", (1, 128, 128), "specgan"),
        ("mel_mlp_gan", (80,), "mlp"),
    ],
)
@pytest.mark.parametrize("size", ["reference", "tiny"])
def test_unconditional_shapes(variant, output_shape, discriminator_name, size):
    bundle = build(variant) if size == "reference" else tiny(variant)
    batch = 2
    assert bundle.kind == "unconditional" and bundle.hop_length is None
    assert bundle.input_spec.shape == (100,) and bundle.output_spec.shape == output_shape
    z = bundle.generator.sample_latent(batch)
    assert z.shape == (batch, 100)
    with torch.no_grad():
        sample = bundle.generator(z)
        assert sample.shape == (batch, *output_shape)
        output = bundle.discriminators[discriminator_name](sample)
    assert [t.shape for t in output.logits] == [(batch, 1)]
    assert len(output.features) == 1 and output.class_logits is None


def test_wavegan_latent_is_uniform_and_output_bounded():
    generator = tiny("wavegan").generator
    z = generator.sample_latent(256)
    assert z.min() >= -1 and z.max() <= 1 and z.min() < -0.9 and z.max() > 0.9
    with torch.no_grad():
        assert generator(z[:2]).abs().max() <= 1


def test_wavegan_discriminator_rejects_wrong_length():
    discriminator = tiny("wavegan").discriminators["wavegan"]
    with pytest.raises(ValueError, match="16384"):
        discriminator(torch.randn(1, 1, 8192))


# ------------------------------------------------------------------------------------------------
# PQMF
# ------------------------------------------------------------------------------------------------
def snr_db(reference: torch.Tensor, estimate: torch.Tensor, margin: int = 128) -> float:
    """SNR away from the ends, where the filters run into the zero padding."""
    reference, estimate = reference[..., margin:-margin], estimate[..., margin:-margin]
    return 10 * math.log10(reference.pow(2).sum().item() / (estimate - reference).pow(2).sum().item())


def band_limited_noise(length: int, low: float, high: float, seed: int = 0) -> torch.Tensor:
    """White noise with its spectrum zeroed outside [low, high] (fractions of Nyquist)."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.rfft(rng.standard_normal(length))
    frequencies = np.linspace(0, 1, spectrum.size)
    spectrum[(frequencies < low) | (frequencies > high)] = 0
    return torch.tensor(np.fft.irfft(spectrum, n=length), dtype=torch.float32).view(1, 1, -1)


def test_pqmf_reconstructs_band_limited_noise():
    pqmf = PQMF()
    signal = band_limited_noise(8192, 0.02, 0.9)
    subbands = pqmf.analysis(signal)
    assert subbands.shape == (1, 4, 2048)
    assert snr_db(signal, pqmf.synthesis(subbands)) > 50


def test_pqmf_reconstructs_real_speech(lj_wavs: list[Path]):
    assert len(lj_wavs) >= 2
    pqmf = PQMF()
    for path in lj_wavs[:2]:
        audio, sample_rate = sf.read(path, dtype="float32")
        assert sample_rate == 22050
        audio = audio[: len(audio) // 4 * 4]
        signal = torch.from_numpy(audio).view(1, 1, -1)
        reconstruction = pqmf.synthesis(pqmf.analysis(signal))
        assert reconstruction.shape == signal.shape
        assert snr_db(signal, reconstruction) > 50
        assert (reconstruction - signal).abs().max() < 5e-3


@pytest.mark.parametrize("band", range(4))
def test_pqmf_analysis_separates_bands(band):
    pqmf = PQMF()
    centre = (band + 0.5) / 4  # centre of band k, as a fraction of Nyquist
    signal = band_limited_noise(8192, centre - 0.06, centre + 0.06, seed=band)
    energy = pqmf.analysis(signal)[0, :, 256:-256].pow(2).sum(dim=-1)
    assert energy.argmax().item() == band
    assert energy[band] / energy.sum() > 0.95


# ------------------------------------------------------------------------------------------------
# phase shuffle
# ------------------------------------------------------------------------------------------------
def test_reflect_shift_moves_and_reflect_pads():
    x = torch.arange(6.0).view(1, 1, 6).repeat(3, 2, 1)
    shifted = reflect_shift(x, torch.tensor([2, -2, 0]))
    assert shifted[0, 0].tolist() == [2, 1, 0, 1, 2, 3]  # later by 2, left edge reflected
    assert shifted[1, 1].tolist() == [2, 3, 4, 5, 4, 3]  # earlier by 2, right edge reflected
    assert shifted[2].equal(x[2])
    assert shifted[0, 1].equal(shifted[0, 0])  # all channels move together
    # the same as reflect padding then cropping (the reference's tf.pad(..., 'REFLECT'))
    torch.testing.assert_close(shifted[:1], F.pad(x[:1], (2, 0), mode="reflect")[..., :6])
    torch.testing.assert_close(shifted[1:2], F.pad(x[:1], (0, 2), mode="reflect")[..., 2:])


def test_phase_shuffle_shifts_each_example_within_radius_in_training_only():
    shuffle = PhaseShuffle(2)
    x = torch.randn(64, 3, 50)
    shuffle.train()
    out = shuffle(x)
    candidates = {s: reflect_shift(x, torch.full((64,), s)) for s in range(-2, 3)}
    seen = set()
    for b in range(64):
        matches = [s for s, c in candidates.items() if torch.equal(out[b], c[b])]
        assert matches, f"example {b} is not a shift of -2..2"
        seen.add(matches[0])
    assert seen == {-2, -1, 0, 1, 2}
    shuffle.eval()
    assert shuffle(x) is x


def test_reflect_shift_rejects_shifts_past_the_signal():
    with pytest.raises(ValueError):
        reflect_shift(torch.zeros(1, 1, 4), torch.tensor([4]))


# ------------------------------------------------------------------------------------------------
# weight norm
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VOCODERS)
def test_remove_weight_norm_keeps_output(variant):
    # the full-size V1 (the published inference model) and every tiny vocoder
    generator = HiFiGANGenerator(HIFIGAN_V1) if variant == "hifigan_v1" else tiny(variant).generator
    generator.eval()
    mel = torch.randn(1, 80, 8)
    kwargs = {"noise": torch.randn(1, 1, 8 * HOP)} if variant == "parallel_wavegan" else {}
    with torch.no_grad():
        before = generator(mel, **kwargs)
        generator.remove_weight_norm()
        after = generator(mel, **kwargs)
    assert not any("parametrizations" in name for name, _ in generator.named_parameters())
    assert (after - before).abs().max().item() < 1e-5


# ------------------------------------------------------------------------------------------------
# conditioning
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant", VOCODERS)
def test_speaker_id_changes_vocoder_output(variant):
    bundle = tiny(variant, n_speakers=3, speaker_embed_dim=4)
    assert bundle.conditioning == "speaker" and bundle.n_classes == 3
    generator = bundle.generator
    mel = torch.randn(1, 80, 8)
    kwargs = {"noise": torch.randn(1, 1, 8 * HOP)} if variant == "parallel_wavegan" else {}
    first = generator(mel, torch.tensor([0]), **kwargs)
    with torch.no_grad():
        assert torch.equal(first, generator(mel, torch.tensor([0]), **kwargs))  # deterministic
        assert not torch.equal(first, generator(mel, torch.tensor([2]), **kwargs))
    # the output depends on exactly the chosen speaker's embedding
    first.square().sum().backward()
    embedding_grad = generator.speaker_conditioning.embedding.weight.grad
    assert embedding_grad[0].abs().sum() > 0
    assert embedding_grad[1:].abs().sum() == 0
    with pytest.raises(ValueError, match="speaker"):
        generator(mel, **kwargs)


def test_unconditioned_generator_refuses_speaker_ids():
    with pytest.raises(ValueError, match="without speaker conditioning"):
        tiny("melgan").generator(torch.randn(1, 80, 8), torch.tensor([0]))


@pytest.mark.parametrize("variant", UNCONDITIONAL)
def test_class_label_changes_generator_output(variant):
    bundle = tiny(variant, n_classes=10)
    assert bundle.conditioning == "class" and bundle.n_classes == 10
    generator = bundle.generator.eval()
    z = generator.sample_latent(1).repeat(2, 1)
    with torch.no_grad():
        out = generator(z, torch.tensor([3, 7]))
    assert (out[0] - out[1]).abs().max() > 1e-6


@pytest.mark.parametrize("variant", VOCODERS + UNCONDITIONAL)
def test_projection_and_auxiliary_classifier_discriminators(variant):
    labels_option = "n_speakers" if variant in VOCODERS else "n_classes"
    bundle = tiny(variant, **{labels_option: 3, "discriminator_projection": True, "discriminator_aux_classifier": True})
    assert bundle.discriminator_uses_labels and bundle.discriminator_classifies
    with torch.no_grad():
        if variant in VOCODERS:
            sample = bundle.generator(torch.randn(2, 80, 8), torch.tensor([0, 1]))
        else:
            sample = bundle.generator(bundle.generator.sample_latent(2), torch.tensor([0, 1]))
        for discriminator in bundle.discriminators.values():
            discriminator.eval()  # no spectral-norm power iteration or phase shuffle between calls
            one = discriminator(sample, torch.tensor([0, 0]))
            two = discriminator(sample, torch.tensor([2, 2]))
            assert one.class_logits is not None and len(one.class_logits) == len(one.logits)
            assert all(c.shape == (2, 3) for c in one.class_logits)
            # projection: labels move the real/fake score; the classifier ignores them
            assert any((a - b).abs().max() > 1e-7 for a, b in zip(one.logits, two.logits))
            for a, b in zip(one.class_logits, two.class_logits):
                torch.testing.assert_close(a, b)
            with pytest.raises(ValueError, match="pass labels"):
                discriminator(sample)


def test_hifigan_discriminator_normalisation():
    msd = tiny("hifigan_v1").discriminators["msd"]
    first, second = msd.discriminators[0].convs[0], msd.discriminators[1].convs[0]
    assert type(first.parametrizations.weight[0]).__name__ == "_SpectralNorm"
    assert type(second.parametrizations.weight[0]).__name__ == "_WeightNorm"
    mpd = tiny("hifigan_v1").discriminators["mpd"]
    assert [d.period for d in mpd.discriminators] == [2, 3, 5, 7, 11]


def test_unconditional_discriminator_refuses_labels():
    bundle = tiny("parallel_wavegan")
    with pytest.raises(ValueError, match="without class conditioning"):
        bundle.discriminators["pwg"](torch.randn(1, 1, HOP), torch.tensor([0]))


def test_discriminator_conditioning_needs_labels_count():
    with pytest.raises(ValueError, match="n_speakers"):
        build("melgan", discriminator_projection=True)


# ------------------------------------------------------------------------------------------------
# registry
# ------------------------------------------------------------------------------------------------
def test_variants_are_the_documented_set():
    assert VARIANTS == {
        "hifigan_v1", "hifigan_v2", "hifigan_v3", "melgan", "multiband_melgan",
        "parallel_wavegan", "vocos", "bigvgan_v2", "bigvgan_base", "wavegan", "specgan", "mel_mlp_gan",
    }
    assert set(TINY_OVERRIDES) == VARIANTS


def test_unknown_variant_lists_allowed_names():
    with pytest.raises(ValueError) as error:
        build("waveglow")
    message = str(error.value)
    assert "'waveglow'" in message
    assert all(name in message for name in VARIANTS)


def test_unknown_override_lists_allowed_options():
    with pytest.raises(ValueError, match="unknown option.*ngf_typo.*allowed:.*residual_stacks"):
        build("melgan", ngf_typo=3)


def test_upsampling_must_equal_hop_length():
    with pytest.raises(ValueError, match="hop_length"):
        build("hifigan_v1", upsample_rates=[8, 8, 2, 4])
    with pytest.raises(ValueError, match="hop_length"):
        build("multiband_melgan", upsample_scales=[4, 4, 2])


def test_overrides_accept_lists_and_config_rebuilds_the_same_model():
    overrides = {"upsample_rates": [8, 4, 8], "upsample_kernel_sizes": [16, 8, 16]}
    bundle = build("hifigan_v3", **TINY_OVERRIDES["hifigan_v3"], **overrides)
    assert bundle.config["upsample_rates"] == (8, 4, 8)
    rebuilt = build(bundle.variant, **bundle.config)
    assert rebuilt.parameter_counts() == bundle.parameter_counts()
    assert rebuilt.generator.state_dict().keys() == bundle.generator.state_dict().keys()


def test_recommended_losses():
    losses = {v: tiny(v).adversarial_loss for v in sorted(VARIANTS)}
    assert losses["hifigan_v1"] == "lsgan" and losses["melgan"] == "hinge"
    assert losses["wavegan"] == losses["specgan"] == "wgan-gp" and losses["mel_mlp_gan"] == "bce"


# ------------------------------------------------------------------------------------------------
# SpecGAN audio representation, MLP GAN losses
# ------------------------------------------------------------------------------------------------
def speech_clips(lj_wavs: list[Path], count: int) -> torch.Tensor:
    assert len(lj_wavs) >= count
    clips = []
    for path in lj_wavs[:count]:
        audio, sample_rate = sf.read(path, dtype="float32")
        audio = AF.resample(torch.from_numpy(audio), sample_rate, 16000)
        clips.append(audio[4000 : 4000 + 16384])
    return torch.stack(clips).unsqueeze(1)


def test_specgan_spectrogram_round_trip(lj_wavs: list[Path]):
    spectrogram = SpecGANSpectrogram()
    clips = speech_clips(lj_wavs, 4)
    with pytest.raises(RuntimeError, match="fit_statistics"):
        spectrogram.normalize(clips)
    spectrogram.fit_statistics(clips)
    normalized = spectrogram.normalize(clips)
    assert normalized.shape == (4, 1, 128, 128)
    assert normalized.min() >= -1 and normalized.max() <= 1
    # about zero mean / 1/3 std per bin before clipping
    assert normalized.mean().abs() < 0.05 and 0.2 < normalized.std() < 0.4
    audio = spectrogram.to_audio(normalized)
    assert audio.shape == (4, 1, 16384)
    # Griffin-Lim recovers a signal whose spectrogram is close to the one it was given
    assert (spectrogram.normalize(audio) - normalized).abs().mean() < 0.05


def test_specgan_generator_carries_its_spectrogram_statistics():
    generator = tiny("specgan").generator
    assert {"spectrogram.mean", "spectrogram.std", "spectrogram.fitted"} <= set(generator.state_dict())


def test_bce_losses():
    confident = torch.full((4, 1), 20.0)
    assert bce_discriminator_loss(confident, -confident) < 1e-6
    assert bce_generator_loss(torch.zeros(4, 1)).item() == pytest.approx(math.log(2))


# ------------------------------------------------------------------------------------------------
# training plumbing
# ------------------------------------------------------------------------------------------------
def generator_inputs(bundle: ModelBundle, batch: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    if bundle.kind == "vocoder":
        frames = max(8, bundle.min_frames)
        extra = {"noise": torch.randn(batch, 1, frames * HOP)} if bundle.variant == "parallel_wavegan" else {}
        return torch.randn(batch, 80, frames), extra
    return bundle.generator.sample_latent(batch), {}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_one_training_step_and_state_dict_round_trip(variant):
    bundle = tiny(variant)
    inputs, extra = generator_inputs(bundle, batch=2)
    fake = bundle.generator(inputs, **extra)
    generator_loss = sum(
        (1 - logits).square().mean() for d in bundle.discriminators.values() for logits in d(fake).logits
    )
    generator_loss.backward()
    # (the reference PWG's last block computes a residual output that nothing reads)
    unused = f"blocks.{bundle.config['layers'] - 1}.conv_out." if variant == "parallel_wavegan" else None
    without_grad = [n for n, p in bundle.generator.named_parameters() if p.grad is None]
    assert all(unused and n.startswith(unused) for n in without_grad), without_grad
    discriminator_loss = sum(
        logits.square().mean() for d in bundle.discriminators.values() for logits in d(fake.detach()).logits
    )
    discriminator_loss.backward()
    assert all(p.grad is not None for d in bundle.discriminators.values() for p in d.parameters())

    copy = build(variant, **bundle.config)
    copy.generator.load_state_dict(bundle.generator.state_dict())
    copy.discriminators.load_state_dict(bundle.discriminators.state_dict())
    bundle.generator.eval(), copy.generator.eval()
    with torch.no_grad():
        torch.testing.assert_close(copy.generator(inputs, **extra), bundle.generator(inputs, **extra))


def _tone_gain(module: torch.nn.Module, hz: float, sample_rate: int = 22050) -> float:
    t = torch.arange(2 * sample_rate) / sample_rate
    x = torch.cos(2 * math.pi * hz * t).view(1, 1, -1) + 0.0
    y = module(x)[..., 4000:-4000]
    return float(y.pow(2).mean().sqrt() / x[..., 4000:-4000].pow(2).mean().sqrt())


def test_hifigan_dc_block_is_off_by_default_and_removes_dc_and_drift_only():
    from ganpipe.models.hifigan import DCBlock

    assert isinstance(HiFiGANGenerator(HIFIGAN_V3).dc_block, torch.nn.Identity)  # the reference architecture
    block = DCBlock(22050, 20.0)
    assert _tone_gain(block, 0.0) < 1e-6
    assert _tone_gain(block, 5.0) < 0.15
    for hz in (100.0, 220.0, 1000.0, 5000.0):  # the speech band passes
        assert _tone_gain(block, hz) == pytest.approx(1.0, abs=0.02)
    assert block(torch.ones(1, 1, 10)).abs().max() == 0  # shorter than its window: still defined


def test_hifigan_dc_block_override_centres_the_generator_output():
    torch.manual_seed(0)
    mel = torch.randn(1, 80, 60)
    outputs = {}
    for hz in (0.0, 20.0):
        bundle = build("hifigan_v3", **TINY_OVERRIDES["hifigan_v3"], dc_block_hz=hz)
        with torch.no_grad():
            bundle.generator.conv_post.bias.fill_(0.5)  # a generator whose output sits at an offset
            outputs[hz] = bundle.generator(mel)
        assert not any("dc_block" in k for k in bundle.generator.state_dict())  # no weights: same files
    assert outputs[0.0].mean() > 0.3
    assert outputs[20.0].mean().abs() < 0.02
    assert build("hifigan_v3", dc_block_hz=20).config["dc_block_hz"] == 20


def test_hifigan_dc_block_rejects_a_bad_cutoff():
    with pytest.raises(ValueError, match="dc_block_hz"):
        build("hifigan_v3", dc_block_hz=-1.0)
