"""ganpipe.importing.vocos: a Vocos model in its published format (``pytorch_model.bin`` = the ``Vocos``
module's state dict + its ``config.yaml``), made here by the reference package ``vocos==0.1.0`` at
test size, loads into the ``vocos`` variant and synthesises what ``Vocos.decode`` does; what cannot
be imported fails naming the file and the reason."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import yaml

from ganpipe.importing import vocos as imp
from tests import oracles

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
SIZES = {"input_channels": 100, "dim": 32, "intermediate_dim": 64, "num_layers": 2}


@pytest.fixture(autouse=True)
def _oracles():
    oracles.require_vocos()


def published(tmp_path: Path, padding: str = "center") -> tuple[Path, Path, torch.nn.Module]:
    from vocos.feature_extractors import MelSpectrogramFeatures
    from vocos.heads import ISTFTHead
    from vocos.models import VocosBackbone
    from vocos.pretrained import Vocos

    fe = {"sample_rate": 24000, "n_fft": 1024, "hop_length": 256, "n_mels": 100, "padding": padding}
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
    weights, cfg = tmp_path / "pytorch_model.bin", tmp_path / "config.yaml"
    torch.save(model.state_dict(), weights)
    cfg.write_text(yaml.safe_dump(config))
    return weights, cfg, model


@pytest.mark.parametrize("padding", ["center", "same"])
def test_published_checkpoint_synthesises_as_vocos_decode(padding, tmp_path):
    weights, cfg, model = published(tmp_path, padding)
    bundle, _ = imp.vocos_generator(weights, cfg)
    wav = torch.randn(1, 24000) * 0.1
    with torch.no_grad():
        features = model.feature_extractor(wav)
        expected = model.decode(features)
        got = bundle.generator(features)[:, 0]
    assert got.shape == expected.shape
    assert float((got - expected).abs().max()) <= 1e-5


def test_import_is_refused_while_the_mel_cannot_be_expressed(tmp_path):
    """Until MelConfig has Vocos' framing / HTK scale / no area norm, the file would carry a wrong mel."""
    weights, cfg, _ = published(tmp_path)
    with pytest.raises(imp.VocosImportError, match="mel_scale = htk"):
        imp.import_vocos(weights, cfg, tmp_path / "g.pt")
    assert not (tmp_path / "g.pt").exists()


def test_unsupported_or_broken_inputs_name_the_file(tmp_path):
    weights, cfg, _ = published(tmp_path)
    config = yaml.safe_load(cfg.read_text())
    config["feature_extractor"]["class_path"] = "vocos.feature_extractors.EncodecFeatures"
    other = tmp_path / "encodec.yaml"
    other.write_text(yaml.safe_dump(config))
    with pytest.raises(imp.VocosImportError, match="encodec.yaml.*MelSpectrogramFeatures"):
        imp.vocos_generator(weights, other)
    broken = tmp_path / "broken.bin"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(imp.VocosImportError, match="broken.bin"):
        imp.vocos_generator(broken, cfg)
    config = yaml.safe_load(cfg.read_text())
    config["backbone"]["init_args"]["num_layers"] = 3
    bigger = tmp_path / "bigger.yaml"
    bigger.write_text(yaml.safe_dump(config))
    with pytest.raises(imp.VocosImportError, match="pytorch_model.bin.*blocks.2"):
        imp.vocos_generator(weights, bigger)
