"""The validate stage checks train.fine_tune_from's starting model: readable, its
architecture and weights equal to what model.* builds, discriminators present when
train.fine_tune_discriminator, its mel the features' (or mel.preset: from_model) — so the README's
fine-tune command with a generator-only published file stops at validate, before DVC deletes anything."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from ganpipe.cli import app
from tests.conftest import REPO_ROOT

# The README's "Fine-tune it on your own data" flags (dvc exp run -S ...), as params.yaml values.
README_FINE_TUNE = {"model.variant": "hifigan_v1", "mel.preset": "from_model", "train.fine_tune_discriminator": True,
                    "train.steps": 5000, "train.lr_generator": "auto", "train.scheduler": "auto",
                    "train.lr_gamma": "auto", "train.lr_milestones": "auto", "train.lambda_stft": "auto",
                    "train.discriminator_start_step": "auto", "train.mel_loss_fmax": "auto"}


def fine_tune_params(path: Path, start: Path, **changes) -> Path:
    data = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    data["model"].pop("overrides")  # -S '~model.overrides'
    for key, value in {**README_FINE_TUNE, "train.fine_tune_from": str(start), **changes}.items():
        section, name = key.split(".")
        if isinstance(value, dict):
            data[section][name] = value
        else:
            data.setdefault(section, {})[name] = value
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def validate(params: Path, out: Path) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["validate", "-p", str(params), "--out", str(out)])
    return res.exit_code, res.output


def test_readme_fine_tune_command_with_a_generator_only_file_fails_at_validate(tmp_path: Path, published_v1: Path):
    out = tmp_path / "params.valid"
    code, output = validate(fine_tune_params(tmp_path / "params.yaml", published_v1), out)
    assert code == 2 and not out.exists(), output
    assert "train.fine_tune_discriminator" in output and "holds no discriminator weights" in output, output
    code, output = validate(fine_tune_params(tmp_path / "params.yaml", published_v1,
                                             **{"train.fine_tune_discriminator": False}), out)
    assert code == 0 and out.is_file(), output


@pytest.mark.parametrize("changes, needles", [
    ({"model.overrides": {"upsample_initial_channel": 256}}, ["upsample_initial_channel: 256 here, 512 in the model"]),
    ({"model.variant": "hifigan_v2"}, ["model.variant: 'hifigan_v2' here, 'hifigan_v1' in the model"]),
    ({"mel.preset": "pwg"}, ["mel log_base: '10' in the features, 'e' in the model", "mel fmax", "from_model"]),
    ({"train.fine_tune_from": "models/nope.pt"}, ["train.fine_tune_from", "file not found: models/nope.pt"]),
])
def test_a_starting_model_that_does_not_fit_fails_at_validate(tmp_path: Path, published_v1: Path, changes: dict,
                                                              needles: list[str]):
    params = fine_tune_params(tmp_path / "params.yaml", published_v1,
                              **{"train.fine_tune_discriminator": False, **changes})
    code, output = validate(params, tmp_path / "params.valid")
    assert code == 2, output
    for needle in needles:
        assert needle in output, (needle, output)


def test_weights_of_another_shape_fail_at_validate(tmp_path: Path, published_v1: Path):
    """Same build options, other weights (a damaged or hand-edited file): named at validate, not after
    DVC deleted the train stage's outputs."""
    import torch

    obj = torch.load(published_v1, map_location="cpu", weights_only=True)
    key = next(k for k, v in obj["state_dict"].items() if v.ndim >= 2 and v.shape[0] > 1)
    obj["state_dict"][key] = obj["state_dict"][key][:1]
    bad = tmp_path / "bad.pt"
    torch.save(obj, bad)
    code, output = validate(fine_tune_params(tmp_path / "params.yaml", bad,
                                             **{"train.fine_tune_discriminator": False}), tmp_path / "params.valid")
    assert code == 2 and "generator weights: 1 of another shape" in output and key in output, output
