"""The features stage on real speech: mels and statistics written, bad prepared files named, an empty train split refused."""

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from ganpipe.features import FeatureError, extract_features, load_stats
from ganpipe.mel import MelConfig, MelSpectrogram
from tests.support.training_data import make_prepared


def test_features_on_real_speech(tmp_path, lj_wavs):
    wavs = lj_wavs[:6]
    prepared = make_prepared(tmp_path, wavs, ["train"] * 4 + ["valid", "test"])
    out = tmp_path / "features"
    cfg = MelConfig()
    summary = extract_features(prepared / "manifest.csv", prepared, out, cfg, shard_size=2, workers=2)
    mel = MelSpectrogram(cfg)
    index = pd.read_csv(out / "index.csv")
    assert list(index["utt_id"]) == [w.stem for w in wavs]
    train = []
    for w, row in zip(wavs, index.itertuples()):
        y, _ = sf.read(w, dtype="float32")
        arr = np.load(out / row.mel)
        assert arr.dtype == np.float32 and arr.shape == (80, len(y) // 256) and row.frames == len(y) // 256
        np.testing.assert_allclose(arr, mel(torch.from_numpy(y)).numpy(), atol=1e-5)
        if row.split == "train":
            train.append(arr)
    frames = np.concatenate(train, axis=1)
    stats = load_stats(out)
    np.testing.assert_allclose(stats["mean"], frames.mean(axis=1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(stats["std"], frames.std(axis=1), rtol=1e-3, atol=1e-4)
    assert int(stats["count"]) == frames.shape[1]
    assert MelConfig.from_dict(json.loads((out / "mel_config.json").read_text())) == cfg
    assert summary["utterances"] == 6 and summary["per_split"] == {"test": 1, "train": 4, "valid": 1}
    assert not (out / ".mels.partial").exists()
    # a second run replaces everything (no stale files from the first)
    (out / "mels" / "stale.npy").write_bytes(b"x")
    extract_features(prepared / "manifest.csv", prepared, out, cfg, workers=1)
    assert not (out / "mels" / "stale.npy").exists()


def test_bad_prepared_files_name_the_file(tmp_path, lj_wavs):
    prepared = make_prepared(tmp_path, lj_wavs[:3], ["train"] * 3)
    y, sr = sf.read(lj_wavs[0], dtype="float32")
    sf.write(prepared / "wavs" / lj_wavs[1].name, y[:8000], 16000)  # wrong rate
    with pytest.raises(FeatureError, match=f"{lj_wavs[1].name}.*16000"):
        extract_features(prepared / "manifest.csv", prepared, tmp_path / "f", MelConfig(), workers=1)
    bad = y.copy()
    bad[100] = np.nan
    sf.write(prepared / "wavs" / lj_wavs[1].name, bad, sr, subtype="FLOAT")
    with pytest.raises(FeatureError, match=f"{lj_wavs[1].name}.*NaN"):
        extract_features(prepared / "manifest.csv", prepared, tmp_path / "f", MelConfig(), workers=1)
    (prepared / "wavs" / lj_wavs[1].name).write_bytes(b"not audio")
    with pytest.raises(FeatureError, match=f"{lj_wavs[1].name}.*unreadable"):
        extract_features(prepared / "manifest.csv", prepared, tmp_path / "f", MelConfig(), workers=1)
    assert not (tmp_path / "f" / "mels").exists()  # nothing published after a failure


def test_empty_train_split_is_an_error(tmp_path, lj_wavs):
    prepared = make_prepared(tmp_path, lj_wavs[:2], ["valid", "test"])
    with pytest.raises(FeatureError, match="train split is empty"):
        extract_features(prepared / "manifest.csv", prepared, tmp_path / "f", MelConfig(), workers=1)
