"""`ganpipe mel` makes exactly the mel `ganpipe synthesize --mel` expects: mel then
synthesize --mel equals copy-synthesis from the WAV, for jik876's published HiFi-GAN V1 on a real clip;
and --model errors say what is wrong (item 7): a missing file is "file not found", models:/NAME without
an alias or a version says how to give one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from ganpipe.cli import app

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


def test_mel_then_synthesize_equals_copy_synthesis(tmp_path: Path, published_v1: Path, lj_wavs):
    runner = CliRunner()
    wav = tmp_path / "clip.wav"
    sf.write(wav, sf.read(lj_wavs[0], dtype="float32")[0][: 3 * 22050], 22050, subtype="PCM_16")
    res = runner.invoke(app, ["mel", str(wav), "--model", str(published_v1), "-o", str(tmp_path / "x.npy")])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["mel_config"]["framing"] == "jik876" and summary["mels"][0]["shape"] == [80, 3 * 22050 // 256]
    res = runner.invoke(app, ["synthesize", "--model", str(published_v1), "--mel", str(tmp_path / "x.npy"),
                              "-o", str(tmp_path / "from_mel.wav")])
    assert res.exit_code == 0 and "warning" not in res.output, res.output
    res = runner.invoke(app, ["synthesize", "--model", str(published_v1), "--wav", str(wav),
                              "-o", str(tmp_path / "from_wav.wav")])
    assert res.exit_code == 0, res.output
    a, b = sf.read(tmp_path / "from_mel.wav", dtype="int16")[0], sf.read(tmp_path / "from_wav.wav", dtype="int16")[0]
    assert a.shape == b.shape and np.array_equal(a, b)


def test_mel_of_several_files_and_bad_input(tmp_path: Path, published_v1: Path, lj_wavs):
    runner = CliRunner()
    res = runner.invoke(app, ["mel", *map(str, lj_wavs[:2]), "--preset", "hifigan", "-o", str(tmp_path / "mels")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in (tmp_path / "mels").iterdir()) == sorted(f"{p.stem}.npy" for p in lj_wavs[:2])
    sf.write(tmp_path / "16k.wav", sf.read(lj_wavs[0], dtype="float32")[0][:16000], 16000)
    res = runner.invoke(app, ["mel", str(tmp_path / "16k.wav"), "--model", str(published_v1), "-o",
                              str(tmp_path / "y.npy")])
    assert res.exit_code == 2 and "--resample" in res.output and "16000 Hz" in res.output, res.output
    res = runner.invoke(app, ["mel", str(lj_wavs[0]), "-o", str(tmp_path / "z.npy")])
    assert res.exit_code == 2 and "exactly one of --model" in res.output, res.output


@pytest.mark.parametrize("command", ["synthesize", "mel"])
def test_model_argument_errors_say_what_is_wrong(tmp_path: Path, lj_wavs, command: str):
    runner = CliRunner()
    io = ["--wav", str(lj_wavs[0]), "-o", str(tmp_path / "o.wav")] if command == "synthesize" else \
        [str(lj_wavs[0]), "-o", str(tmp_path / "o.npy")]
    tracking = ["--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    res = runner.invoke(app, [command, "--model", "models/nope.pt", *io, *tracking])
    assert res.exit_code == 2 and "file not found: models/nope.pt" in res.output, res.output
    assert "No such artifact" not in res.output
    res = runner.invoke(app, [command, "--model", "models:/lj-hifigan-v1", *io, *tracking])
    assert res.exit_code == 2, res.output
    assert "needs an alias or a version: models:/lj-hifigan-v1@champion" in res.output, res.output
    assert "not found" not in res.output
