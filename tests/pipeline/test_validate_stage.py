"""A bad value in params.yaml stops `dvc repro` at the first stage, `validate`, before any stage has
deleted its outputs (issue 15, item 3: DVC removes a stage's outputs before running it, so a typo
found by the train stage itself cost models/generator.pt and the git-tracked metrics). A valid change
re-runs validate, whose output stays the same, and no stage that does not use the changed value."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ganpipe.cli import app
from ganpipe.params_check import STAMP_TEXT
from tests.conftest import REPO_ROOT, write_params
from tests.support.fresh_clone import clean_env, edit_params, fresh_clone, run


def test_every_stage_depends_on_validate():
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    assert next(iter(stages)) == "validate"
    stamp = stages["validate"]["outs"][0]
    assert "params.yaml" in stages["validate"]["deps"]
    for name, stage in stages.items():
        if name != "validate":
            assert stamp in stage["deps"], f"stage {name} does not depend on {stamp}"


@pytest.mark.parametrize("change, needles", [
    ({"dataset": {"name": "demoo"}}, ["dataset.name", "'ljspeech'"]),
    ({"model": {"overrides": {"intermediate_dimm": 32}}}, ["model.overrides", "intermediate_dimm",
                                                            "allowed", "intermediate_dim"]),
    ({"train": {"segment_samples": 1000}}, ["train.segment_samples", "multiple of the hop length (256)"]),
    ({"model": {"overrides": {"padding": "valid"}}}, ["model.overrides", "padding must be one of"]),
])
def test_validate_names_the_key_and_the_allowed_values(tmp_path: Path, change: dict, needles: list[str]):
    params = write_params(tmp_path / "params.yaml", change)
    out = tmp_path / "params.valid"
    res = CliRunner().invoke(app, ["validate", "-p", str(params), "--out", str(out)])
    assert res.exit_code == 2 and not out.exists()
    for needle in needles:
        assert needle in res.output, (needle, res.output)
    good = write_params(tmp_path / "good.yaml", {"train": {"steps": 7}})
    res = CliRunner().invoke(app, ["validate", "-p", str(good), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text() == STAMP_TEXT  # the same bytes whatever the (valid) values


@pytest.mark.slow
def test_a_bad_value_fails_at_validate_with_nothing_deleted(tmp_path: Path):
    repo = fresh_clone(tmp_path / "repo")
    env = clean_env()
    run(["dvc", "repro", "remote_validators"], repo, env)  # validate, then the remote check download depends on
    # stand-ins for the outputs of a real run of the download stage, recorded in dvc.lock as if it had run
    raw = repo / "data" / "raw" / "demo" / "spk0" / "utt0.wav"
    raw.parent.mkdir(parents=True)
    raw.write_bytes(b"RIFF....")
    run(["dvc", "commit", "-f", "download"], repo, env)

    # a valid change of a value the download stage does not use: validate re-runs, download does not
    out = run(["dvc", "exp", "run", "download", "-S", "train.steps=7"], repo, env)
    assert "Running stage 'validate'" in out and "Running stage 'download'" not in out, out
    assert yaml.safe_load((repo / "params.yaml").read_text())["train"]["steps"] == 7
    assert raw.is_file()

    lock = (repo / "dvc.lock").read_text()
    edit_params(repo, {"dataset": {"name": "demoo"}})  # a typo in a value the download stage uses
    res = subprocess.run(["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode != 0
    log = res.stdout + res.stderr
    assert "failed to reproduce 'validate'" in log and "dataset.name" in log and "'demo'" in log, log
    assert "Running stage 'download'" not in log
    assert raw.read_bytes() == b"RIFF...."  # nothing deleted
    assert (repo / "dvc.lock").read_text() == lock


@pytest.mark.parametrize("variant", sorted(__import__("ganpipe.models", fromlist=["VARIANTS"]).VARIANTS))
def test_every_variant_passes_validate_at_its_published_size(variant: str):
    """The validate stage builds the model on PyTorch's meta device: a variant whose layers compute fixed
    filters from data (BigVGAN-v2's CQT and resampler) must build there too."""
    from ganpipe.config import parse_params
    from ganpipe.params_check import check_model

    check_model(parse_params({"model": {"variant": variant, "overrides": {}}}))
