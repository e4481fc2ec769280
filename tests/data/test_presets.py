"""Config presets (configs/*.yaml): the flags they give are applied by DVC exactly as `ganpipe preset apply` applies them."""

import os
import shutil
import subprocess
import sys

import pytest
import yaml
from typer.testing import CliRunner

from ganpipe.cli import app
from ganpipe.config import ConfigError, load_params
from ganpipe.presets import apply, flags, read_preset
from tests.conftest import REPO_ROOT

CONFIGS = sorted((REPO_ROOT / "configs").glob("*.yaml"))


def shell_words(text: str, cwd) -> list[str]:
    """What bash passes to a command for an unquoted ``$(...)`` that printed ``text``."""
    (cwd / "flags.txt").write_text(text)
    out = subprocess.run(["bash", "--norc", "-c", 'printf "%s\\n" $(cat flags.txt)'], cwd=cwd, check=True,
                         capture_output=True, text=True, env={"PATH": os.environ["PATH"]})
    return out.stdout.splitlines()


def dvc_set_params(params, args: list[str]) -> None:
    """Apply ``-S`` arguments to ``params`` exactly as ``dvc exp run`` does (its CLI parser, its Hydra call)."""
    from dvc.cli import parse_args
    from dvc.utils.cli_parse import to_path_overrides
    from dvc.utils.hydra import apply_overrides

    parsed = parse_args(["exp", "run", *args])
    overrides = to_path_overrides(parsed.set_param)
    assert list(overrides) == ["params.yaml"]
    apply_overrides(params, overrides["params.yaml"])


@pytest.mark.parametrize("config", CONFIGS, ids=[c.stem for c in CONFIGS])
def test_every_shipped_config_gives_flags_that_dvc_applies_as_apply_does(config, tmp_path):
    """The printed flags, split by the shell as an unquoted $(...) does and parsed by DVC, set
    params.yaml to what `ganpipe preset apply` makes."""
    res = CliRunner().invoke(app, ["preset", "flags", str(config), "-p", str(REPO_ROOT / "params.yaml")])
    assert res.exit_code == 0, res.output
    args = shell_words(res.output, tmp_path)
    assert args[0] == "-S" and args[::2] == ["-S"] * (len(args) // 2)
    keys = [a.lstrip("~+").split("=", 1)[0] for a in args[1::2]]
    assert all(k.split(".")[0] in ("dataset", "audio", "mel", "split", "features", "model", "train") for k in keys)
    via_dvc, via_apply = tmp_path / "dvc" / "params.yaml", tmp_path / "apply" / "params.yaml"
    for path in (via_dvc, via_apply):
        path.parent.mkdir()
        shutil.copy(REPO_ROOT / "params.yaml", path)
    dvc_set_params(via_dvc, args)
    apply(config, via_apply)
    assert load_params(via_dvc) == load_params(via_apply)
    assert load_params(via_dvc) != load_params(REPO_ROOT / "params.yaml")


def test_flags_keep_types_and_replace_whole_sections(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO_ROOT / "params.yaml", params)
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({"model": {"variant": "wavegan", "overrides": {"model_size": 4}},
                                      "dataset": {"name": "local", "local_dir": "/data/my_corpus-1"},
                                      "mel": {"fmax": 7600.0}}))
    args = flags(preset, params)
    assert "~model.overrides" in args and "+model.overrides={model_size:4}" in args  # not merged into
    assert 'dataset.local_dir="/data/my_corpus-1"' in args and "+mel.fmax=7600.0" in args  # fmax: not in params
    dvc_set_params(params, args)
    data = yaml.safe_load(params.read_text())
    assert data["model"]["overrides"] == {"model_size": 4} and data["dataset"]["local_dir"] == "/data/my_corpus-1"
    assert data["mel"]["fmax"] == 7600.0


def test_a_value_that_cannot_pass_unquoted_is_refused_naming_the_key(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO_ROOT / "params.yaml", params)
    preset = tmp_path / "p.yaml"
    preset.write_text(yaml.safe_dump({"dataset": {"name": "local", "local_dir": "/data/my corpus"}}))
    with pytest.raises(ConfigError, match=r"dataset\.local_dir.*preset apply"):
        flags(preset, params)


def test_apply_merges_keeps_comments_and_replaces_overrides(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO_ROOT / "params.yaml", params)
    apply(REPO_ROOT / "configs" / "demo_wavegan.yaml", params)
    p = load_params(params)
    assert p.model.variant == "wavegan" and p.model.overrides == {"model_size": 4}
    assert p.train.steps == 100 and p.mel.preset == "hifigan"  # untouched keys stay
    text = params.read_text()
    assert "# Every knob of ganpipe" in text and "local_dir: data/local" in text


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


def test_readme_preset_experiment_line_runs_in_a_real_dvc_repo(tmp_path):
    """The README's `dvc exp run $(ganpipe preset flags ljspeech_hifigan_v1)`, run by bash in a git + DVC
    repository (one trivial stage over the params): the experiment runs with the preset's values."""
    line = next(ln for ln in (REPO_ROOT / "README.md").read_text().splitlines() if "$(ganpipe preset flags" in ln)
    command = line.split("#", 1)[0].strip()
    assert command == "dvc exp run $(ganpipe preset flags ljspeech_hifigan_v1)"
    repo = tmp_path / "repo"
    shutil.copytree(REPO_ROOT / "configs", repo / "configs")
    shutil.copy(REPO_ROOT / "params.yaml", repo / "params.yaml")
    sections = ["dataset", "audio", "mel", "split", "features", "model", "train"]
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"show": {
        "cmd": "python -c \"import yaml; print('model', yaml.safe_load(open('params.yaml'))['model'])\"",
        "params": sections}}}))
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "DVC_NO_ANALYTICS": "1",
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    git = "git -c user.email=t@t -c user.name=t"
    setup = f"git init -q && dvc init -q && {git} add -A && {git} commit -qm init"
    subprocess.run(["bash", "-c", setup], cwd=repo, env=env, check=True, capture_output=True)
    res = subprocess.run(["bash", "--norc", "-c", command], cwd=repo, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "'overrides': {}" in res.stdout and "'variant': 'hifigan_v1'" in res.stdout  # what the stage saw
    expected = tmp_path / "expected.yaml"
    shutil.copy(REPO_ROOT / "params.yaml", expected)
    apply(REPO_ROOT / "configs" / "ljspeech_hifigan_v1.yaml", expected)
    assert load_params(repo / "params.yaml") == load_params(expected)


@pytest.mark.parametrize("preset", sorted(p.name for p in (REPO_ROOT / "configs").glob("*.yaml")))
def test_presets_do_not_inherit_the_demos_training_choices(preset, tmp_path):
    """params.yaml's demo trains its own way (generator-only, lr 2e-3, ...): a preset applied on top of it
    must get every setting that changes what is trained from the recipe ('auto') or from the preset."""
    from ganpipe.config import TrainParams
    from ganpipe.training.run_identity import RUN_NEUTRAL_TRAIN_KEYS

    params = tmp_path / "params.yaml"
    shutil.copy(REPO_ROOT / "params.yaml", params)
    apply(REPO_ROOT / "configs" / preset, params)
    train = load_params(params).train.model_dump()
    own = read_preset(REPO_ROOT / "configs" / preset).get("train", {})
    defaults = TrainParams().model_dump()
    leaked = {k: v for k, v in train.items()
              if k not in RUN_NEUTRAL_TRAIN_KEYS and k not in own and v != defaults[k]}
    assert not leaked, f"{preset} keeps params.yaml's demo values {leaked}: set them (e.g. to auto) in the preset"
