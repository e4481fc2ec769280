"""The rules of `ganpipe synthesize` hold in the Python API too (one copy, ganpipe.serving.rules): a mel
and a waveform together, too-short input, audio at another rate without resampling, the other kind's
options, unreadable .npy files; the served core and the API give the same minimum-length message."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ganpipe.serving.contract import InputError
from ganpipe.serving.rules import Request, too_short
from ganpipe.synthesis import SynthesisError, load_vocoder, synthesize
from tests.support.registry_project import make_generator

HOP = 256


@pytest.fixture(scope="module")
def generator(tmp_path_factory) -> Path:
    """A tiny vocoder's generator file (22050 Hz, hop 256): a model the API loads without a registry."""
    return make_generator(tmp_path_factory.mktemp("rules") / "g.pt", seed=4)


def test_a_mel_and_a_waveform_together_are_refused_before_any_loading(tmp_path):
    mel = np.zeros((80, 20), np.float32)
    with pytest.raises(SynthesisError, match="exactly one of --mel or --wav"):
        synthesize(str(tmp_path / "no-such-model.pt"), mel=mel, wav=np.zeros(22050, np.float32), sample_rate=22050)
    with pytest.raises(SynthesisError, match="do not go together"):
        synthesize("unused", mel=mel, n=2)
    with pytest.raises(SynthesisError, match="--mel-config describes the mels"):
        Request(wav="in.wav", mel_config={"hop_length": 256}).check()
    with pytest.raises(SynthesisError, match="--n .* or --latents, not both"):
        Request(n=2, latents=np.zeros((2, 100))).check()
    Request(n=0, seed=0).check()  # zero is a value, not "not given"
    with pytest.raises(SynthesisError, match="--seed"):
        Request(mel=mel, seed=0).check()


def test_the_api_enforces_the_cli_rules_on_a_vocoder(generator: Path, tmp_path: Path):
    wav = (0.1 * np.sin(np.arange(22050) / 10)).astype(np.float32)
    audio, sr = synthesize(str(generator), wav=wav, sample_rate=22050)
    assert sr == 22050 and audio.shape == ((len(wav) // HOP) * HOP,)

    # another sample rate: refused unless resample=True (the CLI's --resample)
    with pytest.raises(SynthesisError, match=r"16000 Hz.*sample_rate=22050.*--resample"):
        synthesize(str(generator), wav=wav[:16000], sample_rate=16000)
    audio, sr = synthesize(str(generator), wav=wav[:16000], sample_rate=16000, resample=True)
    assert sr == 22050 and audio.shape == ((22050 // HOP) * HOP,)
    sf.write(tmp_path / "16k.wav", wav[:16000], 16000)
    with pytest.raises(SynthesisError, match=r"16k\.wav: 16000 Hz"):
        synthesize(str(generator), wav=tmp_path / "16k.wav")
    voc = load_vocoder(str(generator))
    with pytest.raises(SynthesisError, match="--resample"):
        voc.copy_synthesis(wav[:16000], 16000)

    # too short: the same rule, in samples and frames, for the API and a file
    sf.write(tmp_path / "short.wav", wav[:28], 22050)
    with pytest.raises(SynthesisError, match=r"short\.wav: input too short: 28 samples \(1\.3 ms at 22050 Hz\)"):
        synthesize(str(generator), wav=tmp_path / "short.wav")
    with pytest.raises(SynthesisError, match="too short"):
        voc.copy_synthesis(wav[:28], 22050)

    # vocoder options only; a .npy is read, an unreadable one named
    with pytest.raises(SynthesisError, match="is a vocoder .*are for unconditional models; give --mel or --wav"):
        synthesize(voc, n=2)
    with pytest.raises(SynthesisError, match="give exactly one of --mel or --wav"):
        synthesize(voc)
    np.save(tmp_path / "m.npy", voc.compute_mel(wav, 22050))
    audio, _ = synthesize(voc, mel=tmp_path / "m.npy")
    assert audio.shape == ((len(wav) // HOP) * HOP,)
    (tmp_path / "bad.npy").write_bytes(b"not an array")
    with pytest.raises(SynthesisError, match=r"bad\.npy: cannot read a \.npy array"):
        synthesize(voc, mel=tmp_path / "bad.npy")


def test_the_served_core_and_the_api_share_the_minimum_length_rule(generator: Path):
    voc = load_vocoder(str(generator))
    core = voc.model.unwrap_python_model().core
    need = voc.min_samples
    assert need == core.min_frames * core.hop
    with pytest.raises(InputError) as served:
        core.predict(np.zeros((1, 1, need - 1), np.float32), input_type="waveform")
    assert str(served.value) == too_short(need - 1, need, "samples", HOP, 22050)
    with pytest.raises(SynthesisError) as api:
        voc.copy_synthesis(np.zeros(need - 1, np.float32), 22050)
    assert str(api.value) == f"audio: {too_short(need - 1, need, 'samples', HOP, 22050)}"
    assert too_short(need, need, "samples") is None


def test_one_speaker_and_label_lookup():
    from ganpipe.serving.cores import name_or_index

    assert name_or_index("b", ["a", "b"], "speaker", "speaker", required=True) == 1
    assert name_or_index("1", ["a", "b"], "label", "class", required=False) == 1
    assert name_or_index("", ["a", "b"], "label", "class", required=False) is None
    assert name_or_index(None, None, "speaker", "speaker", required=True) is None
    with pytest.raises(InputError, match="speaker-conditioned: give params 'speaker'"):
        name_or_index("", ["a"], "speaker", "speaker", required=True)
    with pytest.raises(InputError, match="not class-conditioned; leave 'label' empty"):
        name_or_index("x", None, "label", "class", required=False)
    with pytest.raises(InputError, match=r"unknown label '7'; this model knows \['a', 'b'\]"):
        name_or_index("7", ["a", "b"], "label", "class", required=False)
