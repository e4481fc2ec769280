"""Register stage: promotion rules, idempotence, metadata/tags, the Prefect flow, concurrent registrations.
(The helpers it shares with the serving and retrain tests are in tests/support/registry_project.py.)"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import textwrap
import typing
from pathlib import Path

import pytest

from ganpipe.config import ConfigError, PrimaryMetric, parse_params
from ganpipe.mel import MelConfig
from tests.conftest import REPO_ROOT
from tests.support.registry_project import (
    MODEL,
    aliases,
    client_for,
    eval_json,
    make_generator,
    make_project,
    mlflow_template,
    version_ids,
    versions,
)


# ------------------------------------------------------------------------------------------------
# params
def test_registry_params_validate_and_name_the_model():
    from ganpipe.metrics import METRIC_KEYS
    from ganpipe.promotion import higher_is_better, primary_metric_for

    p = parse_params({})
    assert p.registry.primary_metric == "auto" and p.registry.champion_alias == "champion"
    assert primary_metric_for("auto", "vocoder") == "mcd"
    assert primary_metric_for("auto", "unconditional") == "frechet_mel"
    assert primary_metric_for("pesq", "vocoder") == "pesq"
    assert primary_metric_for("ndb_fraction", "unconditional") == "ndb_fraction"
    assert parse_params({"registry": {"primary_metric": "frechet_mel"}}).registry.primary_metric == "frechet_mel"
    assert p.registry.registered_name("demo", "hifigan_v3") == MODEL
    assert parse_params({"registry": {"model_name": "my-voc"}}).registry.registered_name("demo", "x") == "my-voc"
    allowed = set(typing.get_args(PrimaryMetric))
    assert set(METRIC_KEYS) <= allowed  # every metric of metrics/eval.json can be the primary one
    assert higher_is_better("pesq") and not higher_is_better("mcd")
    for metric in allowed - {"auto"}:
        higher_is_better(metric)  # a direction is known for each
    assert not higher_is_better("frechet_mel") and not higher_is_better("ndb_fraction")
    with pytest.raises(ConfigError, match=r"registry\.primary_metric.*'auto', 'mcd'.*'frechet_mel'.*accuracy"):
        parse_params({"registry": {"primary_metric": "accuracy"}})
    with pytest.raises(ConfigError, match="must differ"):
        parse_params({"registry": {"champion_alias": "candidate"}})
    with pytest.raises(ConfigError, match="reserved"):
        parse_params({"registry": {"champion_alias": "latest"}})
    with pytest.raises(ConfigError, match=r"registry\.margin"):
        parse_params({"registry": {"margin": -1}})
    with pytest.raises(ConfigError, match=r"registry\.bogus"):
        parse_params({"registry": {"bogus": 1}})


def test_metrics_must_describe_the_generator(tmp_path):
    """Checked before anything touches the registry (no store is needed)."""
    from ganpipe.model_registry import RegistryError, register_generator

    gen = make_generator(tmp_path / "g.pt", seed=0, step=7)
    params = parse_params({"tracking": {"tracking_uri": f"sqlite:///{tmp_path}/never.db"}})
    with pytest.raises(RegistryError, match="evaluate stage"):
        register_generator(gen, {"mcd": 5.0, "variant": "hifigan_v3", "step": 99}, params, tmp_path)
    with pytest.raises(RegistryError, match="evaluate stage"):
        register_generator(gen, {"mcd": 5.0, "variant": "melgan", "step": 7}, params, tmp_path)
    with pytest.raises(RegistryError, match="evaluation metrics not found"):
        register_generator(gen, tmp_path / "nope.json", params, tmp_path)
    with pytest.raises(RegistryError, match="generator file not found"):
        register_generator(tmp_path / "missing.pt", {"mcd": 5.0}, params, tmp_path)
    assert not (tmp_path / "never.db").exists()


# ------------------------------------------------------------------------------------------------
# promotion, idempotence, metadata
def test_promotion_rules_idempotence_and_metadata(tmp_path, tmp_path_factory):
    import mlflow

    from ganpipe.model_registry import RegistryError, file_sha256, register_generator

    root = tmp_path / "proj"
    params = make_project(root, mlflow_template(tmp_path_factory))
    # the data version: a git commit and dvc.lock hashes of data/features and data/prepared
    (root / "dvc.lock").write_text(textwrap.dedent("""\
        schema: '2.0'
        stages:
          prepare:
            outs:
            - path: data/prepared
              md5: 1111.dir
          features:
            outs:
            - path: data/features
              md5: 2222.dir
        """))
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "dvc.lock"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "data"], cwd=root, check=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()

    gens = {k: make_generator(root / f"{k}.pt", seed=i) for i, k in enumerate("abcd")}

    # 1. first version: champion because there is none
    a = register_generator(gens["a"], eval_json(root / "a.json", mcd=8.0, pesq=1.5), params, root)
    assert (a.version, a.decision, a.created, a.champion_before_version) == ("1", "champion", True, None)
    assert a.aliases_assigned == ["candidate", "champion"] and a.decision_reason == "no champion yet"
    assert aliases(root) == {"candidate": "1", "champion": "1"}

    # 2. worse (mcd: lower is better): candidate only; both metrics recorded
    b = register_generator(gens["b"], eval_json(root / "b.json", mcd=9.0), params, root)
    assert (b.version, b.decision, b.promoted) == ("2", "candidate", False)
    assert (b.new_value, b.champion_before_version, b.champion_before_value) == (9.0, "1", 8.0)
    assert aliases(root) == {"candidate": "2", "champion": "1"}
    tags = client_for(root).get_model_version(MODEL, "2").tags
    assert tags["decision"] == "candidate" and tags["champion_before_value"] == "8.0"
    assert tags["primary_metric"] == "mcd" and tags["eval_mcd"] == "9.0" and tags["registration"] == "complete"

    # 3. the same generator file again: no new version, same answer
    again = register_generator(gens["b"], root / "b.json", params, root)
    assert (again.version, again.created, again.decision) == ("2", False, "candidate")
    assert again.to_dict() == b.to_dict()  # metrics/register.json content is stable
    # the same weights saved again (torch.save writes other bytes): still no new version
    resaved = make_generator(root / "b-again.pt", seed=1)
    assert file_sha256(resaved) != file_sha256(gens["b"])
    assert register_generator(resaved, root / "b.json", params, root).version == "2"
    assert len(versions(root)) == 2

    # 4. better, but not by more than the margin: kept
    strict = make_project(root, None, {"margin": 0.1})  # same store, margin 0.1
    c = register_generator(gens["c"], eval_json(root / "c.json", mcd=7.95), strict, root)
    assert (c.version, c.decision) == ("3", "candidate") and "margin 0.1" in c.decision_reason
    assert aliases(root) == {"candidate": "3", "champion": "1"}

    # 5. better by more than the margin: the new champion
    d = register_generator(gens["d"], eval_json(root / "d.json", mcd=7.5), strict, root)
    assert (d.version, d.decision, d.champion_before_version) == ("4", "champion", "1")
    assert aliases(root) == {"candidate": "4", "champion": "4"}

    # 6. a version whose primary metric is null (not computed) never displaces the champion
    e = register_generator(make_generator(root / "e.pt", seed=9), eval_json(root / "e.json", mcd=None, pesq=4.0),
                           strict, root)
    assert e.decision == "candidate" and "missing" in e.decision_reason
    assert aliases(root)["champion"] == "4"
    # ... and metrics without the primary metric at all are refused, naming it and what there is
    with pytest.raises(RegistryError, match=r"'mcd' is not in .*f\.json; its metrics are \['pesq'\]"):
        register_generator(make_generator(root / "f.pt", seed=10), eval_json(root / "f.json", pesq=4.0), strict, root)
    assert len(versions(root)) == 5

    # metadata and tags of a version: mel config, sample rate, variant, data version, metrics
    mv = client_for(root).get_model_version(MODEL, "1")
    assert mv.tags["generator_sha256"] == file_sha256(gens["a"]) and mv.tags["git_commit"] == commit
    assert mv.tags["data_features_md5"] == "2222.dir" and mv.tags["data_prepared_md5"] == "1111.dir"
    assert json.loads(mv.tags["mel_config"]) == MelConfig().to_dict() and mv.tags["sample_rate"] == "22050"
    mlflow.set_tracking_uri(f"sqlite:///{root / '.mlflow' / 'mlflow.db'}")
    info = mlflow.models.get_model_info(f"models:/{MODEL}@champion")
    meta = info.metadata
    assert meta["variant"] == "hifigan_v3" and meta["sample_rate"] == 22050 and meta["n_mels"] == 80
    assert meta["mel_config"] == MelConfig().to_dict() and meta["eval_metrics"] == {"mcd": 7.5}
    assert meta["data_version"]["git_commit"] == commit and meta["generator_sha256"] == file_sha256(gens["d"])
    assert meta["kind"] == "vocoder" and meta["format"] == "ganpipe-vocoder/1" and meta["primary_metric"] == "mcd"
    assert mv.tags["kind"] == "vocoder" and a.kind == "vocoder" and a.primary_metric == "mcd"
    assert tuple(info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, -1, -1)
    assert {p.name for p in info.signature.params.params} == {"input_type", "lengths", "speaker", "backend"}
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1", dst_path=str(tmp_path / "dl")))
    reqs = (local / "requirements.txt").read_text()
    assert "torch==" in reqs and "mlflow==" in reqs and "numpy==" in reqs
    assert (local / "code" / "ganpipe" / "serving" / "pyfunc.py").is_file()  # the model carries its code


def test_higher_is_better_metric_promotes_the_larger(tmp_path, tmp_path_factory):
    from ganpipe.model_registry import register_generator

    root = tmp_path / "proj"
    params = make_project(root, mlflow_template(tmp_path_factory), {"primary_metric": "pesq", "model_name": "voc"})
    first = register_generator(make_generator(root / "a.pt", 1), eval_json(root / "a.json", pesq=2.0), params, root)
    lower = register_generator(make_generator(root / "b.pt", 2), eval_json(root / "b.json", pesq=1.9), params, root)
    higher = register_generator(make_generator(root / "c.pt", 3), eval_json(root / "c.json", pesq=2.1), params, root)
    assert [first.decision, lower.decision, higher.decision] == ["champion", "candidate", "champion"]
    assert higher.higher_is_better and "higher is better" in higher.decision_reason
    assert aliases(root, "voc") == {"candidate": "3", "champion": "3"}


def test_an_interrupted_registration_is_completed_by_the_next_run(tmp_path, tmp_path_factory, monkeypatch):
    import ganpipe.model_registry as R

    root = tmp_path / "proj"
    params = make_project(root, mlflow_template(tmp_path_factory))
    gen = make_generator(root / "g.pt", seed=21)
    decide = R._decide

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed after the version was created")

    monkeypatch.setattr(R, "_decide", killed)
    with pytest.raises(KeyboardInterrupt):
        R.register_generator(gen, {"mcd": 5.0}, params, root)
    assert version_ids(root) == ["1"] and aliases(root) == {}  # created, not decided
    monkeypatch.setattr(R, "_decide", decide)
    done = R.register_generator(gen, {"mcd": 5.0}, params, root)
    assert (done.version, done.created, done.decision) == ("1", False, "champion")
    assert aliases(root) == {"candidate": "1", "champion": "1"} and version_ids(root) == ["1"]


# ------------------------------------------------------------------------------------------------
# the flow (DVC stage entry point)
@pytest.mark.network  # a Prefect server (prefect_harness)
def test_register_flow_writes_metrics_and_artifact(tmp_path, tmp_path_factory, prefect_harness):
    import asyncio

    from prefect.client.orchestration import get_client

    from flows.register import register_flow

    root = tmp_path / "proj"
    make_project(root, mlflow_template(tmp_path_factory))
    make_generator(root / "models" / "generator.pt", seed=3)
    eval_json(root / "metrics" / "eval.json", mcd=6.0)
    result = register_flow(project_dir=str(root))
    assert result["version"] == "1" and result["decision"] == "champion" and result["created"]
    written = json.loads((root / "metrics" / "register.json").read_text())
    assert written["version"] == "1" and written["decision"] == "champion" and written["new_value"] == 6.0
    assert "created" not in written  # stable content: a re-run writes the same file
    again = register_flow(project_dir=str(root))
    assert not again["created"] and json.loads((root / "metrics" / "register.json").read_text()) == written
    assert len(versions(root)) == 1

    async def artifacts() -> list:
        async with get_client() as client:
            return [a for a in await client.read_artifacts() if a.key == "register-summary"]

    found = asyncio.run(artifacts())
    assert found and any("champion" in (a.data or "") and "no champion yet" in (a.data or "") for a in found)

    # registry disabled: recorded, nothing registered
    make_project(root, None, {"enabled": False})
    assert register_flow(project_dir=str(root)) == {"registered": False, "reason": "registry.enabled is false"}
    assert json.loads((root / "metrics" / "register.json").read_text())["registered"] is False
    make_project(root, None)

    # unconditional variants are registered too (their own model), promoted on frechet_mel
    make_generator(root / "models" / "generator.pt", seed=1, variant="wavegan")
    eval_json(root / "metrics" / "eval.json", variant="wavegan", kind="unconditional", frechet_mel=1.0,
              ndb=2, ndb_fraction=0.2)
    wave = register_flow(project_dir=str(root))
    assert (wave["model_name"], wave["version"], wave["kind"]) == ("ganpipe-demo-wavegan", "1", "unconditional")
    assert wave["decision"] == "champion" and wave["primary_metric"] == "frechet_mel" and wave["new_value"] == 1.0
    written = json.loads((root / "metrics" / "register.json").read_text())
    assert written["variant"] == "wavegan" and written["eval_metrics"] == {"frechet_mel": 1.0, "ndb": 2.0,
                                                                          "ndb_fraction": 0.2}


def test_dvc_yaml_has_the_register_stage():
    import yaml

    stage = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]["register"]
    assert stage["cmd"] == "python -m flows.register"
    # the champion is re-scored on the evaluation clips as the evaluate stage scores; a fine-tune's parent
    assert stage["params"] == ["registry", "evaluation", "train.fine_tune_from"]
    assert {"models/generator.pt", "metrics/eval.json", "data/prepared"} <= set(stage["deps"])
    assert stage["metrics"] == [{"metrics/register.json": {"cache": False}}]


# ------------------------------------------------------------------------------------------------
# concurrency
def test_concurrent_registrations_stay_consistent(tmp_path, tmp_path_factory):
    """Two registrations of different generator files started at the same moment (threads: each
    takes the lock through its own file descriptor, exactly as two processes do): two complete
    versions, candidate on the later one, champion on the better one whichever came first, the
    later one aware of the earlier, the database intact."""
    import threading

    from ganpipe.model_registry import file_sha256, register_generator

    root = tmp_path / "proj"
    params = make_project(root, mlflow_template(tmp_path_factory))
    jobs = {"good": (make_generator(root / "good.pt", seed=11), eval_json(root / "good.json", mcd=6.0)),
            "bad": (make_generator(root / "bad.pt", seed=12), eval_json(root / "bad.json", mcd=9.0))}
    start = threading.Barrier(len(jobs))
    results, errors = {}, []

    def work(key: str) -> None:
        try:
            start.wait()
            results[key] = register_generator(*jobs[key], params, root)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k,)) for k in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert sorted(r.version for r in results.values()) == ["1", "2"] and all(r.created for r in results.values())
    vs = versions(root)
    assert {v.tags["generator_sha256"]: str(v.version) for v in vs} == {
        file_sha256(jobs[k][0]): r.version for k, r in results.items()}
    assert all(v.tags.get("registration") == "complete" for v in vs)
    assert aliases(root) == {"candidate": "2", "champion": results["good"].version}
    later = next(r for r in results.values() if r.version == "2")
    assert later.champion_before_version == "1"  # it saw the first one's decision
    with sqlite3.connect(root / ".mlflow" / "mlflow.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
