"""The champion re-scored on the new version's evaluation clips (cached per eval set), the floor,
manual approval with a challenger, and a fine-tune compared with its parent on the same data.

Tiny untrained generators (tests/support/registry_project.py) are scored for real by the evaluate
stage's code on 1-second crops of the LJSpeech sample; a project's data/prepared holds the crops
and a manifest whose test rows are the evaluation set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
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


def prepared(root: Path, lj_wavs: list[Path], test: int, total: int = 6) -> str:
    """data/prepared with ``total`` 1-second crops, the first ``test`` of them the test split;
    returns the eval-set fingerprint."""
    import soundfile as sf

    from ganpipe.promotion import eval_set_fingerprint

    out = root / "data" / "prepared"
    (out / "wavs").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, w in enumerate(lj_wavs[:total]):
        wav, sr = sf.read(w, dtype="float32")
        clip = wav[sr // 2: sr // 2 + sr]
        sf.write(out / "wavs" / w.name, clip, sr, subtype="PCM_16")
        rows.append({"utt_id": w.stem, "speaker": "LJ", "path": f"wavs/{w.name}", "duration": 1.0,
                     "sample_rate": sr, "num_samples": len(clip), "split": "test" if i < test else "train",
                     "source_path": str(w), "text": ""})
    pd.DataFrame(rows).to_csv(out / "manifest.csv", index=False)
    fingerprint = eval_set_fingerprint(out / "manifest.csv", "test", None)
    assert fingerprint is not None and fingerprint.startswith(f"{test}:")
    return fingerprint


def register(root: Path, params, seed: int, mcd: float, name: str = MODEL, parent: str | None = None,
             mel: MelConfig | None = None, **kw):
    from ganpipe.model_registry import register_generator

    gen = make_generator(root / f"g{seed}.pt", seed=seed, mel=mel)
    metrics = eval_json(root / f"eval{seed}.json", mcd=mcd)
    return register_generator(gen, metrics, params, root, model_name=name, parent=parent, **kw)


def tags(root: Path, version: str, name: str = MODEL) -> dict[str, str]:
    return dict(client_for(root).get_model_version(name, version).tags)


def project(tmp_path: Path, tmp_path_factory, registry: dict | None = None) -> tuple[Path, object]:
    root = tmp_path / "proj"
    return root, make_project(root, mlflow_template(tmp_path_factory), {"promote_from": "any", **(registry or {})})


def test_growth_rescores_the_champion_once_per_eval_set_and_decides_on_equal_data(tmp_path, tmp_path_factory,
                                                                                  lj_wavs, monkeypatch):
    import ganpipe.rescoring as R

    root, params = project(tmp_path, tmp_path_factory)
    prepared(root, lj_wavs, test=2)
    v1 = register(root, params, 1, mcd=7.0)
    assert v1.decision == "champion" and v1.decision_reason == "no champion yet"

    grown = prepared(root, lj_wavs, test=3)  # the corpus grew: a new evaluation set
    key = R.tag_key(grown)
    v2 = register(root, params, 2, mcd=1000.0)  # worse than anything: champion kept, on equal data
    champion_tags = tags(root, "1")
    cached = json.loads(champion_tags[key])
    rescored = cached["metrics"]["mcd"]
    assert rescored != 7.0 and cached["seconds"] > 0
    assert v2.decision == "candidate" and v2.comparable is True
    assert v2.champion_before_value == pytest.approx(rescored)
    assert v2.decision_reason.startswith(f"mcd 1000 vs champion v1 {rescored:.4g} on eval set {grown[:10]}…: "
                                         "champion kept")
    assert "re-scored" in tags(root, "2")["rescoring"]

    # a second cycle on the same set reads the cached tag: nothing is scored
    def no_scoring(*a, **k):
        raise AssertionError("re-scored although cached")

    monkeypatch.setattr(R, "score_file", no_scoring)
    v3 = register(root, params, 3, mcd=rescored - 0.5)
    assert v3.decision == "champion" and ": promoted (lower is better" in v3.decision_reason
    assert f"vs champion v1 {rescored:.4g} on eval set {grown[:10]}…" in v3.decision_reason
    assert "cached" in tags(root, "3")["rescoring"] and tags(root, "1")[key] == champion_tags[key]
    assert aliases(root) == {"candidate": "3", "champion": "3"}


def test_a_different_mel_is_compared_on_audio_a_different_sample_rate_is_not(tmp_path, tmp_path_factory, lj_wavs):
    root, params = project(tmp_path, tmp_path_factory)
    prepared(root, lj_wavs, test=2)
    register(root, params, 1, mcd=7.0, mel=MelConfig(fmax=7600.0))
    v2 = register(root, params, 2, mcd=0.1)  # another mel, same clips: each model's numbers with its own mel
    assert v2.comparable is True and v2.decision == "champion" and "vs champion v1" in v2.decision_reason
    prepared(root, lj_wavs, test=3)
    v3 = register(root, params, 3, mcd=0.01, mel=MelConfig(sample_rate=16000, fmax=8000.0))
    assert v3.decision == "candidate" and v3.comparable is False
    assert v3.decision_reason.startswith("not comparable with champion v2: different sample rates "
                                         "(16000 Hz vs 22050 Hz), which re-scoring cannot equalise: champion kept")
    assert "rescoring" not in tags(root, "3")


def test_min_quality_is_a_floor_even_without_a_champion(tmp_path, tmp_path_factory, lj_wavs):
    root, params = project(tmp_path, tmp_path_factory, {"min_quality": 5.0})
    prepared(root, lj_wavs, test=2)
    v1 = register(root, params, 1, mcd=6.0)
    assert v1.decision == "candidate" and v1.champion_version is None
    assert v1.decision_reason == "mcd 6 worse than registry.min_quality 5: not promoted (no champion yet)"
    assert register(root, params, 2, mcd=4.0).decision == "champion"


def test_manual_approval_makes_a_challenger_and_promote_makes_it_champion(tmp_path, tmp_path_factory, lj_wavs):
    from ganpipe.guards import promote_by_hand

    root, params = project(tmp_path, tmp_path_factory, {"approval": "manual"})
    prepared(root, lj_wavs, test=2)
    v1 = register(root, params, 1, mcd=6.0)
    assert v1.decision == "challenger" and aliases(root) == {"candidate": "1", "challenger": "1"}
    assert "awaiting approval (registry.approval: manual): `ganpipe promote" in v1.decision_reason
    promote_by_hand(params, root, MODEL, "1", "listened to it", "qa")
    assert aliases(root) == {"candidate": "1", "champion": "1"}
    t = tags(root, "1")
    assert (t["decision"], t["decision_reason"], t["approved_by"]) == ("champion", "promoted by hand: listened to it",
                                                                       "qa")


def test_a_fine_tune_worse_than_its_parent_stays_candidate_under_any_name(tmp_path, tmp_path_factory, lj_wavs):
    root, params = project(tmp_path, tmp_path_factory)
    prepared(root, lj_wavs, test=2)
    parent = register(root, params, 1, mcd=7.0)
    # a fine-tune registered under a new name (no champion there): still compared with its parent
    # (evaluated on the same clips: its own numbers, nothing re-scored)
    worse = register(root, params, 2, mcd=9.0, name="ft", parent=f"models:/{MODEL}@champion")
    assert worse.decision == "candidate" and worse.champion_version is None
    assert worse.decision_reason.startswith(f"fine-tune worse than its parent {MODEL} v1: mcd 9 vs 7 on eval set ")
    assert tags(root, "1", "ft")["parent"] == f"models:/{MODEL}/1" and parent.version == "1"
    better = register(root, params, 3, mcd=6.5, name="ft", parent=f"models:/{MODEL}/1")
    assert better.decision == "champion"
    # a file parent (an imported model): its sha256 is recorded and it is scored on the same clips
    file_parent = make_generator(root / "imported.pt", seed=11)
    ft = register(root, params, 4, mcd=1000.0, name="ft2", parent=str(file_parent))
    t = tags(root, "1", "ft2")
    assert t["parent_sha256"] and ft.decision == "candidate"
    assert ft.decision_reason.startswith(f"fine-tune worse than its parent {file_parent}: mcd 1000 vs ")
