import shutil

import pytest
import yaml

from ganpipe.config import ConfigError, load_params
from ganpipe.presets import apply, flags
from tests.conftest import REPO_ROOT

CONFIGS = sorted((REPO_ROOT / "configs").glob("*.yaml"))


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_shipped_config_is_valid_and_gives_dvc_flags(config):
    args = flags(config, REPO_ROOT / "params.yaml")
    assert args and args[0] == "-S" and len(args) % 2 == 0
    keys = [a.split("=", 1)[0] for a in args[1::2]]
    assert all(k.split(".")[0] in ("dataset", "audio", "mel", "split", "features", "model", "train") for k in keys)


def test_apply_merges_keeps_comments_and_replaces_overrides(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO_ROOT / "params.yaml", params)
    apply(REPO_ROOT / "configs" / "demo_wavegan.yaml", params)
    p = load_params(params)
    assert p.model.variant == "wavegan" and p.model.overrides == {"model_size": 4}
    assert p.train.steps == 100 and p.mel.preset == "hifigan"  # untouched keys stay
    text = params.read_text()
    assert "# Every knob of ganpipe" in text and "local_dir: null" in text


def test_invalid_preset_is_rejected_before_writing(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO_ROOT / "params.yaml", params)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"model": {"variant": "hifigan_v9"}}))
    before = params.read_text()
    with pytest.raises(ConfigError, match="model.variant"):
        apply(bad, params)
    with pytest.raises(ConfigError, match="model.variant"):
        flags(bad, params)
    assert params.read_text() == before
