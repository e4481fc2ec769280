"""Low-precision backends (onnx-int8, bf16): selectable in the Python API, the served model and the
registry, and falling back to fp32 with one warning naming the CPU feature when it is masked."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from ganpipe.lowprec import BF16, INT8, LowPrecisionFallback, prepare, reset_warnings
from ganpipe.lowprec.cpu_features import MASK_ENV, cpu_flags, missing_feature, use_probe
from ganpipe.mel import MelConfig, MelSpectrogram
from tests.support.registry_project import make_generator

ALL = {"avx2", "avx512f", "avx512_vnni", "avx512_bf16"}


@pytest.fixture()
def fresh_warnings():
    reset_warnings()
    yield
    reset_warnings()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from ganpipe.generator_io import load_generator

    return load_generator(make_generator(tmp_path_factory.mktemp("lowprec") / "g.pt", seed=3))


@pytest.fixture(scope="module")
def real_mels(lj_wavs) -> list[np.ndarray]:
    out = []
    for path in lj_wavs[:3]:
        wav, _ = sf.read(path, dtype="float32", frames=22050)
        with torch.inference_mode():
            out.append(MelSpectrogram(MelConfig())(torch.from_numpy(wav)).numpy())
    return out


def fallbacks(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, LowPrecisionFallback)]


def test_cpu_feature_mask_and_probe(monkeypatch):
    with use_probe(lambda: ALL):
        assert missing_feature(BF16) is None and missing_feature(INT8) is None
        monkeypatch.setenv(MASK_ENV, "avx512_bf16")
        assert "avx512_bf16" not in cpu_flags()
        assert missing_feature(BF16) == "avx512_bf16"
        assert missing_feature(INT8) is None
    with use_probe(lambda: set()):
        assert missing_feature(INT8) == "avx2"


def test_bf16_masked_falls_back_to_fp32_with_one_warning(tiny, real_mels, monkeypatch, fresh_warnings):
    monkeypatch.setenv(MASK_ENV, "avx512_bf16,amx_bf16,bf16")
    mel = torch.from_numpy(real_mels[0])[None]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = prepare(tiny.generator, backend=BF16)
        second = prepare(tiny.generator, backend=BF16)
    messages = fallbacks(caught)
    assert len(messages) == 1 and "avx512_bf16" in messages[0], messages
    assert first.backend == second.backend == "onnxruntime"  # our fp32 path
    fp32 = prepare(tiny.generator, backend="torch")
    torch.testing.assert_close(first(mel), fp32(mel), atol=1e-4, rtol=0)


def test_int8_masked_falls_back(tiny, real_mels, fresh_warnings):
    with use_probe(lambda: set()), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fast = prepare(tiny.generator, backend=INT8, calibration=real_mels)
    assert fast.backend == "onnxruntime"
    assert any("avx2" in m for m in fallbacks(caught))


def test_backends_run_when_the_feature_is_there(tiny, real_mels, fresh_warnings):
    """With the feature reported present, each backend runs in low precision: close to fp32, not equal."""
    mel = torch.from_numpy(real_mels[1])[None]
    fp32 = prepare(tiny.generator, backend="torch")(mel)
    with use_probe(lambda: ALL), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match="calibration"):
            prepare(tiny.generator, backend=INT8)
        outs = {b: prepare(tiny.generator, backend=b, calibration=real_mels) for b in (INT8, BF16)}
    assert not fallbacks(caught)
    for backend, fast in outs.items():
        assert fast.backend == backend
        wav = fast(mel)
        assert wav.shape == fp32.shape and torch.isfinite(wav).all()
        err = float(((wav - fp32) ** 2).sum() / (fp32 ** 2).sum())
        assert 0 < err < 0.1, (backend, err)  # lossy, but the same signal (> 10 dB SNR on a tiny random model)


def test_served_model_backends(tiny, real_mels, tmp_path, monkeypatch, fresh_warnings):
    from ganpipe.lowprec.int8 import export_int8
    from ganpipe.serving.contract import InputError
    from ganpipe.serving.cores import VocoderCore

    mel = real_mels[2][None]
    plain = VocoderCore(tiny)
    with pytest.raises(InputError, match="no int8 export"):
        plain.predict(mel, backend=INT8)
    with pytest.raises(InputError, match="must be one of"):
        plain.predict(mel, backend="int4")
    export_int8(tiny.generator, real_mels, tmp_path / "g.int8.onnx")
    core = VocoderCore(tiny, int8_path=tmp_path / "g.int8.onnx")
    fp32 = core.predict(mel, backend="torch")
    int8 = core.predict(mel, backend=INT8)
    assert int8.shape == fp32.shape and not np.array_equal(int8, fp32)
    monkeypatch.setenv(MASK_ENV, "avx2")  # no int8 dot products: the served model answers in fp32, warned once
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = core.predict(mel, backend=INT8)
        core.predict(mel, backend=INT8)
    assert len(fallbacks(caught)) == 1 and "avx2" in fallbacks(caught)[0]
    np.testing.assert_array_equal(again, fp32)


def test_registry_export_int8_is_a_validated_key():
    from pydantic import ValidationError

    from ganpipe.config import RegistryParams

    assert RegistryParams().export_int8 is False
    assert RegistryParams(export_int8=True).export_int8 is True
    with pytest.raises(ValidationError):
        RegistryParams(export_int8="sometimes")


def test_int8_export_calibrates_on_the_project_clips(tiny, lj_wavs, tmp_path):
    import shutil

    from ganpipe.lowprec import INT8_ARTIFACT
    from ganpipe.lowprec.registration import add_int8_export

    artifacts, meta = add_int8_export(tmp_path, tiny, tmp_path)
    assert artifacts == {} and "no calibration mels" in meta["onnx_int8_skipped"]
    (tmp_path / "data" / "prepared" / "wavs").mkdir(parents=True)
    for wav in lj_wavs[:2]:
        shutil.copy(wav, tmp_path / "data" / "prepared" / "wavs" / wav.name)
    artifacts, meta = add_int8_export(tmp_path, tiny, tmp_path)
    assert meta["onnx_int8"] is True and (tmp_path / "generator.int8.onnx").is_file()
    assert set(artifacts) == {INT8_ARTIFACT}
    assert meta["onnx_int8_info"]["calibration_source"].startswith("2 clips of data/prepared")
    info = meta["onnx_int8_info"]
    assert info["format"] == "QOperator" and info["quantized_op_types"] == ["Conv", "MatMul"]
    kept = info["kept_fp32"]  # conv_pre, conv_post and the last stage (after the last upsampling)
    assert kept[:2] == ["/conv_pre/Conv", "/conv_post/Conv"] and len(kept) > 2
    assert len({k.split("/")[1] for k in kept[2:]}) == 1  # one stage: the last
