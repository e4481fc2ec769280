"""The retrain loop on changing data, for real: fresh copies of the repository with the smallest
pipeline that still decides by the numbers, one real ``prefect server`` for the module.

* Growth: a ``local`` corpus grows 16 -> 32 -> 48 clips. Every earlier test clip stays in test;
  each cycle re-scores the champion on the current evaluation set and decides by the numbers
  (never "not comparable", never ``--promote``); an unchanged cycle ends with "nothing changed, no
  new version"; a deliberately worse cycle (1 training step) stays candidate with both scores and
  the set in its reason; a ``--fine-tune`` cycle leaves ``git status`` clean, its tag keeps the
  starting model, and the next cycle's model counts as made on the main line (it can promote).
* URL corpus: an archive on a local HTTP server. An unchanged archive makes a no-op cycle; the
  archive replaced on the server (new ETag) is noticed by plain ``dvc repro``'s remote_validators
  stage, and the next cycle re-runs the pipeline and registers a new version.

The clips are 1-second crops of the LJSpeech sample, written outside the repository. Training is
the generator alone (no discriminator: adversarial training is not under test here), mel loss only.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.support.fresh_clone import clean_env, edit_params, fresh_clone, run
from tests.support.http_server import FileServer
from tests.support.prefect_server import start_server, stop, wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.timeout(2400)]

GIT = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
STEPS = 24  # enough for a trained model to beat a 1-step one by a wide margin
CHEAP = {"split": {"test_fraction": 0.2, "valid_fraction": 0.1},
         "train": {"steps": STEPS, "checkpoint_every": STEPS, "validate_every": STEPS, "log_every": STEPS,
                   "discriminator_start_step": 100000},
         "evaluation": {"max_utterances": None, "griffin_lim_iterations": 0, "samples_to_save": 0},
         "registry": {"export_onnx": False}}


@pytest.fixture(scope="module")
def server_env(tmp_path_factory: pytest.TempPathFactory):
    """One Prefect server for every cycle of the module; the environment the cycles run in."""
    env = clean_env()
    server, api, log = start_server(tmp_path_factory.mktemp("prefect"), env)
    try:
        wait_healthy(server, api, log)
        yield env
    finally:
        stop(server)


def crops(lj_wavs: list[Path], seconds: float = 1.0) -> list[tuple[str, object, int]]:
    import soundfile as sf

    out = []
    for w in lj_wavs[:24]:
        wav, sr = sf.read(w, dtype="float32")
        n = int(seconds * sr)
        start = int(0.3 * sr)  # past the leading silence the prepare stage trims
        out += [(f"{w.stem}a", wav[start:start + n], sr), (f"{w.stem}b", wav[start + n:start + 2 * n], sr)]
    return out


def grow(corpus: Path, clips: list, n: int) -> None:
    import soundfile as sf

    (corpus / "LJ").mkdir(parents=True, exist_ok=True)
    for name, wav, sr in clips[:n]:
        if not (corpus / "LJ" / f"{name}.wav").exists():
            sf.write(corpus / "LJ" / f"{name}.wav", wav, sr, subtype="PCM_16")


def cycle(repo: Path, env: dict, log: Path, *flags: str) -> str:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flows.retrain", "--project-dir", str(repo), "--no-push", *flags],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    log.write_text(proc.stdout + proc.stderr)
    print(f"{log.stem}: {time.perf_counter() - t0:.1f} s")  # reported, not asserted (shared machines)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def commit(repo: Path, changes: dict, message: str) -> None:
    edit_params(repo, changes)
    run([*GIT, "commit", "-qam", message], repo)


def splits_of(repo: Path) -> dict[str, str]:
    m = pd.read_csv(repo / "data" / "prepared" / "manifest.csv")
    return dict(zip(m.utt_id, m.split))


def version_tags(repo: Path, model: str, version: str) -> dict[str, str]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{repo / '.mlflow' / 'mlflow.db'}"
    return dict(MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(model, version).tags)


def test_a_growing_corpus_keeps_its_test_set_and_the_champion_is_rescored(tmp_path: Path, lj_wavs: list[Path],
                                                                          server_env: dict[str, str]):
    from ganpipe.promotion import promotion_source

    model, env = "ganpipe-local-vocos", server_env
    clips = crops(lj_wavs)
    corpus = tmp_path / "corpus"
    grow(corpus, clips, 16)
    repo = fresh_clone(tmp_path / "repo")
    commit(repo, {**CHEAP, "dataset": {"name": "local", "local_dir": str(corpus)}}, "a local corpus")

    cycle(repo, env, tmp_path / "c1.log")
    assert version_tags(repo, model, "1")["decision"] == "champion"
    assert "train:" in run(["git", "show", f"{model}-v1:dvc.lock"], repo)  # the cycle's commit, tagged
    assert "mcd" in json.loads(run(["git", "show", f"{model}-v1:metrics/eval.json"], repo))
    seen = {u for u, s in splits_of(repo).items() if s == "test"}
    prepared = len(splits_of(repo))  # crops too short once trimmed are skipped by the prepare stage
    assert seen and run(["git", "status", "--porcelain"], repo) == ""

    def grown(n: int, version: str, *flags: str) -> dict[str, str]:
        nonlocal seen, prepared
        grow(corpus, clips, n)
        cycle(repo, env, tmp_path / f"c{version}.log", *flags)
        split = splits_of(repo)
        test = {u for u, s in split.items() if s == "test"}
        assert seen <= test and prepared <= len(split) <= n  # every earlier test clip is still test
        tags = version_tags(repo, model, version)
        reason = tags["decision_reason"]
        print(f"v{version}: {tags['decision']}: {reason} | rescoring: {tags.get('rescoring', '-')}")
        assert "not comparable" not in reason and " on eval set " in reason and " vs " in reason, reason
        if test != seen:  # a new evaluation set: the champion is scored on it
            assert "re-scored" in tags.get("rescoring", "") or "cached" in tags.get("rescoring", ""), tags
        seen, prepared = test, len(split)
        return tags

    v2 = grown(32, "2")
    assert "vs champion v1 " in v2["decision_reason"]

    t0 = time.perf_counter()
    idle = cycle(repo, env, tmp_path / "idle.log")
    print(f"no-op cycle: {time.perf_counter() - t0:.1f} s")
    assert "nothing changed, no new version" in idle

    champion = "2" if v2["decision"] == "champion" else "1"
    commit(repo, {"train": {"steps": 1}}, "a deliberately worse training: 1 step")
    worse = grown(48, "3")
    assert worse["decision"] == "candidate", worse
    assert worse["decision_reason"].startswith("mcd ") and f" vs champion v{champion} " in worse["decision_reason"]

    commit(repo, {"train": {"steps": STEPS}}, "back to the usual training")
    cycle(repo, env, tmp_path / "ft.log", "--fine-tune")
    tuned = version_tags(repo, model, "4")
    assert tuned["parent"] == f"models:/{model}/{champion}" and " on eval set " in tuned["decision_reason"]
    assert run(["git", "status", "--porcelain"], repo) == ""
    assert f"fine_tune_from: models:/{model}/{champion}" in run(["git", "show", f"{model}-v4:params.yaml"], repo)
    assert promotion_source(repo).main_line  # the next cycle's model can be promoted


def sc09_archive(clips: list, tag: str) -> bytes:
    """An SC09-layout archive (``sc09/{train,valid,test}/<digit>_<id>_nohash_0.wav``) of the clips."""
    import soundfile as sf

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tf:
        for i, (name, wav, sr) in enumerate(clips):
            data = io.BytesIO()
            sf.write(data, wav, sr, format="WAV", subtype="PCM_16")
            split = ("test", "valid", "train", "train", "train")[i % 5]
            info = tarfile.TarInfo(f"sc09/{split}/{('zero', 'one')[i % 2]}_{tag}{name}_nohash_0.wav")
            info.size = data.tell()
            data.seek(0)
            tf.addfile(info, data)
    return buf.getvalue()


def test_a_replaced_url_archive_starts_a_cycle_an_unchanged_one_does_not(tmp_path: Path, lj_wavs: list[Path],
                                                                          server_env: dict[str, str]):
    model, env = "ganpipe-sc09-vocos", server_env
    clips = crops(lj_wavs)
    with FileServer() as http:
        url = http.add("/sc09.tar.gz", sc09_archive(clips[:10], "a"))
        repo = fresh_clone(tmp_path / "repo")
        commit(repo, {**CHEAP, "dataset": {"name": "sc09", "download": {"url_override": url, "retries": 0}}},
               "a URL corpus")
        cycle(repo, env, tmp_path / "c1.log")
        assert version_tags(repo, model, "1")["decision"] == "champion"

        t0 = time.perf_counter()
        idle = cycle(repo, env, tmp_path / "idle.log")
        print(f"no-op cycle (URL corpus, one HEAD): {time.perf_counter() - t0:.1f} s")
        assert "nothing changed, no new version" in idle

        http.add("/sc09.tar.gz", sc09_archive(clips[:12], "b"))  # replaced: new content, new ETag
        run(["dvc", "repro", "--single-item", "remote_validators"], repo, env)  # plain DVC notices it
        status = json.loads(run(["dvc", "status", "--json"], repo, env).strip().splitlines()[-1])
        assert "download" in status, status
        out = cycle(repo, env, tmp_path / "c2.log")
        assert "Running stage 'download'" in out and "Running stage 'train'" in out
        assert version_tags(repo, model, "2")["decision"] in ("champion", "candidate")
        assert run(["git", "status", "--porcelain"], repo) == ""
