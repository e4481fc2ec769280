"""BigVGAN checkpoints written by the reference package (``bigvgan==2.4.1``: its ``_save_pretrained``
files and train.py's discriminator/optimiser checkpoint) import as ganpipe generator files that
sound the same (<= 1e-5) and carry the discriminators; bad files fail naming the file."""

from __future__ import annotations

import json

import pytest
import torch

from ganpipe import generator_io
from ganpipe.importing import ImportModelError, import_model
from ganpipe.mel import MelConfig
from ganpipe.models import build
from tests.support import bigvgan_reference as ref

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
SIZES = {"upsample_initial_channel": 64, "cqtd_filters": 8, "cqtd_max_filters": 8, "discriminator_channel_mult": 0.125}


@pytest.fixture(autouse=True)
def _oracle():
    ref.require_bigvgan()


def _published(tmp_path, variant):
    """A checkpoint folder as BigVGAN writes it: bigvgan_generator.pt + config.json (from_pretrained's
    layout) and bigvgan_discriminator_optimizer.pt (train.py's do_ file, renamed as on the Hub)."""
    h = ref.config(variant, **SIZES)
    torch.manual_seed(0)
    generator = ref.generator(h)
    ref.randomize(generator, seed=1)
    mpd, mrd = ref.discriminators(h)
    folder = tmp_path / "published"
    folder.mkdir()
    generator._save_pretrained(folder)
    optim_d = torch.optim.AdamW([*mrd.parameters(), *mpd.parameters()], 1e-4)
    optim_g = torch.optim.AdamW(generator.parameters(), 1e-4)
    torch.save({"mpd": mpd.state_dict(), "mrd": mrd.state_dict(), "optim_g": optim_g.state_dict(),
                "optim_d": optim_d.state_dict(), "steps": 12345, "epoch": 7},
               folder / "bigvgan_discriminator_optimizer.pt")
    return folder, generator, mpd, mrd


@pytest.mark.parametrize("variant, second", [("bigvgan_v2", "cqtd"), ("bigvgan_base", "mrd")])
def test_import_writes_a_generator_file_that_sounds_the_same(variant, second, tmp_path):
    folder, generator, mpd, mrd = _published(tmp_path, variant)
    out = tmp_path / "imported.pt"
    result = import_model("bigvgan", folder / "bigvgan_generator.pt", out, config=folder / "config.json",
                          discriminator=folder / "bigvgan_discriminator_optimizer.pt")
    assert result.variant == variant and result.discriminators

    loaded = generator_io.load_generator(out)
    h = json.loads((folder / "config.json").read_text())
    assert loaded.mel_config == MelConfig(sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80,
                                          fmin=0.0, fmax=h["fmax"] or 11025.0, framing="jik876")
    assert loaded.meta["source"]["format"] == "bigvgan" and loaded.meta["source"]["steps"] == 12345
    assert len(loaded.meta["source"]["sha256"]) == 64 and loaded.meta["step"] == 12345
    mel = torch.randn(1, 80, 10, generator=torch.Generator().manual_seed(3)) - 4.0
    with torch.no_grad():
        expected, got = generator(mel), loaded.generator(mel)
    assert float((got - expected).abs().max() / expected.abs().max()) <= 1e-5

    # the discriminators travel in the file and load into a fresh bundle of the same config
    fresh = build(variant, **loaded.bundle.config).discriminators
    fresh.load_state_dict(loaded.discriminators_state_dict, strict=True)
    wav = 0.3 * torch.randn(1, 1, 8192, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        their_logits = mrd(wav, wav)[0]
        ours = fresh[second](wav).logits
    for a, b in zip(ours, their_logits):
        assert float((a - b.flatten(1)).abs().max()) <= 1e-5 * float(b.abs().max())


def test_generator_only_and_bad_files_are_named(tmp_path):
    folder, *_ = _published(tmp_path, "bigvgan_v2")
    out = tmp_path / "g.pt"
    result = import_model("bigvgan", folder / "bigvgan_generator.pt", out, config=folder / "config.json")
    assert not result.discriminators and "generator only" in result.notes[0]
    assert "discriminators_state_dict" not in torch.load(out, weights_only=True)

    do = folder / "bigvgan_discriminator_optimizer.pt"
    state = torch.load(do, weights_only=True)
    del state["mrd"]
    torch.save(state, do)
    with pytest.raises(ImportModelError, match="bigvgan_discriminator_optimizer.pt.*'mrd'"):
        import_model("bigvgan", folder / "bigvgan_generator.pt", tmp_path / "x.pt", config=folder / "config.json",
                     discriminator=do)

    torch.save({"generator": {"x": object()}}, tmp_path / "code.pt")  # a pickle that needs code
    with pytest.raises(ImportModelError, match="code.pt: refused"):
        import_model("bigvgan", tmp_path / "code.pt", tmp_path / "x.pt", config=folder / "config.json")

    config = json.loads((folder / "config.json").read_text())
    config["upsample_initial_channel"] = 128  # not the checkpoint's sizes
    (tmp_path / "other.json").write_text(json.dumps(config))
    with pytest.raises(ImportModelError, match="bigvgan_generator.pt: .*shape"):
        import_model("bigvgan", folder / "bigvgan_generator.pt", tmp_path / "x.pt", config=tmp_path / "other.json")
    assert not (tmp_path / "x.pt").exists()
