"""The retrain loop on a growing corpus, for real: a `local` corpus grows 16 -> 32 -> 48 clips on a
fresh copy of the repository with a tiny pipeline and a real ``prefect server``; every earlier test
clip stays in test, each cycle re-scores the champion on the current evaluation set and decides by
the numbers (never "not comparable", never `--promote`), an unchanged cycle ends in seconds with
"nothing changed, no new version", and a `--fine-tune` cycle leaves `git status` clean.

The clips are 1.5-second crops of the LJSpeech sample (two per file, so 48 from its 32 files),
written to a folder outside the repository (the corpus `dataset.local_dir` points at).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.support.fresh_clone import clean_env, edit_params, fresh_clone, run
from tests.support.prefect_server import start_server, stop, wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.network, pytest.mark.timeout(3000)]  # five real cycles

MODEL = "ganpipe-local-vocos"
GIT = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]


def crops(lj_wavs: list[Path]) -> list[tuple[str, object, int]]:
    import soundfile as sf

    out = []
    for w in lj_wavs[:24]:
        wav, sr = sf.read(w, dtype="float32")
        n = int(1.5 * sr)
        out += [(f"{w.stem}a", wav[:n], sr), (f"{w.stem}b", wav[n:2 * n], sr)]
    return out


def grow(corpus: Path, clips: list, n: int) -> None:
    import soundfile as sf

    (corpus / "LJ").mkdir(parents=True, exist_ok=True)
    for name, wav, sr in clips[:n]:
        if not (corpus / "LJ" / f"{name}.wav").exists():
            sf.write(corpus / "LJ" / f"{name}.wav", wav, sr, subtype="PCM_16")


def cycle(repo: Path, env: dict, log: Path, *flags: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "flows.retrain", "--project-dir", str(repo), "--no-push", *flags],
                          cwd=repo, env=env, capture_output=True, text=True, timeout=900)
    log.write_text(proc.stdout + proc.stderr)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return proc.stdout + proc.stderr


def splits_of(repo: Path) -> dict[str, str]:
    m = pd.read_csv(repo / "data" / "prepared" / "manifest.csv")
    return dict(zip(m.utt_id, m.split))


def version_tags(repo: Path, version: str) -> dict[str, str]:
    from mlflow import MlflowClient

    uri = f"sqlite:///{repo / '.mlflow' / 'mlflow.db'}"
    return dict(MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version(MODEL, version).tags)


def test_a_growing_corpus_keeps_its_test_set_and_the_champion_is_rescored(tmp_path: Path, lj_wavs: list[Path]):
    env = clean_env()
    server, api, server_log = start_server(tmp_path, env)
    try:
        clips = crops(lj_wavs)
        corpus = tmp_path / "corpus"
        grow(corpus, clips, 16)
        repo = fresh_clone(tmp_path / "repo")
        edit_params(repo, {"dataset": {"name": "local", "local_dir": str(corpus)},
                           "split": {"test_fraction": 0.2, "valid_fraction": 0.1},
                           "evaluation": {"max_utterances": None, "griffin_lim_iterations": 0},
                           "registry": {"export_onnx": False}})
        run([*GIT, "commit", "-qam", "a local corpus"], repo)
        wait_healthy(server, api, server_log)

        cycle(repo, env, tmp_path / "c1.log")
        v1 = version_tags(repo, "1")
        assert v1["decision"] == "champion"
        seen = {u for u, s in splits_of(repo).items() if s == "test"}
        prepared = len(splits_of(repo))  # crops too short once trimmed are skipped by the prepare stage
        assert seen and run(["git", "status", "--porcelain"], repo) == ""

        rescored = 0
        for n, version in ((32, "2"), (48, "3")):
            grow(corpus, clips, n)
            cycle(repo, env, tmp_path / f"c{version}.log")
            split = splits_of(repo)
            test = {u for u, s in split.items() if s == "test"}
            assert seen <= test and prepared < len(split) <= n  # every earlier test clip is still test
            tags = version_tags(repo, version)
            reason = tags["decision_reason"]
            assert "not comparable" not in reason and " on eval set " in reason and "vs champion v" in reason
            if test != seen:  # a new evaluation set: the champion is scored on it (a growth can leave it as it was)
                assert "re-scored" in tags.get("rescoring", "") or "cached" in tags.get("rescoring", ""), tags
                rescored += 1
            seen, prepared = test, len(split)
        assert rescored, "no growth step changed the evaluation set: the re-scoring path was not exercised"

        t0 = time.perf_counter()
        idle = cycle(repo, env, tmp_path / "idle.log")
        print(f"no-op cycle: {time.perf_counter() - t0:.1f} s")  # reported, not asserted (shared machines)
        assert "nothing changed, no new version" in idle

        cycle(repo, env, tmp_path / "ft.log", "--fine-tune")
        assert run(["git", "status", "--porcelain"], repo) == ""
        assert version_tags(repo, "4")["parent"].startswith(f"models:/{MODEL}/")
    finally:
        stop(server)
