"""The `ganpipe` command line: every stage listed, help for every command, bad params exit 2 naming the key."""

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


def _commands() -> list[str]:
    import typer.main

    return sorted(typer.main.get_command(app).commands)


def test_help_of_every_command_works_and_shows_flags_without_a_value():
    for name in ["", *_commands()]:
        res = runner.invoke(app, [name, "--help"] if name else ["--help"])
        assert res.exit_code == 0, (name, res.output)
        for line in res.output.splitlines():
            # a flag (no value) is never shown with a value placeholder: "--help <bool>" read as taking a value
            assert "<bool>" not in line, (name, line)
        assert any(line.split()[:1] == ["--help"] for line in res.output.splitlines()), (name, res.output)


def test_retrain_help_lists_every_option_of_the_retrain_flow():
    import re
    import subprocess
    import sys

    flow_help = subprocess.run([sys.executable, "-m", "flows.retrain", "--help"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=120).stdout
    schedule_only = {"--serve", "--cron", "--timezone", "--name",  # those are `ganpipe schedule`'s
                     "--when-changed", "--poll-minutes", "--pool"}
    wanted = set(re.findall(r"(--[a-z][a-z-]+)", flow_help)) - schedule_only
    assert {"--pull", "--no-push", "--fine-tune", "--command", "--project-dir", "--params"} <= wanted
    res = runner.invoke(app, ["retrain", "--help"])
    assert res.exit_code == 0
    assert wanted <= set(re.findall(r"(--[a-z][a-z-]+)", res.output)), res.output


def test_retrain_passes_its_options_to_the_flow(monkeypatch, tmp_path):
    import ganpipe.cli as cli

    calls = []
    monkeypatch.setattr(cli.subprocess, "call", lambda cmd: calls.append(cmd) or 0)
    params = str(REPO_ROOT / "params.yaml")
    res = runner.invoke(app, ["retrain", "-p", params, "--pull", "--no-push", "--fine-tune",
                              "--command", "echo hi", "--project-dir", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert calls[0][1:] == ["-m", "flows.retrain", "--params", params, "--project-dir", str(tmp_path),
                            "--pull", "--no-push", "--fine-tune", "--command", "echo hi"]
    calls.clear()
    assert runner.invoke(app, ["retrain", "-p", params]).exit_code == 0
    assert calls[0][1:] == ["-m", "flows.retrain", "--params", params, "--project-dir", "."]
