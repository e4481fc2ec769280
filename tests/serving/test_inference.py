"""ganpipe.serving.backends: the fast paths give the reference forward's waveform (max |diff| < 1e-4).

The reference is built independently of ganpipe.serving.backends, the way jik876/hifi-gan's inference
script does it: a second generator with the same weights, weight norm removed, eval, no_grad.
"""

from __future__ import annotations

import warnings

import pytest
import soundfile as sf
import torch

from ganpipe.mel import MelConfig, MelSpectrogram
from ganpipe.models import TINY_OVERRIDES, build
from ganpipe.models.normalization import has_weight_norm
from ganpipe.serving.backends import (
    InferenceGenerator,
    export_onnx,
    onnxruntime_available,
    prepare_for_inference,
    run_generator,
)

TOL = 1e-4
HAS_ORT = onnxruntime_available()
needs_ort = pytest.mark.skipif(not HAS_ORT, reason="onnx / onnxruntime not installed")


@pytest.fixture(scope="module")
def lj_mel(lj_wavs) -> torch.Tensor:
    """Project log-mel of ~1.2 s of a real LJSpeech clip, (1, 80, 103)."""
    config = MelConfig()
    wav, sr = sf.read(lj_wavs[0], dtype="float32", frames=int(1.2 * config.sample_rate))
    assert sr == config.sample_rate
    return MelSpectrogram(config)(torch.from_numpy(wav)).unsqueeze(0)


def reference_pair(variant: str, **overrides):
    """(trainable generator, independent reference copy: weight norm removed, eval)."""
    torch.manual_seed(0)
    generator = build(variant, **overrides).generator
    reference = build(variant, **overrides).generator
    reference.load_state_dict(generator.state_dict())
    reference.remove_weight_norm()
    reference.eval()
    return generator, reference


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    assert a.shape == b.shape, (a.shape, b.shape)
    return float((a - b).abs().max())


@pytest.mark.parametrize("variant", [pytest.param("hifigan_v1", marks=pytest.mark.slow), "hifigan_v3"])  # V1: ~10 s
def test_full_size_fast_paths_match_reference_on_real_mel(variant, lj_mel):
    generator, reference = reference_pair(variant)
    with torch.no_grad():
        expected = reference(lj_mel)
    assert expected.shape == (1, 1, lj_mel.shape[-1] * 256)
    assert float(expected.abs().max()) > 1e-3  # not a degenerate all-zero output

    backends = ["torch", "onnxruntime"] if HAS_ORT else ["torch"]
    for backend in backends:
        fast = prepare_for_inference(generator, backend=backend)
        assert fast.backend == backend
        out = fast(lj_mel)
        assert out.dtype == torch.float32 and out.device == lj_mel.device
        assert max_diff(out, expected) < TOL, backend

    # the caller's generator is untouched: weight norm, training mode, gradients all still there
    assert generator.training
    assert has_weight_norm(generator.conv_pre) and has_weight_norm(generator.conv_post)
    assert all(p.requires_grad for p in generator.parameters())
    generator(lj_mel[..., :8]).sum().backward()
    assert generator.conv_pre.parametrizations.weight.original1.grad is not None


@needs_ort
def test_auto_picks_onnxruntime_on_cpu_and_verifies_it():
    generator, _ = reference_pair("hifigan_v3", **TINY_OVERRIDES["hifigan_v3"])
    fast = prepare_for_inference(generator)
    assert isinstance(fast, InferenceGenerator)
    assert fast.backend == "onnxruntime"
    assert fast.verified_max_abs_diff is not None and fast.verified_max_abs_diff < TOL


@needs_ort
def test_onnxruntime_dynamic_batch_length_and_speaker_ids():
    generator, reference = reference_pair("hifigan_v3", n_speakers=3, **TINY_OVERRIDES["hifigan_v3"])
    fast = prepare_for_inference(generator, backend="onnxruntime")
    torch.manual_seed(1)
    for batch, frames in [(1, 5), (3, 57)]:  # neither is the 32-frame export probe
        mel = torch.randn(batch, 80, frames) - 5.0
        speaker = torch.arange(batch) % 3
        with torch.no_grad():
            expected = reference(mel, speaker=speaker)
        assert max_diff(fast(mel, speaker), expected) < TOL
    with pytest.raises(ValueError, match="speaker"):
        fast(torch.randn(1, 80, 10))


