"""``ganpipe import-model --format vocos``: a Vocos model in its published format (``pytorch_model.bin``
= the ``Vocos`` module's state dict + its ``config.yaml``), made here by the reference package
``vocos==0.1.0`` with seeded random weights at test size (dim 32, intermediate 64, 2 layers; the
published mel front end: 24 kHz, n_fft 1024, hop 256, 100 mels), imports as a generator file whose
mel is Vocos' ``feature_extractor`` and whose copy-synthesis is ``Vocos.decode(feature_extractor(audio))``
on a real LJSpeech clip (resampled to 24 kHz); what cannot be imported fails naming the file."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from ganpipe import generator_io
from ganpipe.audio import resample
from ganpipe.importing import ImportModelError, import_model
from ganpipe.mel import MelSpectrogram
from tests.support import oracles

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
SIZES = {"input_channels": 100, "dim": 32, "intermediate_dim": 64, "num_layers": 2}
SR = 24000


@pytest.fixture(autouse=True)
def _oracles():
    oracles.require_vocos()


@pytest.fixture(scope="module")
def clip(lj_wavs) -> np.ndarray:
    """A real LJSpeech clip at Vocos' 24 kHz (cut to 2 s plus an odd remainder: not a multiple of hop)."""
    y, sr = sf.read(lj_wavs[1], dtype="float32")
    return np.ascontiguousarray(resample(y, sr, SR)[: 2 * SR + 100], dtype=np.float32)


def published(folder: Path, padding: str = "center", n_fft: int = 1024) -> tuple[Path, Path, torch.nn.Module]:
    from vocos.feature_extractors import MelSpectrogramFeatures
    from vocos.heads import ISTFTHead
    from vocos.models import VocosBackbone
    from vocos.pretrained import Vocos

    fe = {"sample_rate": SR, "n_fft": n_fft, "hop_length": 256, "n_mels": 100, "padding": padding}
    head = {"dim": SIZES["dim"], "n_fft": 1024, "hop_length": 256, "padding": padding}
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = Vocos(MelSpectrogramFeatures(**fe), VocosBackbone(**SIZES), ISTFTHead(**head)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    config = {"feature_extractor": {"class_path": "vocos.feature_extractors.MelSpectrogramFeatures", "init_args": fe},
              "backbone": {"class_path": "vocos.models.VocosBackbone", "init_args": SIZES},
              "head": {"class_path": "vocos.heads.ISTFTHead", "init_args": head}}
    folder.mkdir(parents=True, exist_ok=True)
    weights, cfg = folder / "pytorch_model.bin", folder / "config.yaml"
    torch.save(model.state_dict(), weights)
    cfg.write_text(yaml.safe_dump(config))
    return weights, cfg, model


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference ** 2) / max(np.sum((reference - estimate) ** 2), 1e-30)))


