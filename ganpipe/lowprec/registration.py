"""The int8 export inside a registered model (``registry.export_int8: true``; hooked into
ganpipe/packaging.py's ``package_model`` and ganpipe/model_registry.py).

Calibration mels, in this order (:func:`calibration_mels`): the project's training/validation
features (``data/features/index.csv``, splits ``train`` then ``valid``; the features stage's
un-normalised log-mels, made with the model's mel), else the waveforms of ``data/prepared`` (for an
imported model: the clips it is scored on) through the model's own mel. A meanvar model's mels are
normalised with its statistics, as the served model does before the generator.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("ganpipe.lowprec")
MAX_CLIPS = 8


def _features(root: Path, loaded: Any) -> tuple[list[np.ndarray], str] | None:
    import json

    import pandas as pd

    features = root / "data" / "features"
    index, config = features / "index.csv", features / "mel_config.json"
    if not index.is_file() or not config.is_file():
        return None
    try:
        from ganpipe.mel import MelConfig

        theirs = MelConfig.from_dict(json.loads(config.read_text()))
    except Exception:  # noqa: BLE001 - unreadable: not usable
        return None
    if theirs.diff(loaded.mel_config):
        return None  # made with another mel: not this model's input
    rows = pd.read_csv(index)
    rows = pd.concat([rows[rows["split"] == s] for s in ("train", "valid")]).head(MAX_CLIPS)
    mels = [np.load(features / m) for m in rows["mel"] if (features / m).is_file()]
    return (mels, f"{len(mels)} train/valid mels of data/features") if mels else None


def _prepared(root: Path, loaded: Any) -> tuple[list[np.ndarray], str] | None:
    import soundfile as sf
    import torch

    from ganpipe.mel import MelConfig, MelSpectrogram

    wavs = sorted((root / "data" / "prepared").rglob("*.wav"))[:MAX_CLIPS]
    if not wavs:
        return None
    cfg = loaded.mel_config
    mel = MelSpectrogram(MelConfig.from_dict({**cfg.to_dict(), "normalize": "none"}))
    mels = []
    for path in wavs:
        wav, sr = sf.read(path, dtype="float32", always_2d=True)
        if sr == cfg.sample_rate:
            with torch.inference_mode():
                mels.append(mel(torch.from_numpy(np.ascontiguousarray(wav.mean(1)))).numpy())
    return (mels, f"{len(mels)} clips of data/prepared through the model's mel") if mels else None


def calibration_mels(loaded: Any, project_dir: str | Path = ".") -> tuple[list[np.ndarray], str] | None:
    """(the model's input mels for int8 calibration, where they came from), or ``None``."""
    root = Path(project_dir)
    found = _features(root, loaded) or _prepared(root, loaded)
    if found is None:
        return None
    mels, source = found
    if loaded.mel_config.normalize == "meanvar":
        mean = np.asarray(loaded.mel_stats["mean"], dtype=np.float32).reshape(-1, 1)
        std = np.maximum(np.asarray(loaded.mel_stats["std"], dtype=np.float32).reshape(-1, 1), 1e-5)
        mels = [(m - mean) / std for m in mels]
    return mels, source


def add_int8_export(folder: Path, loaded: Any, project_dir: str | Path = ".") -> tuple[dict[str, str], dict[str, Any]]:
    """Write ``folder/generator.int8.onnx``; returns (artifacts to add, metadata to add)."""
    from ganpipe.lowprec import INT8_ARTIFACT
    from ganpipe.lowprec.int8 import export_int8
    from ganpipe.serving.backends import _draws_noise

    meta: dict[str, Any] = {"onnx_int8": False, "onnx_int8_skipped": None, "onnx_int8_info": None}
    b = loaded.bundle
    if b.kind != "vocoder" or _draws_noise(loaded.generator) or b.conditioning != "none":
        meta["onnx_int8_skipped"] = f"{b.variant}: int8 export is for deterministic, unconditioned vocoders"
        return {}, meta
    found = calibration_mels(loaded, project_dir)
    if found is None:
        meta["onnx_int8_skipped"] = "no calibration mels (data/features or data/prepared) in the project"
        log.warning("no int8 export in the model: %s", meta["onnx_int8_skipped"])
        return {}, meta
    mels, source = found
    path = Path(folder) / "generator.int8.onnx"
    try:
        _, info = export_int8(loaded.generator, mels, path)
    except Exception as exc:  # noqa: BLE001 - optional export; the reason is recorded
        meta["onnx_int8_skipped"] = f"int8 export failed: {type(exc).__name__}: {exc}"
        log.warning("no int8 export in the model: %s", meta["onnx_int8_skipped"])
        return {}, meta
    meta.update(onnx_int8=True, onnx_int8_info={**info, "calibration_source": source})
    return {INT8_ARTIFACT: str(path)}, meta
