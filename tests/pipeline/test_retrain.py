"""Retrain flow logic: promote only if better, failures (retried or not) leave the champion alone,
fine-tuning from the champion, two retrains in one process take turns, schedule validation.

The pipeline command is a tiny stand-in for `dvc repro` (the retrain flow's ``command`` parameter):
it installs a prepared generator file as models/generator.pt with its metrics/eval.json. The real
thing (a scheduled deployment on a Prefect server running the whole `dvc repro`, and two retrain
processes at once on one project) is tests/pipeline/test_retrain_pipeline.py.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest
import torch

from tests.support.registry_project import MODEL, aliases, make_generator, make_project, mlflow_template, version_ids

INSTALL = """\
import json, os, shutil, sys, time
from pathlib import Path
src, mcd, flags = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
with open("commands.log", "a") as log:
    log.write(f"start {src}\\n")
counter = Path(f"attempts-{Path(src).stem}")
attempt = int(counter.read_text()) + 1 if counter.exists() else 1
counter.write_text(str(attempt))
if "--fail" in flags:
    print("boom: the corpus is corrupt")
    sys.exit(3)
if "--flaky" in flags and attempt == 1:
    print("ERROR: Unable to acquire lock. Most likely another DVC process is running or was terminated abruptly.")
    sys.exit(1)
if "--slow" in flags:
    time.sleep(1.0)
Path("fine_tune_from.txt").write_text(os.environ.get("GANPIPE_FINE_TUNE_FROM", ""))
Path("models").mkdir(exist_ok=True)
Path("metrics").mkdir(exist_ok=True)
shutil.copy(src, "models/generator.pt")
Path("metrics/eval.json").write_text(json.dumps({"kind": "vocoder", "variant": "hifigan_v3", "step": 7, "mcd": mcd}))
with open("commands.log", "a") as log:
    log.write(f"end {src}\\n")
"""


def project(root: Path, template: Path, seeds: list[int]) -> Path:
    # the generators are HiFi-GAN V3 files, params.yaml's default variant is not: name the model
    make_project(root, template, {"retries": 2, "retry_delay_seconds": 0, "model_name": MODEL})
    (root / "install.py").write_text(INSTALL)
    for s in seeds:
        make_generator(root / "gens" / f"g{s}.pt", seed=s)
    return root


def install(gen: str, mcd: float, *flags: str) -> list[str]:
    return [sys.executable, "install.py", f"gens/{gen}.pt", str(mcd), *flags]


def attempts(root: Path, gen: str) -> int:
    return int((root / f"attempts-{gen}").read_text())


@pytest.mark.network  # a Prefect server (prefect_harness)
def test_retrain_promotes_only_if_better_and_failures_keep_the_champion(tmp_path, tmp_path_factory,
                                                                         prefect_harness, monkeypatch):
    from flows.retrain import CommandError, retrain_flow
    from ganpipe.model_registry import file_sha256
    from ganpipe.training import starting_model

    root = project(tmp_path / "proj", mlflow_template(tmp_path_factory), [1, 2])
    first = retrain_flow(project_dir=str(root), command=install("g1", 8.0), push=False)
    assert first["status"] == "ok" and (first["champion_before"], first["champion_after"]) == (None, "1")
    assert aliases(root) == {"candidate": "1", "champion": "1"}

    # a failing pipeline: not retried (not transient), reported, nothing registered, champion kept
    with pytest.raises(CommandError, match=r"exit code 3[\s\S]*boom: the corpus is corrupt"):
        retrain_flow(project_dir=str(root), command=install("g2", 1.0, "--fail"), push=False)
    assert attempts(root, "g2") == 1
    assert version_ids(root) == ["1"] and aliases(root) == {"candidate": "1", "champion": "1"}

    # a transient failure (DVC's lock held elsewhere) is retried; fine-tuning starts from the
    # champion; the worse model becomes candidate only
    (root / "attempts-g2").unlink()
    second = retrain_flow(project_dir=str(root), command=install("g2", 9.0, "--flaky"), push=False,
                          fine_tune_from_champion=True)
    assert attempts(root, "g2") == 2
    assert (root / "fine_tune_from.txt").read_text() == f"models:/{MODEL}/1" == second["fine_tune_from"]
    assert second["registration"]["decision"] == "candidate" and second["champion_after"] == "1"
    assert second["registration"]["generator_sha256"] == file_sha256(root / "gens" / "g2.pt")
    assert aliases(root) == {"candidate": "2", "champion": "1"}

    # train.fine_tune_from accepts the registry URI: the champion's generator weights
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / '.mlflow' / 'mlflow.db'}")
    weights = starting_model.load(f"models:/{MODEL}@champion").generator
    saved = torch.load(root / "gens" / "g1.pt", weights_only=True)["state_dict"]
    assert weights.keys() == saved.keys() and all(torch.equal(weights[k], saved[k]) for k in saved)
    with pytest.raises(ValueError, match="train.fine_tune_from=models:/nope@champion"):
        starting_model.load("models:/nope@champion")


@pytest.mark.network  # a Prefect server (prefect_harness)
def test_two_retrains_at_once_take_turns(tmp_path, tmp_path_factory, prefect_harness):
    """Same project, started together: the pipeline+registration of one never interleaves with the
    other's (each registers the generator its own pipeline produced), versions/aliases consistent."""
    from flows.retrain import retrain_flow
    from ganpipe.model_registry import file_sha256

    root = project(tmp_path / "proj", mlflow_template(tmp_path_factory), [3, 4])
    jobs = {"g3": 6.0, "g4": 9.0}
    start = threading.Barrier(len(jobs))
    results, errors = {}, []

    def work(gen: str) -> None:
        try:
            start.wait()
            results[gen] = retrain_flow(project_dir=str(root), command=install(gen, jobs[gen], "--slow"), push=False)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(g,)) for g in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    log = (root / "commands.log").read_text().split()
    pairs = [(log[i], log[i + 1], log[i + 2], log[i + 3]) for i in range(0, len(log), 4)]
    assert len(pairs) == 2 and all(p[0] == "start" and p[2] == "end" and p[1] == p[3] for p in pairs), log
    for gen, summary in results.items():  # each registered what its own command installed
        assert summary["registration"]["generator_sha256"] == file_sha256(root / "gens" / f"{gen}.pt")
    assert version_ids(root) == ["1", "2"]
    assert aliases(root) == {"candidate": "2", "champion": results["g3"]["registration"]["version"]}


