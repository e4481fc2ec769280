"""End to end, music: the demo_music WaveGAN preset through `dvc repro` on a fresh copy of the repository
(a tiny version of it: 4 short pieces, a tiny WaveGAN, 2 steps), then `ganpipe synthesize --n 4` from the
registry. The full preset's numbers are in benchmarks/RESULTS.md."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from tests.support.fresh_clone import edit_params, fresh_clone, run

pytestmark = pytest.mark.slow

TINY_MUSIC = {
    "dataset": {"demo_music": {"pieces": 4, "min_seconds": 4.0, "max_seconds": 5.0}},
    "model": {"overrides": {"model_size": 2}},
    "train": {"steps": 2, "batch_size": 2, "checkpoint_every": 2, "validate_every": 2, "log_every": 1,
              "num_workers": 0, "threads": 1},
    "split": {"valid_fraction": 0.25, "test_fraction": 0.25},
    # every test clip (the tiny pipeline of _fresh_clone keeps one utterance: one clip has no covariance)
    "evaluation": {"max_utterances": None, "generated_clips": 4, "ndb_bins": 2, "samples_to_save": 1},
    "registry": {"export_onnx": False},
}


def test_music_preset_end_to_end(tmp_path: Path, prefect_env: dict[str, str]):
    repo, env = fresh_clone(tmp_path / "repo"), prefect_env
    run(["ganpipe", "preset", "apply", "configs/demo_music_wavegan.yaml"], repo, env)
    edit_params(repo, TINY_MUSIC)
    run(["git", "commit", "-qam", "tiny music preset"], repo, env)
    out = run(["dvc", "repro"], repo, env)
    for stage in ("download", "prepare", "features", "train", "evaluate", "register"):
        assert f"Running stage '{stage}'" in out

    # the pieces were cut into clips of <= 2 s, and each piece's clips share one split
    manifest = pd.read_csv(repo / "data/prepared/manifest.csv", keep_default_na=False)
    assert len(list((repo / "data/raw/demo_music/piano").glob("piece_*.wav"))) == 4
    assert manifest["utt_id"].str.fullmatch(r"piano__piece_\d{3}__c\d{4}").all()
    longest_clip = manifest["duration"].max()  # audio seconds
    assert len(manifest) > 4 and longest_clip <= 2.0 and manifest["sample_rate"].eq(16000).all()
    piece = manifest["utt_id"].str.rsplit("__", n=1).str[0]
    assert manifest.groupby(piece)["split"].nunique().eq(1).all()
    assert set(manifest["split"]) == {"train", "valid", "test"}
    assert json.loads((repo / "data/prepared/summary.json").read_text())["clips"]["pieces"] == 4

    ev = json.loads((repo / "metrics/eval.json").read_text())
    assert ev["variant"] == "wavegan" and ev["frechet_mel"] > 0 and 0 <= ev["ndb_fraction"] <= 1
    reg = json.loads((repo / "metrics/register.json").read_text())
    assert reg["model_name"] == "ganpipe-demo_music-wavegan" and reg["decision"] == "champion"

    run(["ganpipe", "synthesize", "-m", "models:/ganpipe-demo_music-wavegan@champion", "--n", "4",
         "-o", str(repo / "gen")], repo, env)
    clips = sorted((repo / "gen").glob("*.wav"))
    assert len(clips) == 4
    info = sf.info(clips[0])
    assert info.samplerate == 16000 and info.frames == 16384
