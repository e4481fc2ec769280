"""MCD throughput: recipe-style reference (pysptk per frame + fastdtw) vs ganpipe's fast path.

Both run in this one process on the same pairs (each ljspeech-mini clip against a degraded copy),
both warmed up first (numba compilation, cached analysis matrices, library imports), so the ratio
is measured against a baseline taken on the same machine at the same time. It also reports how
far the fast values are from the reference ones, and the MR-STFT distance against auraloss.

    .venv/bin/python benchmarks/bench_mcd.py [--data DIR] [--degradation griffinlim|noise]
                                             [--limit N] [--fast-repeats 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ganpipe.mel import MelConfig, MelSpectrogram  # noqa: E402
from ganpipe.metrics.mcd import mcd, mcd_reference  # noqa: E402
from ganpipe.stft_distance import MultiResolutionSTFT  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "ljspeech-mini" / "LJSpeech-1.1"


def griffin_lim_copy(x: np.ndarray, sr: int, n_iter: int = 8) -> np.ndarray:
    """A vocoder-like copy: Griffin-Lim from the project mel's linear magnitude."""
    config = MelConfig(sample_rate=sr)
    mag = MelSpectrogram(config).magnitude(torch.from_numpy(x.astype(np.float32)))
    gl = torchaudio.transforms.GriffinLim(
        n_fft=config.n_fft,
        win_length=config.win_length,
        hop_length=config.hop_length,
        power=1.0,
        n_iter=n_iter,
        rand_init=False,
    )
    y = gl(mag).numpy().astype(np.float64)
    shift = config.n_fft // 2 - (config.n_fft - config.hop_length) // 2  # frame-centre convention
    out = np.zeros_like(x)
    seg = y[: len(x) - shift]
    out[shift : shift + len(seg)] = seg
    return out


def noisy_copy(x: np.ndarray, snr_db: float = 20.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return x + rng.normal(size=x.shape) * np.sqrt(np.mean(x**2) / 10 ** (snr_db / 10))


def load_pairs(
    data: Path, degradation: str, limit: int | None
) -> tuple[list[tuple[str, np.ndarray, np.ndarray]], int]:
    wav_dir = data / "wavs"
    files = sorted(wav_dir.glob("*.wav"))
    if not files:
        raise SystemExit(f"{wav_dir}: no .wav files (pass --data pointing at an LJSpeech-1.1 folder)")
    if limit:
        files = files[:limit]
    pairs, rates = [], set()
    for path in files:
        x, sr = sf.read(path, dtype="float64")
        if x.ndim != 1:
            raise SystemExit(f"{path}: expected mono audio, got {x.shape[1]} channels")
        rates.add(sr)
        gen = griffin_lim_copy(x, sr) if degradation == "griffinlim" else noisy_copy(x)
        pairs.append((path.name, x, gen))
    if len(rates) != 1:
        raise SystemExit(f"{wav_dir}: mixed sample rates {sorted(rates)}")
    return pairs, rates.pop()


def timed(fn, pairs, sr):  # type: ignore[no-untyped-def]
    wall0, cpu0 = time.perf_counter(), time.process_time()
    values = [fn(ref, gen, sr) for _, ref, gen in pairs]
    return values, time.perf_counter() - wall0, time.process_time() - cpu0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--degradation", choices=("griffinlim", "noise"), default="griffinlim")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N clips")
    parser.add_argument("--fast-repeats", type=int, default=3, help="timed runs of the fast path (best kept)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()

    pairs, sr = load_pairs(args.data, args.degradation, args.limit)
    seconds = sum(len(ref) for _, ref, _ in pairs) / sr
    print(f"{len(pairs)} pairs ({args.degradation}), {seconds:.1f} s of reference audio at {sr} Hz")

    # warm-up: compile / import / build caches for both paths on one short pair
    _, warm_ref, warm_gen = min(pairs, key=lambda p: len(p[1]))
    mcd_reference(warm_ref, warm_gen, sr)
    mcd(warm_ref, warm_gen, sr)

    ref_values, ref_wall, ref_cpu = timed(mcd_reference, pairs, sr)
    fast_runs = [timed(mcd, pairs, sr) for _ in range(max(1, args.fast_repeats))]
    fast_values = fast_runs[0][0]
    fast_wall = min(run[1] for run in fast_runs)
    fast_cpu = min(run[2] for run in fast_runs)
    rel = [abs(f - r) / r for f, r in zip(fast_values, ref_values, strict=True)]

    mr_rel = mrstft_agreement(pairs)

    result = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores_visible": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "torch": torch.__version__,
        },
        "pairs": len(pairs),
        "degradation": args.degradation,
        "audio_seconds": round(seconds, 2),
        "reference": {
            "wall_s": round(ref_wall, 3),
            "cpu_s": round(ref_cpu, 3),
            "x_realtime": round(seconds / ref_wall, 2),
        },
        "fast": {
            "wall_s": round(fast_wall, 3),
            "cpu_s": round(fast_cpu, 3),
            "x_realtime": round(seconds / fast_wall, 2),
        },
        "speedup_wall": round(ref_wall / fast_wall, 2),
        "speedup_cpu": round(ref_cpu / fast_cpu, 2),
        "mcd_mean_db": {
            "reference": round(float(np.mean(ref_values)), 4),
            "fast": round(float(np.mean(fast_values)), 4),
        },
        "mcd_max_rel_diff": float(max(rel)),
        "mrstft_max_rel_diff_vs_auraloss": mr_rel,
    }
    print(
        f"reference (pysptk per frame + fastdtw): {ref_wall:8.2f} s wall, {ref_cpu:8.2f} s CPU "
        f"({seconds / ref_wall:6.1f}x real time)"
    )
    print(
        f"fast (batched mcep + compiled DTW):     {fast_wall:8.2f} s wall, {fast_cpu:8.2f} s CPU "
        f"({seconds / fast_wall:6.1f}x real time), best of {len(fast_runs)}"
    )
    print(f"speed-up: {result['speedup_wall']}x wall, {result['speedup_cpu']}x CPU (goal >= 10x)")
    print(
        f"MCD mean {result['mcd_mean_db']['reference']} dB (reference) vs "
        f"{result['mcd_mean_db']['fast']} dB (fast); "
        f"max relative difference {result['mcd_max_rel_diff']:.2e}"
    )
    print(
        f"MR-STFT max relative difference vs auraloss: {mr_rel:.2e}"
        if mr_rel == mr_rel
        else "MR-STFT: auraloss not installed"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


def mrstft_agreement(pairs: list[tuple[str, np.ndarray, np.ndarray]]) -> float:
    try:
        import auraloss
    except ImportError:
        return float("nan")
    theirs = auraloss.freq.MultiResolutionSTFTLoss()
    ours = MultiResolutionSTFT()
    worst = 0.0
    with torch.no_grad():
        for _, ref, gen in pairs:
            r = torch.tensor(ref, dtype=torch.float32)[None, None]
            g = torch.tensor(gen, dtype=torch.float32)[None, None]
            a, b = float(theirs(g, r)), float(ours(g, r).total)
            worst = max(worst, abs(a - b) / abs(a))
    return worst


if __name__ == "__main__":
    main()
