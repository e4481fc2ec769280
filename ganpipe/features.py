"""Features stage: log-mel spectrograms of the prepared corpus with the project's one mel.

Outputs (``out_dir``):
    mels/<utt_id>.npy   float32 ``(n_mels, num_samples // hop_length)``, *un-normalised* log-mel;
                        frame ``i`` belongs to audio samples ``[i*hop, (i+1)*hop)`` (ganpipe.mel).
    stats.npz           per-bin ``mean``, ``std`` and ``count`` over the *train* split frames, for
                        mean/variance normalisation (applied by consumers via MelSpectrogram(stats));
                        with ``mel.preset: from_model``, the starting model's ``mean`` and ``std``
                        (``count``: still the train frames), so the features are normalised as its
                        training data was.
    mel_config.json     the resolved MelConfig; it travels with every checkpoint and model.
    index.csv           utt_id, speaker, split, frames, num_samples, mel (path relative to out_dir).
    summary.json        counts, hours of audio, frames, the mel and where the statistics came from.

:class:`FeatureMel` is what the stage computes with: params.yaml's mel and the train split's
statistics, or (``mel.preset: from_model``) the starting model's mel and statistics. The validate
stage writes it (``data/mel.json``, :meth:`FeatureMel.write`), and the features stage depends on
that file, so a different starting model re-runs the features exactly when its mel or statistics differ.

Work is split into shards (lists of utterances). :func:`extract_shard` is a plain function that a
Prefect task (threads or Dask) or a plain loop can run; inside a shard, utterances are grouped by
length and computed in batched STFTs on the CPU or GPU.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
import torch

from ganpipe.atomic import atomic_path, write_json, write_text
from ganpipe.devices import resolve_device
from ganpipe.manifest import read_manifest
from ganpipe.mel import MelConfig, MelSpectrogram

MELS_DIR = "mels"
# Shards write here; finalize() renames it to MELS_DIR, so a complete mels/ is never half-written.
PARTIAL_DIR = ".mels.partial"


class FeatureError(ValueError):
    """A prepared file that cannot be turned into features (named in the message)."""


@dataclass(frozen=True)
class FeatureMel:
    """The mel of the features and their statistics: ``stats`` ``None`` means the train split's."""

    config: MelConfig
    stats: dict[str, np.ndarray] | None = None
    origin: str = "params.yaml"  # or "train.fine_tune_from" (mel.preset: from_model)

    def to_dict(self) -> dict[str, Any]:
        stats = None if self.stats is None else {
            k: [float(v) for v in np.asarray(self.stats[k], dtype=np.float32)] for k in ("mean", "std")}
        return {"from": self.origin, "mel": self.config.to_dict(), "stats": stats}

    def write(self, path: str | Path) -> None:
        import json

        write_text(path, json.dumps(self.to_dict(), sort_keys=True, indent=1) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> FeatureMel:
        import json

        path = Path(path)
        if not path.is_file():
            raise FeatureError(f"{path} not found: the validate stage writes it "
                               f"(python -m ganpipe.cli validate --out data/params.valid --mel-out {path})")
        try:
            data = json.loads(path.read_text())
            stats = data["stats"]
            return cls(MelConfig.from_dict(data["mel"]),
                       None if stats is None else {k: np.asarray(stats[k], dtype=np.float32) for k in ("mean", "std")},
                       str(data["from"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise FeatureError(f"{path}: not a features mel file ({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class FeatureJob:
    utt_id: str
    wav_path: str
    out_path: str
    split: str


@dataclass(frozen=True)
class ShardResult:
    """Per-utterance frame counts and, summed over the shard's *train* utterances, per-bin sums."""

    frames: dict[str, int]
    num_samples: dict[str, int]
    bin_sum: np.ndarray
    bin_sumsq: np.ndarray
    train_frames: int




def plan_jobs(manifest: pd.DataFrame, prepared_dir: str | Path, out_dir: str | Path) -> list[FeatureJob]:
    """One job per manifest row, with absolute paths: a job may run in another process whose working
    directory is not the project's (a ``dask worker`` started anywhere on a shared filesystem)."""
    prepared_dir, out_dir = Path(prepared_dir).absolute(), Path(out_dir).absolute()
    return [
        FeatureJob(utt_id=row.utt_id, wav_path=str(prepared_dir / row.path),
                   out_path=str(out_dir / PARTIAL_DIR / f"{row.utt_id}.npy"), split=row.split)
        for row in manifest.itertuples(index=False)
    ]


def start_output(out_dir: str | Path) -> None:
    """Clear what a previous (possibly killed) run left and create the staging folder."""
    out_dir = Path(out_dir)
    for stale in (out_dir / PARTIAL_DIR, out_dir / MELS_DIR):
        if stale.exists():
            shutil.rmtree(stale)
    (out_dir / PARTIAL_DIR).mkdir(parents=True)


def shard(jobs: list[FeatureJob], shard_size: int) -> list[list[FeatureJob]]:
    return [jobs[i:i + shard_size] for i in range(0, len(jobs), shard_size)]


def _load(job: FeatureJob, sample_rate: int) -> np.ndarray:
    try:
        with sf.SoundFile(job.wav_path) as fh:
            sr = fh.samplerate
            if fh.subtype == "PCM_16":
                # int16 + one numpy scale is ~4x cheaper than libsndfile's float conversion and gives
                # the same values (both divide by 32768)
                wav = fh.read(dtype="int16", always_2d=False).astype(np.float32) * np.float32(1 / 32768)
            else:
                wav = fh.read(dtype="float32", always_2d=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is reported by name
        raise FeatureError(f"{job.wav_path}: unreadable ({type(exc).__name__}: {exc})") from None
    if sr != sample_rate:
        raise FeatureError(f"{job.wav_path}: sample rate {sr} Hz, but mel sample_rate is {sample_rate} Hz "
                           "(re-run the prepare stage with audio.sample_rate matching)")
    if wav.ndim != 1:
        raise FeatureError(f"{job.wav_path}: expected mono audio, got {wav.shape[1]} channels")
    if not np.isfinite(wav).all():
        raise FeatureError(f"{job.wav_path}: contains NaN or infinite samples")
    return wav


def _batches(lengths: list[int], max_samples: int) -> Iterable[list[int]]:
    """Indices grouped by similar length so that a batch holds at most ``max_samples`` (padded)."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batch: list[int] = []
    for i in order:
        if batch and lengths[i] * (len(batch) + 1) > max_samples:
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


_MEL_CACHE: dict[tuple[str, str], MelSpectrogram] = {}


def _mel_module(config: MelConfig, device: torch.device) -> MelSpectrogram:
    key = (config.to_json(), str(device))
    if key not in _MEL_CACHE:
        _MEL_CACHE[key] = MelSpectrogram(config).to(device)
    return _MEL_CACHE[key]


def extract_shard(jobs: list[FeatureJob], config: dict[str, Any], device: str = "auto",
                  batch_seconds: float = 60.0, threads: int = 2) -> ShardResult:
    """Compute and write the log-mels of one shard; return frame counts and train-split sums.

    CPU: ``threads`` threads each run read -> mel -> write for one utterance at a time (torch and
    libsndfile release the GIL, so this uses the cores and overlaps I/O with compute).
    GPU: files are read by the threads and grouped by length into batched STFTs.
    """
    mel_config = MelConfig.from_dict(config)
    dev = resolve_device(device, "features.device")
    mel = _mel_module(mel_config, dev)
    hop = mel_config.hop_length

    def finish(job: FeatureJob, m: torch.Tensor) -> np.ndarray:
        arr = m.float().cpu().numpy()
        if arr.shape[1] == 0:
            raise FeatureError(f"{job.wav_path}: shorter than one hop ({hop} samples)")
        _save_npy(job.out_path, arr)
        return arr

    results: list[tuple[FeatureJob, np.ndarray, int]] = []
    with ThreadPoolExecutor(max_workers=threads) as pool:
        if dev.type == "cpu":
            def one(job: FeatureJob) -> tuple[FeatureJob, np.ndarray, int]:
                wav = _load(job, mel_config.sample_rate)
                return job, finish(job, mel.batch([torch.from_numpy(wav)])[0]), len(wav)

            results = list(pool.map(one, jobs))
        else:
            wavs = list(pool.map(lambda j: _load(j, mel_config.sample_rate), jobs))
            max_samples = max(int(batch_seconds * mel_config.sample_rate), 1)
            for idx in _batches([len(w) for w in wavs], max_samples):
                outs = mel.batch([torch.from_numpy(wavs[i]) for i in idx])
                results += list(pool.map(lambda im: (jobs[im[0]], finish(jobs[im[0]], im[1]), len(wavs[im[0]])),
                                         zip(idx, outs)))

    bin_sum = np.zeros(mel_config.n_mels, dtype=np.float64)
    bin_sumsq = np.zeros(mel_config.n_mels, dtype=np.float64)
    train_frames = 0
    for job, arr, _ in results:
        if job.split == "train":
            a64 = arr.astype(np.float64)
            bin_sum += a64.sum(axis=1)
            bin_sumsq += np.square(a64).sum(axis=1)
            train_frames += arr.shape[1]
    return ShardResult(frames={j.utt_id: a.shape[1] for j, a, _ in results},
                       num_samples={j.utt_id: n for j, _, n in results},
                       bin_sum=bin_sum, bin_sumsq=bin_sumsq, train_frames=train_frames)


def _save_npy(path: str, arr: np.ndarray) -> None:
    # Written in place inside the staging folder; the folder as a whole is published atomically.
    with open(path, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)


def finalize(results: list[ShardResult], manifest: pd.DataFrame, out_dir: str | Path,
             config: MelConfig, stats: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """Aggregate shard results: write stats.npz, mel_config.json, index.csv and summary.json.
    ``stats`` (``mean``, ``std``): written instead of the train split's (a starting model's)."""
    out_dir = Path(out_dir)
    merged = _merge(results, config.n_mels)
    count = merged.train_frames
    if count == 0:
        raise FeatureError("no training frames: the train split is empty (check split fractions)")
    staged = out_dir / PARTIAL_DIR
    if sorted(merged.frames) != sorted(p.stem for p in staged.glob("*.npy")):
        raise FeatureError(f"{staged}: staged features do not match the shard results")
    mean, std = _statistics(merged, config.n_mels, stats)
    with atomic_path(out_dir / "stats.npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, mean=mean.astype(np.float32), std=std.astype(np.float32), count=np.int64(count))
    write_text(out_dir / "mel_config.json", config.to_json() + "\n")
    index = _index(manifest, merged)
    os.replace(staged, out_dir / MELS_DIR)
    with atomic_path(out_dir / "index.csv") as tmp:
        index.to_csv(tmp, index=False)
    total_samples = int(index["num_samples"].sum())
    summary = {
        "utterances": int(len(index)),
        "frames": int(index["frames"].sum()),
        "train_frames": int(count),
        "hours": round(total_samples / config.sample_rate / 3600.0, 4),
        "per_split": {k: int(v) for k, v in index["split"].value_counts().sort_index().items()},
        "mel": config.to_dict(),
        "statistics": "train split" if stats is None else "the starting model's (mel.preset: from_model)",
    }
    write_json(out_dir / "summary.json", summary)
    return summary


def _merge(results: list[ShardResult], n_mels: int) -> ShardResult:
    """The shards' results as one (per-bin sums added in shard order)."""
    frames: dict[str, int] = {}
    n_samples: dict[str, int] = {}
    bin_sum = np.zeros(n_mels)
    bin_sumsq = np.zeros(n_mels)
    count = 0
    for r in results:
        frames.update(r.frames)
        n_samples.update(r.num_samples)
        bin_sum += r.bin_sum
        bin_sumsq += r.bin_sumsq
        count += r.train_frames
    return ShardResult(frames=frames, num_samples=n_samples, bin_sum=bin_sum, bin_sumsq=bin_sumsq,
                       train_frames=count)


def _statistics(merged: ShardResult, n_mels: int,
                stats: dict[str, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-bin ``(mean, std)``: the train frames' (``stats`` None) or the given ones, checked."""
    if stats is None:
        mean = merged.bin_sum / merged.train_frames
        std = np.sqrt(np.maximum(merged.bin_sumsq / merged.train_frames - mean ** 2, 0.0))
        return mean, std
    mean, std = np.asarray(stats["mean"]), np.asarray(stats["std"])
    if mean.shape != (n_mels,) or std.shape != (n_mels,):
        raise FeatureError(f"the given mel statistics have shapes {mean.shape} / {std.shape}, "
                           f"not ({n_mels},) for n_mels={n_mels}")
    return mean, std


def _index(manifest: pd.DataFrame, merged: ShardResult) -> pd.DataFrame:
    """index.csv's rows: the manifest's utterances with their frames, samples and mel file."""
    index = manifest[[c for c in ("utt_id", "speaker", "split") if c in manifest.columns]].copy()
    index["frames"] = index["utt_id"].map(merged.frames)
    index["num_samples"] = index["utt_id"].map(merged.num_samples)
    missing = index[index["frames"].isna()]["utt_id"].tolist()
    if missing:
        raise FeatureError(f"features missing for {len(missing)} utterance(s), e.g. {missing[:5]}")
    index["frames"] = index["frames"].astype(int)
    index["num_samples"] = index["num_samples"].astype(int)
    index["mel"] = [f"{MELS_DIR}/{u}.npy" for u in index["utt_id"]]
    return index


def load_stats(features_dir: str | Path) -> dict[str, np.ndarray]:
    with np.load(Path(features_dir) / "stats.npz") as z:
        return {k: z[k] for k in z.files}


def extract_features(manifest_csv: str | Path, prepared_dir: str | Path, out_dir: str | Path,
                     config: MelConfig, *, shard_size: int = 64, device: str = "auto",
                     batch_seconds: float = 60.0, workers: int = 2,
                     stats: dict[str, np.ndarray] | None = None) -> dict[str, Any]:
    """The whole stage without an orchestrator: shards run in a thread pool of ``workers``.
    ``stats``: written to stats.npz instead of the train split's (see :func:`finalize`)."""
    manifest = read_manifest(manifest_csv)
    jobs = plan_jobs(manifest, prepared_dir, out_dir)
    start_output(out_dir)
    shards = shard(jobs, shard_size)
    torch.set_num_threads(1)
    results = [extract_shard(s, config.to_dict(), device, batch_seconds, threads=workers) for s in shards]
    return finalize(results, manifest, out_dir, config, stats)
