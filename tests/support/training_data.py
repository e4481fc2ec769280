"""Helpers of the training tests. The fixtures ``demo_corpus`` and ``lj_corpus`` are defined in
tests/conftest.py and built here:

* ``demo_corpus`` (session): the synthetic demo corpus (2 speakers x 4 utterances, ~1 s each) run
  through the real prepare and features stages: ``<root>/data/prepared`` + ``<root>/data/features``
  (the layout TrainPaths() expects relative to a project directory).
* ``lj_corpus`` (session): 24 real LJSpeech clips (20 train / 4 valid) through the features stage.
* :func:`tiny_params` builds validated :class:`~ganpipe.config.Params` for a few fast CPU steps.
* :func:`train_paths` puts every training output under a test's tmp dir.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ganpipe.config import AudioParams, DemoParams, Params, SplitParams, parse_params
from ganpipe.models import TINY_OVERRIDES


@dataclass(frozen=True)
class PreparedCorpus:
    root: Path  # a project dir: root/data/prepared, root/data/features

    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"

    @property
    def features(self) -> Path:
        return self.root / "data" / "features"

    def install(self, project: Path) -> Path:
        """Copy data/prepared + data/features into ``project`` (for cwd-relative TrainPaths())."""
        for sub in ("prepared", "features"):
            shutil.copytree(self.root / "data" / sub, project / "data" / sub)
        return project


def _features(prepared: Path, features: Path, params: Params) -> None:
    from ganpipe.features import extract_features

    extract_features(prepared / "manifest.csv", prepared, features, params.mel_config(), shard_size=64,
                     device="cpu", workers=1)


def build_demo(tmp_path_factory: pytest.TempPathFactory) -> PreparedCorpus:
    from ganpipe.datasets import demo
    from ganpipe.datasets.layouts import discover
    from ganpipe.prepare import prepare_corpus

    root = tmp_path_factory.mktemp("demo_project")
    raw = root / "raw"
    demo.generate(raw, DemoParams(n_speakers=2, utterances_per_speaker=4, min_seconds=0.8, max_seconds=1.2))
    utts = discover("demo", raw)
    corpus = PreparedCorpus(root)
    prepare_corpus(utts, corpus.prepared, AudioParams(), SplitParams(method="seeded", valid_fraction=0.25, test_fraction=0.0),
                   workers=1, progress=False)
    manifest = pd.read_csv(corpus.prepared / "manifest.csv")
    assert set(manifest["split"]) == {"train", "valid"} and manifest["speaker"].nunique() == 2
    _features(corpus.prepared, corpus.features, parse_params({}))
    return corpus


def build_lj(tmp_path_factory: pytest.TempPathFactory, lj_wavs: list[Path]) -> PreparedCorpus:
    """20 train + 4 valid real clips (copied as they are: 22.05 kHz mono PCM)."""
    if len(lj_wavs) < 24:
        from tests.conftest import missing_shared

        missing_shared(f"need 24 LJSpeech clips in ../shared, found {len(lj_wavs)}")
    root = tmp_path_factory.mktemp("lj_project")
    corpus = PreparedCorpus(root)
    prepared = corpus.prepared
    (prepared / "wavs").mkdir(parents=True)
    rows = []
    for i, w in enumerate(lj_wavs[:24]):
        shutil.copy(w, prepared / "wavs" / w.name)
        rows.append({"utt_id": w.stem, "speaker": "LJ", "path": f"wavs/{w.name}",
                     "split": "train" if i < 20 else "valid"})
    pd.DataFrame(rows).to_csv(prepared / "manifest.csv", index=False)
    _features(prepared, corpus.features, parse_params({}))
    return corpus


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in extra.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def tiny_params_dict(variant: str = "hifigan_v3", **sections: dict[str, Any]) -> dict[str, Any]:
    """A params mapping for a few fast CPU steps of a tiny ``variant`` (tracking off)."""
    data: dict[str, Any] = {
        "model": {"variant": variant, "overrides": dict(TINY_OVERRIDES[variant])},
        "train": {"steps": 4, "batch_size": 2, "segment_samples": 2048, "num_workers": 0, "threads": 1,
                  "device": "cpu", "log_every": 1, "validate_every": 1000, "checkpoint_every": 1000,
                  "samples_to_log": 1},
        "tracking": {"enabled": False},
    }
    return deep_merge(data, sections)


def tiny_params(variant: str = "hifigan_v3", **sections: dict[str, Any]) -> Params:
    return parse_params(tiny_params_dict(variant, **sections))


def train_paths(corpus: PreparedCorpus, out: Path):
    from ganpipe.training.trainer import TrainPaths

    return TrainPaths(prepared=corpus.prepared, features=corpus.features, checkpoints=out / "ck",
                      generator=out / "g.pt", metrics=out / "m.json", curve=out / "c.csv")


def make_prepared(tmp_path, wavs, splits):
    prepared = tmp_path / "prepared"
    (prepared / "wavs").mkdir(parents=True)
    rows = []
    for w, split in zip(wavs, splits):
        shutil.copy(w, prepared / "wavs" / w.name)
        rows.append({"utt_id": w.stem, "speaker": "LJ", "path": f"wavs/{w.name}", "split": split})
    pd.DataFrame(rows).to_csv(prepared / "manifest.csv", index=False)
    return prepared