@needs_ort
def test_onnxruntime_hifigan_with_dc_block_any_length():
    generator, reference = reference_pair("hifigan_v3", dc_block_hz=20.0, **TINY_OVERRIDES["hifigan_v3"])
    fast = prepare_for_inference(generator, backend="onnxruntime")
    torch.manual_seed(2)
    for frames in (2, 57):  # shorter and longer than the blocker's 1103-sample window
        mel = torch.randn(1, 80, frames) - 5.0
        with torch.no_grad():
            expected = reference(mel)
        assert max_diff(fast(mel), expected) < TOL


@needs_ort
@pytest.mark.parametrize("variant", ["melgan", "multiband_melgan", "bigvgan_v2", "bigvgan_base"])
def test_onnxruntime_other_deterministic_vocoders(variant):
    generator, reference = reference_pair(variant, **TINY_OVERRIDES[variant])
    fast = prepare_for_inference(generator, backend="onnxruntime")
    mel = torch.randn(2, 80, 24) - 5.0
    with torch.no_grad():
        expected = reference(mel)
    assert max_diff(fast(mel), expected) < TOL


@needs_ort
def test_generator_that_draws_noise_is_never_given_a_mismatching_fast_path():
    generator, _ = reference_pair("parallel_wavegan", **TINY_OVERRIDES["parallel_wavegan"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # auto must not even try (and warn about) onnxruntime
        assert prepare_for_inference(generator).backend == "torch"
    with pytest.raises(RuntimeError, match="differs from the reference"):
        prepare_for_inference(generator, backend="onnxruntime")


def test_run_generator_shapes_and_reuse_until_weights_change():
    generator, reference = reference_pair("hifigan_v3", **TINY_OVERRIDES["hifigan_v3"])
    mel = torch.randn(80, 20) - 5.0
    with torch.no_grad():
        expected = reference(mel.unsqueeze(0))
    wav = run_generator(generator, mel)
    assert wav.shape == (20 * 256,)
    assert max_diff(wav, expected[0, 0]) < TOL
    assert run_generator(generator, mel.unsqueeze(0).repeat(2, 1, 1)).shape == (2, 1, 20 * 256)
    assert max_diff(run_generator(generator, mel.numpy()), expected[0, 0]) < TOL  # numpy input

    # new weights (as after an optimiser step or load_state_dict) must not reuse the old module
    other, other_ref = reference_pair("hifigan_v3", **TINY_OVERRIDES["hifigan_v3"])
    torch.manual_seed(7)
    fresh = build("hifigan_v3", **TINY_OVERRIDES["hifigan_v3"]).generator
    generator.load_state_dict(fresh.state_dict())
    fresh.remove_weight_norm()
    fresh.eval()
    with torch.no_grad():
        new_expected = fresh(mel.unsqueeze(0))
    assert max_diff(new_expected, expected) > 1e-3  # the weights really differ
    assert max_diff(run_generator(generator, mel), new_expected[0, 0]) < TOL

    prepared = prepare_for_inference(other, backend="torch")
    with torch.no_grad():
        assert max_diff(run_generator(prepared, mel), other_ref(mel.unsqueeze(0))[0, 0]) < TOL


def test_input_checks():
    generator, _ = reference_pair("melgan", **TINY_OVERRIDES["melgan"])
    fast = prepare_for_inference(generator, backend="torch")
    with pytest.raises(ValueError, match="bins"):
        fast(torch.randn(1, 40, 30))
    with pytest.raises(ValueError, match="at least"):
        fast(torch.randn(1, 80, generator.min_frames - 1))
    with pytest.raises(ValueError, match="unknown backend"):
        prepare_for_inference(generator, backend="tensorrt")


@needs_ort
def test_export_onnx_writes_a_valid_model(tmp_path):
    import onnx

    generator, _ = reference_pair("hifigan_v2", **TINY_OVERRIDES["hifigan_v2"])
    data = export_onnx(generator, tmp_path / "g.onnx")
    model = onnx.load(tmp_path / "g.onnx")
    onnx.checker.check_model(model)
    assert (tmp_path / "g.onnx").read_bytes() == data
    assert [i.name for i in model.graph.input] == ["mel"]
    assert [o.name for o in model.graph.output] == ["wav"]
    assert has_weight_norm(generator.conv_pre)  # exporting did not strip the caller's weight norm
