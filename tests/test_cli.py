import json

from typer.testing import CliRunner

from ganpipe.cli import app
from tests.conftest import REPO_ROOT

runner = CliRunner()


def test_help_lists_every_stage():
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0
    for stage in ("download", "prepare", "features", "params", "repro"):
        assert stage in res.output
    res = runner.invoke(app, ["features", "--help"])
    assert res.exit_code == 0 and "log-mel" in res.output.lower()


def test_params_prints_resolved_config():
    res = runner.invoke(app, ["params", "--params", str(REPO_ROOT / "params.yaml")])
    assert res.exit_code == 0, res.output
    cfg = json.loads(res.output)
    assert cfg["mel"]["n_fft"] == 1024 and cfg["mel"]["fmax"] == 8000.0


def test_bad_params_exit_2_and_name_the_key(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("mel:\n  preset: hifigun\n")
    for cmd in (["params"], ["features"]):
        res = runner.invoke(app, [*cmd, "--params", str(bad)])
        assert res.exit_code == 2
        assert "mel.preset" in res.output and "'hifigan'" in res.output
