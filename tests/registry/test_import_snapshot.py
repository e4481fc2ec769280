"""`ganpipe import-model` takes a snapshot folder (what a download of a model repository gives) or finds
the config beside the checkpoint, for every format: the Vocos hub layout (config.yaml +
pytorch_model.bin), BigVGAN's (config.json + bigvgan_generator.pt + its discriminator file) and the
published jik876 LJ V1 folder (config.json + generator_LJSpeech.pth.tar) import as with the files named."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from ganpipe.cli import app
from ganpipe.importing import ImportModelError, import_model
from tests.support import bigvgan_reference as ref
from tests.support.published_v1 import published_lj_v1

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


def same_weights(a: Path, b: Path) -> bool:
    x, y = (torch.load(p, map_location="cpu", weights_only=True) for p in (a, b))
    keys = ("state_dict", "discriminators_state_dict")
    return all(set(x.get(k) or {}) == set(y.get(k) or {}) and all(torch.equal(x[k][n], y[k][n]) for n in x.get(k) or {})
               for k in keys) and x["mel_config"] == y["mel_config"]


def vocos_snapshot(folder: Path) -> None:
    from vocos.feature_extractors import MelSpectrogramFeatures
    from vocos.heads import ISTFTHead
    from vocos.models import VocosBackbone
    from vocos.pretrained import Vocos

    sizes = {"input_channels": 100, "dim": 32, "intermediate_dim": 64, "num_layers": 2}
    fe = {"sample_rate": 24000, "n_fft": 1024, "hop_length": 256, "n_mels": 100, "padding": "center"}
    head = {"dim": 32, "n_fft": 1024, "hop_length": 256, "padding": "center"}
    torch.manual_seed(0)
    model = Vocos(MelSpectrogramFeatures(**fe), VocosBackbone(**sizes), ISTFTHead(**head))
    folder.mkdir(parents=True)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    (folder / "config.yaml").write_text(yaml.safe_dump({
        "feature_extractor": {"class_path": "vocos.feature_extractors.MelSpectrogramFeatures", "init_args": fe},
        "backbone": {"class_path": "vocos.models.VocosBackbone", "init_args": sizes},
        "head": {"class_path": "vocos.heads.ISTFTHead", "init_args": head}}))


def test_vocos_snapshot_folder_and_config_beside(tmp_path: Path):
    pytest.importorskip("vocos")
    snap = tmp_path / "vocos-mel-24khz"
    vocos_snapshot(snap)
    res = CliRunner().invoke(app, ["import-model", str(snap), "--format", "vocos", "-o", str(tmp_path / "a.pt")])
    assert res.exit_code == 0, res.output
    import_model("vocos", snap / "pytorch_model.bin", tmp_path / "b.pt")  # config.yaml found beside it
    import_model("vocos", snap / "pytorch_model.bin", tmp_path / "c.pt", config=snap / "config.yaml")
    assert same_weights(tmp_path / "a.pt", tmp_path / "c.pt") and same_weights(tmp_path / "b.pt", tmp_path / "c.pt")
    with pytest.raises(ImportModelError, match="a folder without a bigvgan checkpoint.*bigvgan_generator.pt"):
        import_model("bigvgan", snap, tmp_path / "d.pt")


def test_bigvgan_snapshot_folder_brings_its_discriminators(tmp_path: Path):
    ref.require_bigvgan()
    h = ref.config("bigvgan_base", upsample_initial_channel=64, discriminator_channel_mult=0.125)
    torch.manual_seed(0)
    generator = ref.generator(h)
    mpd, mrd = ref.discriminators(h)
    snap = tmp_path / "bigvgan_base_22khz_80band"
    snap.mkdir()
    generator._save_pretrained(snap)
    torch.save({"mpd": mpd.state_dict(), "mrd": mrd.state_dict(), "steps": 10},
               snap / "bigvgan_discriminator_optimizer.pt")
    result = import_model("bigvgan", snap, tmp_path / "a.pt")
    assert result.discriminators
    import_model("bigvgan", snap / "bigvgan_generator.pt", tmp_path / "b.pt", config=snap / "config.json",
                 discriminator=snap / "bigvgan_discriminator_optimizer.pt")
    assert same_weights(tmp_path / "a.pt", tmp_path / "b.pt")


def test_published_jik876_folder(tmp_path: Path, published_v1: Path):
    snap = tmp_path / "lj_v1"
    shutil.copytree(published_lj_v1(), snap, ignore=shutil.ignore_patterns("wheels"))
    res = CliRunner().invoke(app, ["import-model", str(snap), "--format", "jik876", "-o", str(tmp_path / "a.pt")])
    assert res.exit_code == 0, res.output
    assert same_weights(tmp_path / "a.pt", published_v1)
