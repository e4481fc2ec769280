"""The mel-kind warning works for imported models too: `ganpipe synthesize --mel`
with a log10 mel or a mean/variance-normalised mel warns, naming both kinds, for jik876's published
HiFi-GAN V1 (no statistics of its own) and for a ParallelWaveGAN-toolkit model (log10, its own
statistics); each model's own mel of a real clip, loud or quiet, does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from ganpipe.cli import app
from ganpipe.mel import MelConfig, MelSpectrogram
from ganpipe.synthesis import load_vocoder
from tests.support import oracles
from tests.support import published_checkpoints as pc

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

TOOLKIT_SMALL = {"generator_params": {"channels": 64},
                 "discriminator_params": {"scale_discriminator_params": {"channels": 16, "max_downsample_channels": 128},
                                          "period_discriminator_params": {"channels": 4,
                                                                          "max_downsample_channels": 128}}}


def mel_of(wav: np.ndarray, cfg: MelConfig) -> np.ndarray:
    with torch.inference_mode():
        return MelSpectrogram(MelConfig.from_dict({**cfg.to_dict(), "normalize": "none"}))(
            torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32))).numpy()


@pytest.fixture(scope="module")
def toolkit_model(tmp_path_factory, lj_wavs) -> Path:
    """A HiFi-GAN of the toolkit's LJSpeech recipe (smaller), imported with its stats.h5 of real clips."""
    from ganpipe.importing import import_model
    from tests.support.fresh_clone import merge

    oracles.require_oracles()
    folder = tmp_path_factory.mktemp("toolkit")
    checkpoint = pc.toolkit_checkpoint(folder / "ck", merge(oracles.toolkit_config("hifigan"), TOOLKIT_SMALL),
                                       lj_wavs[2:6])
    import_model("pwg", checkpoint, folder / "pwg.pt")
    return folder / "pwg.pt"


def kinds(model: Path, clip: np.ndarray, other_clips: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The model's own mel of ``clip``, the same with the other log base, and normalised."""
    cfg = load_vocoder(str(model)).mel_config
    own = mel_of(clip, cfg)
    other = MelConfig.from_dict({**cfg.to_dict(), "log_base": "e" if cfg.log_base == "10" else "10"})
    train = np.concatenate([mel_of(w, cfg) for w in other_clips], axis=1)
    return {"own": own, "other_base": mel_of(clip, other),
            "normalised": (own - train.mean(1, keepdims=True)) / train.std(1, keepdims=True)}


@pytest.mark.parametrize("which", ["published_v1", "toolkit_model"])
def test_wrong_kind_of_mel_warns_for_imported_models(request, tmp_path: Path, which: str, lj_wavs):
    model = request.getfixturevalue(which)
    clip = sf.read(lj_wavs[0], dtype="float32")[0][: 2 * 22050]
    others = [sf.read(p, dtype="float32")[0] for p in lj_wavs[10:13]]
    arrays = kinds(model, clip, others)
    voc = load_vocoder(str(model))
    expects = "a log10 mel" if voc.mel_config.log_base == "10" else "a natural-log mel"
    other = "a natural-log mel" if voc.mel_config.log_base == "10" else "a log10 mel"
    for gain in (1.0, 0.1, 3.0):  # the model's own mel, quiet or loud: no warning
        assert voc.mel_range_warning(mel_of(np.clip(clip * gain, -1, 1), voc.mel_config)) is None, gain
    for name, kind in (("other_base", other), ("normalised", "a mean/variance-normalised mel")):
        np.save(tmp_path / f"{name}.npy", arrays[name])
        res = CliRunner().invoke(app, ["synthesize", "--model", str(model), "--mel", str(tmp_path / f"{name}.npy"),
                                       "-o", str(tmp_path / "out.wav")])
        assert res.exit_code == 0, res.output
        assert "warning" in res.output and kind in res.output, (which, name, res.output)
        assert f"the model expects {expects}" in res.output and "ganpipe mel" in res.output, res.output
    np.save(tmp_path / "own.npy", arrays["own"])
    res = CliRunner().invoke(app, ["synthesize", "--model", str(model), "--mel", str(tmp_path / "own.npy"),
                                   "-o", str(tmp_path / "out.wav")])
    assert res.exit_code == 0 and "warning" not in res.output, res.output


def test_every_lj_clip_own_mel_is_quiet_and_log10_is_named(published_v1: Path, lj_wavs):
    """No false alarm on any real clip (the published model's own mel), and log10 named on each."""
    voc = load_vocoder(str(published_v1))
    log10 = MelConfig.from_dict({**voc.mel_config.to_dict(), "log_base": "10"})
    for path in lj_wavs:
        wav = sf.read(path, dtype="float32")[0]
        assert voc.mel_range_warning(mel_of(wav, voc.mel_config)) is None, path.name
        assert "looks like a log10 mel" in (voc.mel_range_warning(mel_of(wav, log10)) or ""), path.name
