"""A corpus whose job lists are larger than Prefect's flow-parameter limit runs through the real
download(local) -> prepare -> features flows with Prefect's default settings (issue 16: the shard
subflows used to receive every utterance as a parameter and the server answered 422 above 512 KiB)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.conftest import write_params

pytestmark = pytest.mark.slow

N_CLIPS = 1600
CLIP_SECONDS = 0.6
LONG = "x" * 90  # long folder and file names make each job's record large, so few short clips suffice


def build_corpus(root: Path, lj_wavs: list[Path], n: int) -> list[str]:
    """``n`` distinct clips of real speech (cuts of the LJSpeech sample at different offsets,
    each mixed with a cut of another clip), 4 speaker folders; returns the expected utt ids."""
    clips = [sf.read(str(p), dtype="float32")[0] for p in lj_wavs]
    sr = sf.info(str(lj_wavs[0])).samplerate
    size = int(CLIP_SECONDS * sr)
    ids = []
    for i in range(n):
        a, b = clips[i % len(clips)], clips[(i * 7 + 3) % len(clips)]
        off_a = sr // 4 + (i // len(clips)) * 997 % max(1, a.size - size - sr // 2)
        off_b = sr // 4 + (i * 131) % max(1, b.size - size - sr // 2)
        x = 0.8 * a[off_a:off_a + size] + 0.2 * b[off_b:off_b + size]
        speaker = f"spk{i % 4}_{LONG}"
        name = f"utt{i:05d}_{LONG}"
        path = root / speaker / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), x, sr, subtype="PCM_16")
        ids.append(f"{speaker}__{name}")
    return sorted(ids)


def test_corpus_larger_than_the_parameter_limit_runs_through_prefect(tmp_path, lj_wavs, prefect_harness):
    from prefect.settings import PREFECT_SERVER_API_MAX_PARAMETER_SIZE

    from flows.download import download_flow
    from flows.features import features_flow
    from flows.prepare import prepare_flow, source_utterances
    from ganpipe.features import plan_jobs, read_manifest

    limit = PREFECT_SERVER_API_MAX_PARAMETER_SIZE.value()
    corpus = tmp_path / f"corpus_{LONG}"
    expected = build_corpus(corpus, lj_wavs, N_CLIPS)
    params = str(write_params(tmp_path / "params.yaml", {
        "dataset": {"name": "local", "local_dir": str(corpus), "raw_dir": str(tmp_path / "raw")},
        "audio": {"min_seconds": 0.1},
        "features": {"task_runner": "threads", "workers": 2}}))

    download_flow(params_path=params, cache_dir=str(tmp_path / "cache"))
    utts = source_utterances(tmp_path / "raw", "local", True)
    # The job lists the flows used to pass as parameters are over the server's limit.
    assert len(json.dumps([dataclasses.asdict(u) for u in utts])) > limit

    prepared = tmp_path / "prepared"
    psum = prepare_flow(params_path=params, out_dir=str(prepared), metrics_path=str(tmp_path / "m1.json"))
    assert psum["skipped"]["total"] == 0, pd.read_csv(prepared / "skipped.csv").head()
    manifest = read_manifest(prepared / "manifest.csv")
    assert sorted(manifest["utt_id"]) == expected
    assert all((prepared / p).is_file() for p in manifest["path"])
    assert len(json.dumps([dataclasses.asdict(j) for j in plan_jobs(manifest, prepared, tmp_path / "f")])) > limit

    features = tmp_path / "features"
    fsum = features_flow(params_path=params, prepared_dir=str(prepared), out_dir=str(features),
                         metrics_path=str(tmp_path / "m2.json"))
    assert fsum["utterances"] == N_CLIPS
    index = pd.read_csv(features / "index.csv", keep_default_na=False, dtype={"utt_id": str})
    assert sorted(index["utt_id"]) == expected
    assert sorted(p.stem for p in (features / "mels").glob("*.npy")) == expected
    row = index.iloc[-1]
    mel = np.load(features / row["mel"])
    assert mel.shape[1] == row["frames"] > 0 and np.isfinite(mel).all()


def test_local_corpus_identity_follows_content(tmp_path, lj_wavs, prefect_harness):
    """An in-place edit that keeps a wav's size changes data/raw (so DVC re-runs prepare); an
    untouched corpus gives byte-identical data/raw (so nothing downstream re-runs)."""
    from flows.download import download_flow

    corpus = tmp_path / "corpus"
    build_corpus(corpus, lj_wavs, 3)
    params = str(write_params(tmp_path / "params.yaml", {
        "dataset": {"name": "local", "local_dir": str(corpus), "raw_dir": str(tmp_path / "raw")}}))
    raw = tmp_path / "raw" / "local"

    def run() -> tuple[bytes, list[str]]:
        download_flow(params_path=params, cache_dir=str(tmp_path / "cache"),
                      hash_cache=str(tmp_path / "cache" / "hashes.json"))
        return (raw / "sources.json").read_bytes(), (raw / "files.tsv").read_text().splitlines()

    sources, listing = run()
    assert len(listing) == 4  # header + 3 files
    assert run() == (sources, listing)
    wav = sorted(corpus.rglob("*.wav"))[1]
    size = wav.stat().st_size
    with sf.SoundFile(str(wav), "r+") as fh:
        fh.seek(0)
        fh.write(np.zeros(200, dtype=np.int16))
    assert wav.stat().st_size == size
    sources2, listing2 = run()
    assert sources2 != sources
    assert [a == b for a, b in zip(listing, listing2)] == [True, True, False, True]