@pytest.mark.parametrize("padding", ["center", "same"])
def test_imported_model_computes_vocos_mel_and_copy_synthesis(padding, clip, tmp_path):
    from ganpipe.synthesis import load_vocoder

    weights, cfg, model = published(tmp_path, padding)
    out = tmp_path / "vocos.pt"
    result = import_model("vocos", weights, out, config=cfg)
    assert result.variant == "vocos" and not result.discriminators
    loaded = generator_io.load_generator(out)
    mel = loaded.mel_config
    assert (mel.mel_scale, mel.mel_norm, mel.stft_eps, mel.clamp, mel.log_base, mel.normalize) == \
        ("htk", "none", 0.0, 1e-7, "e", "none")
    assert mel.framing == {"center": "center", "same": "jik876"}[padding]
    assert loaded.meta["source"]["format"] == "vocos" and len(loaded.meta["source"]["sha256"]) == 64

    wav = torch.from_numpy(clip)
    with torch.no_grad():
        theirs_mel = model.feature_extractor(wav[None])[0]
        expected = model.decode(theirs_mel[None])[0].numpy()
        ours_mel = MelSpectrogram(mel)(wav)
    # (a) our one mel implementation, configured by the file, is Vocos' feature extractor
    assert ours_mel.shape == theirs_mel.shape == (100, mel.num_frames(len(clip)))
    assert float((ours_mel - theirs_mel).abs().max()) <= 1e-4

    # (b) copy-synthesis through `ganpipe synthesize --model FILE --wav`'s path
    voc = load_vocoder(str(out))
    got = voc.copy_synthesis(clip, SR)
    assert got.shape == expected.shape == ((len(clip) // 256) * 256,)
    assert snr_db(expected, got) >= 40.0
    # and the same mel in gives the same waveform
    same = voc.mel_to_audio(theirs_mel.numpy(), warn_range=False)
    assert float(np.abs(same - expected).max()) <= 1e-5


@pytest.mark.slow
def test_cli_imports_and_synthesizes(clip, lj_wavs, tmp_path):
    weights, cfg, _ = published(tmp_path / "published")
    out, wav_out = tmp_path / "out.pt", tmp_path / "out.wav"
    run = lambda *args: subprocess.run([sys.executable, "-m", "ganpipe.cli", *args], capture_output=True,  # noqa: E731
                                       text=True, cwd=tmp_path)
    done = run("import-model", "--format", "vocos", str(weights), "--config", str(cfg), "-o", str(out))
    assert done.returncode == 0, done.stderr
    done = run("synthesize", "--model", str(out), "--wav", str(lj_wavs[1]), "--resample", "-o", str(wav_out))
    assert done.returncode == 0, done.stderr
    audio, sr = sf.read(wav_out)
    assert sr == SR and len(audio) > SR and np.isfinite(audio).all()


def test_unsupported_or_broken_inputs_name_the_file_and_write_nothing(tmp_path):
    weights, cfg, _ = published(tmp_path)
    out = tmp_path / "x.pt"

    def refused(pattern: str, checkpoint: Path, config: Path | None, **kwargs: Path) -> None:
        with pytest.raises(ImportModelError, match=pattern):
            import_model("vocos", checkpoint, out, config=config, **kwargs)
        assert not out.exists()

    config = yaml.safe_load(cfg.read_text())
    config["feature_extractor"] = {"class_path": "vocos.feature_extractors.EncodecFeatures",
                                   "init_args": {"encodec_model": "encodec_24khz"}}
    (tmp_path / "encodec.yaml").write_text(yaml.safe_dump(config))
    refused("encodec.yaml.*EncodecFeatures.*MelSpectrogramFeatures", weights, tmp_path / "encodec.yaml")

    (tmp_path / "truncated.bin").write_bytes(weights.read_bytes()[:5000])
    refused("truncated.bin: not a readable PyTorch", tmp_path / "truncated.bin", cfg)

    config = yaml.safe_load(cfg.read_text())
    config["backbone"]["init_args"]["num_layers"] = 3
    (tmp_path / "bigger.yaml").write_text(yaml.safe_dump(config))
    refused("pytorch_model.bin: .*blocks.2", weights, tmp_path / "bigger.yaml")

    config = yaml.safe_load(cfg.read_text())
    config["backbone"]["init_args"]["dim"] = config["head"]["init_args"]["dim"] = 48
    (tmp_path / "wider.yaml").write_text(yaml.safe_dump(config))
    refused("pytorch_model.bin: .*shape", weights, tmp_path / "wider.yaml")

    (tmp_path / "alone").mkdir()  # a config.yaml beside the weights would be found (ganpipe/importing/snapshot.py)
    (tmp_path / "alone" / "pytorch_model.bin").write_bytes(weights.read_bytes())
    refused("alone/pytorch_model.bin: a Vocos checkpoint needs its config.yaml", tmp_path / "alone" / "pytorch_model.bin",
            None)
    refused("d.pt: --discriminator is not supported", weights, cfg, discriminator=tmp_path / "d.pt")

    # 'same' padding with an odd n_fft - hop: Vocos pads a sample less than any ganpipe framing
    odd_weights, odd_cfg, _ = published(tmp_path / "odd", "same", n_fft=1023)
    refused("odd/config.yaml: .*padding 'same'.*odd", odd_weights, odd_cfg)


def test_training_config_and_lightning_checkpoint_are_read(tmp_path):
    """The training vocos.yaml (sections under model.init_args) and a VocosExp checkpoint
    (``state_dict`` with discriminators, ``global_step``) import too."""
    weights, cfg, model = published(tmp_path)
    config = yaml.safe_load(cfg.read_text())
    (tmp_path / "vocos.yaml").write_text(yaml.safe_dump({"model": {"class_path": "vocos.experiment.VocosExp",
                                                                   "init_args": config}}))
    state = {k: v for k, v in model.state_dict().items()}
    state["multiperioddisc.discriminators.0.convs.0.weight"] = torch.zeros(3)
    torch.save({"state_dict": state, "global_step": 4242}, tmp_path / "last.ckpt")
    result = import_model("vocos", tmp_path / "last.ckpt", tmp_path / "g.pt", config=tmp_path / "vocos.yaml")
    assert result.source["steps"] == 4242 and "VocosExp" in result.notes[0]
    loaded = generator_io.load_generator(tmp_path / "g.pt")
    mel = torch.randn(1, 100, 12, generator=torch.Generator().manual_seed(1)) - 3.0
    with torch.no_grad():
        assert float((loaded.generator(mel)[:, 0] - model.decode(mel)).abs().max()) <= 1e-5
