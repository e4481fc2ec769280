"""What ``ganpipe serve`` does without HTTP: a generator file served (unconditional: /v1/generate's
job), the WAV bytes it writes, the settings and their overrides."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from ganpipe.serving.contract import SynthesisError
from tests.support.registry_project import make_generator


@pytest.mark.slow
def test_unconditional_file_model_generates_clips_as_channels(tmp_path):
    from ganpipe.serving import jobs
    from ganpipe.serving.registry_follower import load_served
    from ganpipe.serving.wire import wav_bytes

    served = load_served(str(make_generator(tmp_path / "wg.pt", seed=1, variant="wavegan")), "torch")
    assert served.version == "file" and served.field is None and served.vocoder is None
    clips = jobs.generate(served, 3, 7, None, "torch")
    assert clips.shape == (served.model.samples, 3)
    np.testing.assert_array_equal(clips, jobs.generate(served, "3", "7", None, "torch"))  # same seed, same clips
    audio, rate = sf.read(io.BytesIO(wav_bytes(clips, served.model.sample_rate, "float32")), dtype="float32")
    assert rate == served.model.sample_rate and np.abs(audio - clips).max() == 0
    with pytest.raises(SynthesisError, match="/v1/vocode|vocoder|unconditional"):
        jobs.mel_job(served, np.zeros((80, 10)), None, None, "torch")
    with pytest.raises(SynthesisError, match="integers"):
        jobs.generate(served, "many", 0, None, "torch")


def test_pcm16_wav_bytes_round_trip():
    from ganpipe.serving.wire import wav_bytes, wav_header

    audio = np.linspace(-1.2, 1.2, 1001, dtype=np.float32)
    data, rate = sf.read(io.BytesIO(wav_bytes(audio, 16000)), dtype="float32")
    assert rate == 16000 and data.shape == (1001,) and np.abs(data - np.clip(audio, -1, 1)).max() < 1e-4
    assert len(wav_header(10, 16000, "float32")) == 44
    with pytest.raises(SynthesisError, match="pcm16"):
        wav_header(10, 16000, "mp3")


def test_serve_settings_overrides_are_validated():
    from ganpipe.config import ConfigError, parse_params
    from ganpipe.serving.server import default_model_uri, settings_with

    params = parse_params({})
    assert settings_with(params, {"port": 9000, "threads": None}).port == 9000
    assert default_model_uri(params) == f"models:/ganpipe-{params.dataset.name}-{params.model.variant}@champion"
    with pytest.raises(ConfigError, match="backend"):
        settings_with(params, {"backend": "tensorflow"})
    with pytest.raises(ConfigError, match="serve.api_key_env"):
        parse_params({"serve": {"api_key_env": "not a name"}})
