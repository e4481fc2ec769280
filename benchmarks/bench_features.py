"""Feature-extraction throughput: ganpipe's features stage vs a per-file librosa baseline.

Baseline = the ParallelWaveGAN-recipe way: one process, for each file soundfile.read ->
librosa.stft (center, reflect) -> |S| -> librosa mel basis -> log -> np.save.
Ours = ganpipe.features.extract_features (sharded, batched torch STFT, threaded I/O).
Same files (../shared/data/ljspeech-mini), same mel parameters, I/O included, both warmed up.

Run: .venv/bin/python benchmarks/bench_features.py [--repeats 3] [--copies 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import librosa
import numpy as np
import pandas as pd
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ganpipe.features import extract_features  # noqa: E402
from ganpipe.mel import MelConfig  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "ljspeech-mini" / "LJSpeech-1.1" / "wavs"


def baseline(files: list[Path], out: Path, c: MelConfig) -> None:
    basis = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels, fmin=c.fmin, fmax=c.fmax)
    for f in files:
        x, sr = sf.read(f, dtype="float32")
        spec = np.abs(librosa.stft(x, n_fft=c.n_fft, hop_length=c.hop_length, win_length=c.win_length,
                                   window="hann", pad_mode="reflect"))
        mel = np.log(np.maximum(c.clamp, basis @ spec)).astype(np.float32)
        np.save(out / f"{f.stem}.npy", mel)


def ours(manifest: Path, out: Path, c: MelConfig, workers: int) -> None:
    extract_features(manifest, "/", out, c, shard_size=len(pd.read_csv(manifest)), device="cpu", workers=workers)


def timed(fn, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"benchmark data not found: {DATA}")
    files = sorted(DATA.glob("*.wav"))
    seconds = sum(sf.info(f).duration for f in files)
    c = MelConfig()
    tmp = Path(tempfile.mkdtemp(prefix="bench-features-"))
    try:
        manifest = tmp / "manifest.csv"
        pd.DataFrame({"utt_id": [f.stem for f in files], "speaker": "LJ", "split": "train",
                      "path": [str(f.resolve()) for f in files]}).to_csv(manifest, index=False)
        (tmp / "base").mkdir()
        baseline(files, tmp / "base", c)  # warm-up
        ours(manifest, tmp / "ours", c, args.workers)  # warm-up
        t_base = timed(lambda: baseline(files, tmp / "base", c), args.repeats)
        t_ours = timed(lambda: ours(manifest, tmp / "ours", c, args.workers), args.repeats)
        # sanity: same log-mel up to framing (baseline uses center=True: T//hop + 1 frames)
        a = np.load(tmp / "base" / f"{files[0].stem}.npy")
        b = np.load(tmp / "ours" / "mels" / f"{files[0].stem}.npy")
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
              f"torch {torch.__version__}, threads {torch.get_num_threads()}")
        print(f"files: {len(files)}  audio: {seconds:.1f} s  (best of {args.repeats})")
        print(f"baseline librosa per-file : {t_base:.3f} s  {seconds / t_base:8.1f} audio-s/s")
        print(f"ganpipe features         : {t_ours:.3f} s  {seconds / t_ours:8.1f} audio-s/s")
        print(f"ratio (ours / baseline throughput): {t_base / t_ours:.2f}x")
        print(f"frames baseline/ours: {a.shape[1]}/{b.shape[1]}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
