"""Promotion policy: champion only from the main line, only between comparable
models, an explicit override, and re-registration reporting the registry's real aliases.

Uses the registry test helpers (tiny generator files, a copied template MLflow store).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ganpipe.mel import MelConfig
from tests.support.registry_project import (
    MODEL,
    aliases,
    client_for,
    eval_json,
    make_generator,
    make_project,
    mlflow_template,
)

GIT = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]

DVC_YAML = """\
stages:
  train:
    cmd: python train.py
    deps: [train.py]
    outs: [models/generator.pt]
    metrics:
      - metrics/train.json:
          cache: false
    plots:
      - plots/loss.csv:
          cache: false
  register:
    cmd: python -m flows.register
    metrics:
      - metrics/register.json:
          cache: false
"""


def git(root: Path, *args: str) -> str:
    return subprocess.run([*GIT, *args], cwd=root, check=True, capture_output=True, text=True).stdout


def git_project(root: Path) -> None:
    """A committed project: dvc.yaml, params.yaml, code, and tracked pipeline outputs."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "dvc.yaml").write_text(DVC_YAML)
    (root / "train.py").write_text("print('train')\n")
    for rel in ("dvc.lock", "metrics/train.json", "plots/loss.csv", "metrics/register.json"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("{}\n")
    if not (root / "params.yaml").exists():
        (root / "params.yaml").write_text("x: 1\n")
    git(root, "init", "-q")
    git(root, "add", "dvc.yaml", "train.py", "params.yaml", "dvc.lock", "metrics", "plots")
    git(root, "commit", "-qm", "project")


# ------------------------------------------------------------------------------------------------
# where a model comes from
def test_pipeline_outputs_do_not_make_the_tree_dirty_but_code_and_params_do(tmp_path):
    from ganpipe.promotion import promotion_source, uncommitted_changes

    root = tmp_path / "proj"
    git_project(root)
    assert uncommitted_changes(root) == [] and promotion_source(root, {}).main_line
    assert "main line (commit" in promotion_source(root, {}).description
    # what dvc repro rewrites does not count; neither do untracked files
    for rel in ("dvc.lock", "metrics/train.json", "plots/loss.csv", "metrics/register.json"):
        (root / rel).write_text('{"changed": 1}\n')
    (root / "models").mkdir()
    (root / "models" / "generator.pt").write_bytes(b"x")
    (root / "scratch.txt").write_text("notes")
    assert uncommitted_changes(root) == [] and promotion_source(root, {}).main_line
    # params, the pipeline definition and code do, staged or not
    (root / "params.yaml").write_text("x: 2\n")
    (root / "train.py").write_text("print('changed')\n")
    git(root, "add", "train.py")
    (root / "dvc.yaml").write_text(DVC_YAML + "# edited\n")
    source = promotion_source(root, {})
    assert not source.main_line and source.changed == ("dvc.yaml", "params.yaml", "train.py")
    assert source.description == "uncommitted changes: dvc.yaml, params.yaml, train.py"
    # not a git repository: nothing to check against
    plain = tmp_path / "plain"
    plain.mkdir()
    assert uncommitted_changes(plain) is None and promotion_source(plain, {}).main_line


def test_dvc_experiments_are_recognised_by_environment_and_folder(tmp_path):
    from ganpipe.promotion import promotion_source

    root = tmp_path / "proj"
    git_project(root)
    env = {"DVC_EXP_NAME": "bushy-lamb", "DVC_EXP_BASELINE_REV": "0123456789abcdef"}
    source = promotion_source(root, env)
    assert not source.main_line and source.description == "DVC experiment 'bushy-lamb' (baseline 0123456)"
    assert not promotion_source(root, {"DVC_EXP_BASELINE_REV": "0123456789"}).main_line
    temp = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpabc123"  # --temp / queued runs execute here
    temp.mkdir(parents=True)
    assert not promotion_source(temp, {}).main_line


@pytest.mark.slow
def test_a_real_dvc_exp_run_is_seen_as_an_experiment(tmp_path):
    """Pins DVC's contract: a stage run by `dvc exp run` (workspace and --temp) sees the experiment
    environment; the same stage under `dvc repro` on a committed tree is the main line."""
    root = tmp_path / "proj"
    root.mkdir()
    seen = tmp_path / "seen"
    seen.mkdir()
    probe = ("import json, sys; from ganpipe.promotion import promotion_source; s = promotion_source('.'); "
             f"open({str(seen)!r} + '/' + sys.argv[1] + '.json', 'w').write(json.dumps([s.main_line, s.description]))")
    (root / "probe.py").write_text(probe + "\n")
    (root / "params.yaml").write_text("mode: repro\n")
    (root / "dvc.yaml").write_text("stages:\n  probe:\n    cmd: python probe.py ${mode}\n    deps: [probe.py]\n"
                                   "    params: [mode]\n")
    git(root, "init", "-q")
    env = {**__import__("os").environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop("DVC_EXP_NAME", None)
    env.pop("DVC_EXP_BASELINE_REV", None)

    def dvc(*args: str) -> None:
        proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stdout + proc.stderr

    dvc("init", "-q")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "init")
    dvc("repro")
    assert json.loads((seen / "repro.json").read_text())[0] is True
    dvc("exp", "run", "-S", "mode=workspace", "-n", "exp-ws")
    assert json.loads((seen / "workspace.json").read_text()) == [False, "DVC experiment 'exp-ws' (baseline "
                                                                 f"{git(root, 'rev-parse', 'HEAD')[:7]})"]
    git(root, "checkout", "-q", "--", ".")
    dvc("exp", "run", "--temp", "-S", "mode=temp", "-n", "exp-temp")
    main_line, description = json.loads((seen / "temp.json").read_text())
    assert main_line is False and description.startswith("DVC experiment 'exp-temp'")


# ------------------------------------------------------------------------------------------------
# comparability
def test_differences_name_the_mel_fields_and_skip_what_one_side_lacks():
    from ganpipe.promotion import differences, profile

    hifi, pwg = MelConfig().to_dict(), {**MelConfig().to_dict(), "fmin": 80.0, "fmax": 7600.0}
    a = profile("vocoder", mel_config=hifi, eval_split="test", eval_set="8:aa")
    assert differences(a, profile("vocoder", mel_config=dict(hifi), eval_split="test", eval_set="8:aa")) == []
    diff = differences(profile("vocoder", mel_config=pwg, eval_split="valid", eval_set="8:aa"), a)
    assert diff[0] == "eval_split (valid vs test)" and diff[1].startswith("mel_config (fmax 7600.0 vs 8000")
    assert "fmin 80.0 vs 0" in diff[1]
    # unknown on one side (an older version, no manifest): not compared
    assert differences(a, {"mel_config": hifi}) == [] and differences(a, {**a, "eval_set": None}) == []



def test_the_automatic_rule_alone():
    """The rule without a registry: source first, then comparability, then the metric beyond the margin."""
    from ganpipe.promotion import Source, automatic_rule, profile

    main, exp = Source(True, "main line"), Source(False, "DVC experiment 'x'")
    mel = profile("vocoder", mel_config=MelConfig().to_dict(), eval_split="test", eval_set="abc")
    other = profile("vocoder", mel_config={**MelConfig().to_dict(), "fmax": 7600.0}, eval_split="test", eval_set="abc")

    def tags(mcd, prof=mel):
        return {"eval_mcd": repr(mcd), "comparability": json.dumps(prof, sort_keys=True)}

    assert automatic_rule(tags(5.0), None, None, "mcd", 0.0, main, "main")[:2] == (True, "no champion yet")
    assert automatic_rule(tags(4.0), tags(5.0), "1", "mcd", 0.0, main, "main")[::2] == (True, True)
    promote, reason, _ = automatic_rule(tags(4.95), tags(5.0), "1", "mcd", 0.1, main, "main")
    assert not promote and "<= margin 0.1" in reason
    promote, reason, comparable = automatic_rule(tags(4.0), tags(5.0, other), "1", "mcd", 0.0, main, "main")
    assert (promote, comparable) == (False, False) and "fmax" in reason
    promote, reason, _ = automatic_rule(tags(4.0), tags(5.0), "1", "mcd", 0.0, exp, "main")
    assert not promote and "dvc exp apply" in reason
    assert automatic_rule(tags(4.0), tags(5.0), "1", "mcd", 0.0, exp, "any")[0]
    assert automatic_rule({"eval_pesq": "3.0"}, {"eval_pesq": "2.0"}, "1", "pesq", 0.0, main, "main")[0]
    assert not automatic_rule({"eval_mcd": "nan"}, tags(5.0), "1", "mcd", 0.0, main, "main")[0]


# ------------------------------------------------------------------------------------------------
# the registry applies it
def test_champion_only_from_the_main_line_and_between_comparable_models(tmp_path, tmp_path_factory, monkeypatch):
    from ganpipe.config import load_params
    from ganpipe.model_registry import register_generator

    root = tmp_path / "proj"
    params = make_project(root, mlflow_template(tmp_path_factory))
    git_project(root)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    monkeypatch.delenv("DVC_EXP_BASELINE_REV", raising=False)
    gens = {k: make_generator(root / "gens" / f"{k}.pt", seed=i) for i, k in enumerate("abcdef")}

    def reg(key: str, mcd: float, **kwargs):
        return register_generator(gens[key], eval_json(root / f"{key}.json", mcd=mcd), params, root, **kwargs)

    v1 = reg("a", 8.0)  # committed tree: the first version is the champion
    assert (v1.version, v1.decision, v1.promoted, v1.aliases) == ("1", "champion", True, ["candidate", "champion"])
    assert v1.source.startswith("main line (commit") and v1.champion_version == "1"

    # a DVC experiment with a better model: candidate only, with the reason
    monkeypatch.setenv("DVC_EXP_NAME", "bushy-lamb")
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", git(root, "rev-parse", "HEAD").strip())
    v2 = reg("b", 6.0)
    assert (v2.version, v2.decision, v2.promoted, v2.champion_version) == ("2", "candidate", False, "1")
    assert "DVC experiment 'bushy-lamb'" in v2.decision_reason and "promote_from: main" in v2.decision_reason
    assert v2.source.startswith("DVC experiment 'bushy-lamb'") and aliases(root) == {"candidate": "2", "champion": "1"}
    tags = client_for(root).get_model_version(MODEL, "2").tags
    assert tags["decision"] == "candidate" and tags["source"].startswith("DVC experiment")
    monkeypatch.delenv("DVC_EXP_NAME")
    monkeypatch.delenv("DVC_EXP_BASELINE_REV")

    # uncommitted changes (params.yaml edited, then dvc repro): candidate only ...
    text = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text(text.replace("margin: 0.0", "margin: 0.5"))
    v3 = reg("c", 5.0)
    assert (v3.version, v3.decision, v3.promoted) == ("3", "candidate", False)
    assert v3.decision_reason.startswith("uncommitted changes: params.yaml: not promoted")
    assert aliases(root) == {"candidate": "3", "champion": "1"}
    # ... and after `git commit`, registering the same model again re-evaluates it: promoted
    git(root, "commit", "-qam", "margin 0.5")
    params = load_params(root / "params.yaml")
    again = reg("c", 5.0)
    assert (again.version, again.created, again.decision, again.promoted) == ("3", False, "champion", True)
    assert "improvement 3 > margin 0.5" in again.decision_reason and again.champion_before_version == "1"
    assert aliases(root) == {"candidate": "3", "champion": "3"}

    # the already-registered path reports the registry's real state: v1 was champion once, is not now
    old = reg("a", 8.0)
    assert (old.version, old.created, old.decision, old.promoted) == ("1", False, "candidate", False)
    assert old.aliases == [] and old.champion_version == "3" and "vs champion v3" in old.decision_reason
    assert aliases(root) == {"candidate": "3", "champion": "3"}

    # another mel configuration: not compared, candidate with the reason
    pwg = MelConfig(fmin=80.0, fmax=7600.0, log_base="10")
    gens["d"] = make_generator(root / "gens" / "d.pt", seed=3, mel=pwg)
    v4 = reg("d", 1.0)
    assert (v4.version, v4.decision, v4.comparable) == ("4", "candidate", False)
    assert v4.decision_reason.startswith("not comparable with champion v3: different mel_config (")
    assert "fmin 80.0 vs 0" in v4.decision_reason and "log_base 10 vs e" in v4.decision_reason
    assert aliases(root) == {"candidate": "4", "champion": "3"}

    # asked for explicitly: promoted whatever the rule says (here: worse, and from an experiment)
    monkeypatch.setenv("DVC_EXP_NAME", "asked-for")
    v5 = reg("e", 9.0, promote=True)
    assert (v5.version, v5.decision, v5.promoted) == ("5", "champion", True)
    assert v5.decision_reason.startswith("promoted on request (--promote); the automatic rule would keep it")
    assert aliases(root) == {"candidate": "5", "champion": "5"}
    # ... and registry.promote_from: any lets experiments compete on the metric
    anywhere = make_project(root, None, {"promote_from": "any"})
    v6 = register_generator(gens["f"], eval_json(root / "f.json", mcd=7.0), anywhere, root)
    assert (v6.version, v6.decision) == ("6", "champion") and "improvement 2 > margin 0" in v6.decision_reason


@pytest.mark.network  # a Prefect server (prefect_harness)
def test_register_flow_promote_flag_and_the_reported_aliases(tmp_path, tmp_path_factory, prefect_harness,
                                                             monkeypatch):
    from flows.register import outcome_line, register_flow

    root = tmp_path / "proj"
    make_project(root, mlflow_template(tmp_path_factory))
    monkeypatch.setenv("DVC_EXP_NAME", "trial")
    make_generator(root / "models" / "generator.pt", seed=5)
    eval_json(root / "metrics" / "eval.json", mcd=6.0)
    first = register_flow(project_dir=str(root))
    assert (first["decision"], first["promoted"], first["aliases"]) == ("candidate", False, ["candidate"])
    written = json.loads((root / "metrics" / "register.json").read_text())
    assert written["champion_version"] is None and written["source"] == "DVC experiment 'trial'"
    assert "aliases now: candidate; champion: none; source: DVC experiment 'trial'" in outcome_line(first)
    promoted = register_flow(project_dir=str(root), promote=True)  # the same model: no new version
    assert (promoted["version"], promoted["created"], promoted["decision"]) == ("1", False, "champion")
    written = json.loads((root / "metrics" / "register.json").read_text())
    assert written["promoted"] and written["aliases"] == ["candidate", "champion"] and written["champion_version"] == "1"
    assert "[already registered: no new version]; aliases now: candidate, champion; champion: v1" in \
        outcome_line(promoted)
    from flows.register import experiment_runs_url
    from ganpipe.config import load_params

    url = experiment_runs_url(load_params(root / "params.yaml"), root)
    assert url.startswith("http://127.0.0.1:5000/#/experiments/") and url.endswith("/runs?workflowType=machine_learning")
    assert not url.startswith("http://127.0.0.1:5000/#/experiments/0/")  # the project's experiment, not Default


def test_register_cli_has_the_promote_flag():
    from typer.testing import CliRunner

    from ganpipe.cli import app

    result = CliRunner().invoke(app, ["register", "--help"])
    assert result.exit_code == 0 and "--promote" in result.output


@pytest.mark.parametrize("value", ["main", "any"])
def test_promote_from_is_validated(value):
    from ganpipe.config import ConfigError, parse_params

    assert parse_params({"registry": {"promote_from": value}}).registry.promote_from == value
    with pytest.raises(ConfigError, match=r"registry\.promote_from.*'main'.*'any'"):
        parse_params({"registry": {"promote_from": "experiments"}})
