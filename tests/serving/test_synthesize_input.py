"""`ganpipe synthesize` on bad input: a truncated WAV (header declares more data than
the file holds) and a 100-byte WAV are reported as corrupt naming the file; a 16 kHz input's error
names --resample; a --mel of another kind than the model's (natural log vs log10, normalised or not)
warns naming both."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from ganpipe.audio import AudioError, read_audio, wav_truncation
from ganpipe.cli import app
from ganpipe.mel import MelConfig, MelSpectrogram
from ganpipe.synthesis import MelRangeWarning, mel_range_warning
from tests.support.registry_project import MODEL, eval_json, make_generator, make_project, mlflow_template

# the model's mel: the pwg preset (log10, floor log10(1e-10), mean/variance normalised)
PWG = MelConfig(fmin=80.0, fmax=7600.0, log_base="10", clamp=1e-10, normalize="meanvar")
NATURAL = MelConfig()  # the hifigan preset: natural log, floor ln(1e-5), not normalised


def mel_of(wav: np.ndarray, cfg: MelConfig) -> np.ndarray:
    with torch.inference_mode():
        raw = MelConfig.from_dict({**cfg.to_dict(), "normalize": "none"})
        return MelSpectrogram(raw)(torch.from_numpy(wav)).numpy()


@pytest.fixture(scope="module")
def speech(lj_wavs) -> list[np.ndarray]:
    return [sf.read(p, dtype="float32")[0][: 3 * 22050] for p in lj_wavs[:4]]


@pytest.fixture(scope="module")
def stats(speech) -> dict[str, np.ndarray]:
    mels = np.concatenate([mel_of(w, PWG) for w in speech[1:]], axis=1)
    return {"mean": mels.mean(axis=1).astype(np.float32), "std": mels.std(axis=1).astype(np.float32)}


@pytest.fixture(scope="module")
def store(tmp_path_factory, stats):
    """A registry whose champion is a tiny vocoder with the pwg mel and real train-split statistics."""
    from ganpipe.model_registry import register_generator

    root = tmp_path_factory.mktemp("synth-input") / "proj"
    params = make_project(root, mlflow_template(tmp_path_factory))
    gen = make_generator(root / "g.pt", seed=3, mel=PWG, stats=stats)
    assert register_generator(gen, eval_json(root / "e.json", mcd=7.0), params, root).decision == "champion"
    return ["synthesize", "--model", f"models:/{MODEL}@champion", "--tracking-uri",
            f"sqlite:///{root / '.mlflow' / 'mlflow.db'}"]


def test_truncated_wavs_are_reported_as_corrupt(tmp_path: Path, speech):
    whole = tmp_path / "whole.wav"
    sf.write(whole, speech[0], 22050, subtype="PCM_16")
    data = whole.read_bytes()
    assert wav_truncation(whole) is None
    for name, size in (("cut.wav", 20_000), ("tiny.wav", 100), ("header.wav", 30)):
        (tmp_path / name).write_bytes(data[:size])
        with pytest.raises(AudioError, match="corrupt WAV file, truncated") as err:
            read_audio(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)
    assert "the file holds 19956" in wav_truncation(tmp_path / "cut.wav")
    assert "(28 of 66150 sample frames)" in wav_truncation(tmp_path / "tiny.wav")
    # odd-sized chunks before the data (word-aligned) and extra chunks after it are fine
    sf.write(tmp_path / "stereo.wav", np.stack([speech[0][:999]] * 2, axis=1), 22050, subtype="PCM_24")
    assert wav_truncation(tmp_path / "stereo.wav") is None
    assert read_audio(tmp_path / "stereo.wav")[0].shape == (999,)


def test_synthesize_names_the_corrupt_file_resample_and_a_short_input(tmp_path: Path, store, speech):
    runner = CliRunner()
    sf.write(tmp_path / "ok.wav", speech[0], 22050, subtype="PCM_16")
    data = (tmp_path / "ok.wav").read_bytes()
    for name, size in (("cut.wav", 20_000), ("tiny.wav", 100)):
        (tmp_path / name).write_bytes(data[:size])
        res = runner.invoke(app, [*store, "--wav", str(tmp_path / name), "-o", str(tmp_path / "out.wav")])
        assert res.exit_code == 2, res.output
        assert str(tmp_path / name) in res.output and "corrupt" in res.output and "truncated" in res.output
    assert not (tmp_path / "out.wav").exists()

    sf.write(tmp_path / "16k.wav", speech[0][:16000], 16000)
    res = runner.invoke(app, [*store, "--wav", str(tmp_path / "16k.wav"), "-o", str(tmp_path / "out.wav")])
    assert res.exit_code == 2 and "--resample" in res.output and "16000 Hz" in res.output, res.output

    sf.write(tmp_path / "short.wav", speech[0][:28], 22050)  # a complete file of 28 samples
    res = runner.invoke(app, [*store, "--wav", str(tmp_path / "short.wav"), "-o", str(tmp_path / "out.wav")])
    assert res.exit_code == 2 and str(tmp_path / "short.wav") in res.output and "too short" in res.output

    res = runner.invoke(app, [*store, "--wav", str(tmp_path / "ok.wav"), "-o", str(tmp_path / "out.wav")])
    assert res.exit_code == 0, res.output


def test_mel_of_another_kind_warns_naming_both(tmp_path: Path, store, speech, stats):
    runner = CliRunner()
    clip = speech[0]  # not in the statistics
    own = mel_of(clip, PWG)
    normalised = (own - stats["mean"][:, None]) / stats["std"][:, None]
    cases = {"natural.npy": (mel_of(clip, MelConfig(fmin=80.0, fmax=7600.0)), "a natural-log mel"),
             "normalised.npy": (normalised, "a mean/variance-normalised mel")}
    for name, (array, kind) in cases.items():
        np.save(tmp_path / name, array)
        res = runner.invoke(app, [*store, "--mel", str(tmp_path / name), "-o", str(tmp_path / "o.wav")])
        assert res.exit_code == 0, res.output
        assert "warning" in res.output and str(tmp_path / name) in res.output
        assert kind in res.output and "the model expects a log10 mel" in res.output, res.output
    np.save(tmp_path / "own.npy", own)
    res = runner.invoke(app, [*store, "--mel", str(tmp_path / "own.npy"), "-o", str(tmp_path / "o.wav")])
    assert res.exit_code == 0 and "warning" not in res.output, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["samples"] == own.shape[1] * 256


def test_mel_range_check_both_ways(speech):
    """Natural-log models get log10 or normalised mels, log10 models natural-log ones: each is named;
    each model's own mels, quiet or loud, are not."""
    natural_stats = np.concatenate([mel_of(w, NATURAL) for w in speech[1:]], axis=1)
    nat_mean, nat_std = natural_stats.mean(axis=1), natural_stats.std(axis=1)
    clip = speech[0]
    natural = mel_of(clip, NATURAL)
    log10 = mel_of(clip, MelConfig(log_base="10"))
    for gain in (1.0, 0.1, 3.0):  # the model's own kind of mel at other levels: no warning
        assert mel_range_warning(mel_of(np.clip(clip * gain, -1, 1), NATURAL), NATURAL, nat_mean, nat_std) is None
    message = mel_range_warning(log10, NATURAL, nat_mean, nat_std)
    assert message and "a log10 mel" in message and "expects a natural-log mel" in message
    message = mel_range_warning((natural - nat_mean[:, None]) / nat_std[:, None], NATURAL, nat_mean, nat_std)
    assert message and "mean/variance-normalised" in message
    # without statistics, values below the model's floor still give it away
    message = mel_range_warning(mel_of(clip, MelConfig(clamp=1e-5)), MelConfig(log_base="10", clamp=1e-5))
    assert message and "below the floor" in message and "natural-log" in message


def test_vocoder_api_warns(store, speech, stats):
    from ganpipe.synthesis import load_vocoder

    voc = load_vocoder(store[2], tracking_uri=store[4])
    with pytest.warns(MelRangeWarning, match="natural-log"):
        voc.mel_to_audio(mel_of(speech[0][:22050], MelConfig(fmin=80.0, fmax=7600.0)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        voc.mel_to_audio(voc.compute_mel(speech[0][:22050], 22050))