def test_schedule_needs_a_valid_cron_and_a_server(monkeypatch):
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.retrain import serve

    with pytest.raises(SystemExit, match="invalid schedule.*'every sunday'"):
        serve("x", "every sunday", "UTC", {})
    with pytest.raises(SystemExit, match="invalid schedule.*Mars/Base"):
        serve("x", "0 3 * * 0", "Mars/Base", {})
    with temporary_settings({PREFECT_API_URL: None}):
        with pytest.raises(SystemExit, match="prefect server start"):
            serve("x", "0 3 * * 0", "UTC", {})


@pytest.mark.network  # a Prefect server (prefect_harness)
def test_retrain_source_is_checked_before_the_pipeline_runs(tmp_path, tmp_path_factory, prefect_harness):
    """A retrain started from committed files promotes a better model even though its pipeline
    changes params.yaml (as `dvc exp run -S train.fine_tune_from=...` does), and puts params.yaml
    back, so the next cycle promotes too; started from uncommitted changes, the better model is
    registered as candidate only."""
    import subprocess

    from flows.retrain import retrain_flow

    root = project(tmp_path / "proj", mlflow_template(tmp_path_factory), [5, 6, 7, 8])
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    (root / ".gitignore").write_text(".mlflow/\ngens/\nmodels/\nmetrics/\nattempts-*\n*.log\n*.txt\n.ganpipe-dvc.lock\n")
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "project"], cwd=root, check=True)
    first = retrain_flow(project_dir=str(root), command=install("g5", 8.0), push=False)
    assert first["registration"]["decision"] == "champion" and "main line" in first["source"]

    edits_params = [sys.executable, "-c", "import pathlib, subprocess, sys; p = pathlib.Path('params.yaml'); "
                    "p.write_text(p.read_text() + '# fine_tune_from\\n'); "
                    "sys.exit(subprocess.call(sys.argv[1:]))", *install("g6", 7.0)]
    second = retrain_flow(project_dir=str(root), command=edits_params, push=False)
    assert second["source"].startswith("retrain flow started from: main line (commit")
    assert second["registration"]["decision"] == "champion" and aliases(root)["champion"] == "2"

    # the cycle put params.yaml back (the next cycle starts from the committed tree and can promote)
    assert subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True).stdout == ""
    third = retrain_flow(project_dir=str(root), command=install("g7", 6.0), push=False)
    assert third["source"].startswith("retrain flow started from: main line (commit")
    assert third["registration"]["decision"] == "champion" and aliases(root) == {"candidate": "3", "champion": "3"}

    # a change made by hand before the cycle is not the cycle's: candidate only, and it stays
    (root / "params.yaml").write_text((root / "params.yaml").read_text() + "# by hand\n")
    fourth = retrain_flow(project_dir=str(root), command=install("g8", 5.0), push=False)
    assert fourth["source"] == "uncommitted changes: params.yaml"
    assert fourth["registration"]["decision"] == "candidate" and aliases(root) == {"candidate": "4", "champion": "3"}
    assert "uncommitted changes: params.yaml: not promoted" in fourth["registration"]["decision_reason"]
    assert (root / "params.yaml").read_text().endswith("# by hand\n")


def test_when_changed_polls_on_a_cron():
    from flows.retrain import when_changed_cron

    assert when_changed_cron(15) == "*/15 * * * *" and when_changed_cron(120) == "0 */2 * * *"
    with pytest.raises(SystemExit, match="--poll-minutes must be >= 1"):
        when_changed_cron(0)
