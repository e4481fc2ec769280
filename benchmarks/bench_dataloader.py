"""Training data loading vs what a GPU consumes: is the DataLoader ever the bottleneck?

What is measured is the training DataLoader exactly as the Trainer builds and drives it
(``Trainer.batches()``: :class:`ganpipe.training.data.VocoderSegments`, batch 16 of 8192-sample
segments with their 32 mel frames, the per-epoch batch plan, persistent *spawned* workers, pinned
memory when the Trainer runs on CUDA) on real speech: the 32 ljspeech-mini clips
(``../shared/data/ljspeech-mini``) run through the project's own prepare stage
(:func:`ganpipe.prepare.prepare_corpus`, 16-bit PCM as in the pipeline) and features stage
(:func:`ganpipe.features.extract_features`) into a temporary folder. The Trainer is built for real
(HiFi-GAN V1, reference sizes) with ``train.num_workers`` = 0, 1, 2, ...

A real corpus (LJSpeech: 13,100 clips = 818 batches of 16) has epochs hundreds of batches long;
32 clips make an epoch of 2 batches, and every epoch boundary drains and refills the workers'
prefetch queue. ``--epoch-batches`` (default 400) therefore repeats the 32 utterances in the
Trainer's train split so that an epoch is that long (the same files are read; they sit in the page
cache, as a hot 3.6 GB LJSpeech would on a training box); ``--epoch-batches 0`` keeps the 2-batch
epochs.

The consumer takes batches as fast as they come (no training step), so the rate is what the
loader can deliver. Worker configurations are timed interleaved (``--rounds`` blocks of
``--batches`` batches each, after draining what the idle workers prefetched meanwhile); the best
and the median block are reported. Mel frames/s = batches/s x 16 x 32 frames; a GPU's appetite:
NVIDIA's tuned HiFi-GAN V1 (DeepLearningExamples, AMP, one A100) trains at ~15.6k mel frames/s.

    .venv/bin/python benchmarks/bench_dataloader.py                 # workers 0,1,2 (~25 s)
    .venv/bin/python benchmarks/bench_dataloader.py --workers 0,2,4,8 --json loader.json
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_inference import CpuLoad, describe_load, machine_info  # noqa: E402

from ganpipe.config import AudioParams, ModelParams, Params, SplitParams, TrackingParams, TrainParams  # noqa: E402
from ganpipe.training.trainer import Trainer, TrainPaths  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "ljspeech-mini" / "LJSpeech-1.1"
GPU_FRAMES_PER_S = 15_600  # NVIDIA DeepLearningExamples HiFi-GAN V1, AMP, 1x A100 (their reported figure)


class ProcessTreeLoad(CpuLoad):
    """CpuLoad that counts this process's DataLoader workers as its own: a joined child's CPU time
    is added to ``os.times().children_*`` (take the summary after the workers are shut down)."""

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system


# ------------------------------------------------------------------------------------------------
def prepare_ljspeech(data: Path, root: Path) -> TrainPaths:
    """``data`` (an LJSpeech-1.1 folder) through the prepare and features stages, all clips in train."""
    from ganpipe.datasets.layouts import discover
    from ganpipe.features import extract_features
    from ganpipe.prepare import prepare_corpus

    params = Params()
    prepared, features = root / "prepared", root / "features"
    utts = discover("ljspeech", data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepare_corpus(utts, prepared, AudioParams(), SplitParams(valid_fraction=0.0, test_fraction=0.0),
                       workers=2, progress=False)
        extract_features(prepared / "manifest.csv", prepared, features, params.mel_config(), device="cpu",
                         workers=1)
    return TrainPaths(prepared=prepared, features=features, checkpoints=root / "checkpoints",
                      generator=root / "generator.pt", metrics=root / "train.json", curve=root / "curve.csv")


def make_trainer(paths: TrainPaths, workers: int, args: argparse.Namespace) -> Trainer:
    train = TrainParams(batch_size=args.batch, segment_samples=args.segment, num_workers=workers,
                        device=args.device, threads=1, seed=1234)
    params = Params(model=ModelParams(variant=args.variant), train=train, tracking=TrackingParams(enabled=False))
    trainer = Trainer(params, paths, progress=False)
    if args.epoch_batches:
        c = trainer.train_corpus
        k = max(1, math.ceil(args.epoch_batches * args.batch / len(c)))
        trainer.train_corpus = dataclasses.replace(
            c, utt_ids=c.utt_ids * k, wavs=c.wavs * k, mels=c.mels * k, frames=c.frames * k, labels=c.labels * k)
    return trainer


class Feed:
    """One Trainer's endless batch iterator (its own DataLoader and workers)."""

    def __init__(self, trainer: Trainer, workers: int):
        self.trainer, self.workers = trainer, workers
        t0 = time.perf_counter()
        self.it: Iterator[dict[str, torch.Tensor]] = trainer.batches()
        first = next(self.it)
        self.startup_s = time.perf_counter() - t0  # worker spawn + first batch
        self.frames_per_batch = int(first["mel"].shape[0] * first["mel"].shape[-1])
        self.shapes = {k: tuple(v.shape) for k, v in first.items()}
        self.device = trainer.device  # the Trainer pins memory (pin_memory=True) when this is CUDA

    def close(self) -> None:
        self.it.close()  # ends Trainer.batches(): its DataLoader shuts down and joins the workers

    def block(self, n: int) -> float:
        for _ in range(2 * self.workers + 2):  # what the workers prefetched while others were timed
            next(self.it)
        t0 = time.perf_counter()
        for _ in range(n):
            next(self.it)
        if self.device.type == "cuda":  # the Trainer's copies to the GPU are non-blocking
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - t0


def profile_items(trainer: Trainer, repeats: int) -> dict[str, float]:
    """Per-item cost (µs, this process) of VocoderSegments.__getitem__ on a fresh dataset (first
    epoch: each file's layout parsed on first use) and once it has seen every file, and of
    collating a batch."""
    from torch.utils.data import default_collate

    corpus = trainer.train_corpus
    n = len(set(corpus.wavs))  # the distinct utterances come first in a repeated corpus
    first, later, collate = [], [], []
    for _ in range(repeats):
        ds = trainer.dataset(corpus)
        t0 = time.perf_counter()
        items = [ds[i] for i in range(n)]
        first.append((time.perf_counter() - t0) / n)
        t0 = time.perf_counter()
        items = [ds[i] for i in range(n)]
        later.append((time.perf_counter() - t0) / n)
        bs = trainer.params.train.batch_size
        t0 = time.perf_counter()
        for j in range(0, n - bs + 1, bs):
            default_collate(items[j:j + bs])
        collate.append((time.perf_counter() - t0) / (n // bs))
    return {"getitem_first_us": round(min(first) * 1e6, 1), "getitem_us": round(min(later) * 1e6, 1),
            "collate_us_per_batch": round(min(collate) * 1e6, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", default="0,1,2", help="comma-separated train.num_workers values")
    ap.add_argument("--batches", type=int, default=60, help="batches per timed block")
    ap.add_argument("--rounds", type=int, default=3, help="timed blocks per configuration, interleaved")
    ap.add_argument("--epoch-batches", type=int, default=400,
                    help="repeat the clips so that an epoch has this many batches (0: as they are)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--segment", type=int, default=8192)
    ap.add_argument("--variant", default="hifigan_v1")
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"),
                    help="the Trainer's device (cuda: pinned memory, batches copied to the GPU)")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    if not (args.data / "metadata.csv").is_file():
        sys.exit(f"benchmark data not found: {args.data}")
    workers = [int(w) for w in args.workers.split(",")]

    machine = machine_info(torch.device("cuda" if args.device == "cuda" else "cpu"))
    print(f"machine: {machine['cpu']}, {machine['cores_visible']} cores visible; torch {machine['torch']}")
    load = ProcessTreeLoad()
    with tempfile.TemporaryDirectory(prefix="ganpipe-bench-loader-") as tmp:
        t0 = time.perf_counter()
        paths = prepare_ljspeech(args.data, Path(tmp))
        print(f"prepared + features of {args.data} in {time.perf_counter() - t0:.1f} s")
        feeds: dict[int, Feed] = {}
        for w in workers:
            feeds[w] = Feed(make_trainer(paths, w, args), w)
        any_feed = next(iter(feeds.values()))
        any_frames = any_feed.frames_per_batch
        n_utts = len(set(any_feed.trainer.train_corpus.utt_ids))
        epoch = len(any_feed.trainer.train_corpus) // args.batch
        print(f"{n_utts} utterances, epoch of {epoch} batches; batch {any_feed.shapes}; batches on "
              f"{any_feed.device} (pinned memory: {any_feed.device.type == 'cuda'})")
        prof = profile_items(any_feed.trainer, 20)
        print(f"one process: __getitem__ {prof['getitem_us']:.0f} µs/item ({prof['getitem_first_us']:.0f} on a "
              f"file's first read), collate {prof['collate_us_per_batch']:.0f} µs/batch")
        times: dict[int, list[float]] = {w: [] for w in workers}
        for r in range(args.rounds):
            order = workers[r % len(workers):] + workers[: r % len(workers)]
            for w in order:
                times[w].append(feeds[w].block(args.batches))
        rows = {}
        for w in workers:
            f = feeds[w]
            best = args.batches / min(times[w])
            median = args.batches / statistics.median(times[w])
            frames = best * f.frames_per_batch
            rows[w] = {"batches_per_s": round(best, 2), "batches_per_s_median": round(median, 2),
                       "mel_frames_per_s": round(frames), "mel_frames_per_s_median": round(median * f.frames_per_batch),
                       "ratio_to_gpu": round(frames / GPU_FRAMES_PER_S, 3), "startup_s": round(f.startup_s, 1)}
        for f in feeds.values():
            f.close()
        del feeds, f, any_feed
        gc.collect()
    summary = load.summary()

    print(f"\n{'workers':>7} {'batches/s':>9} {'(median)':>8} {'frames/s':>9} {'(median)':>8} "
          f"{'/ 15.6k':>7} {'start s':>7}")
    for w, row in rows.items():
        print(f"{w:>7} {row['batches_per_s']:9.2f} {row['batches_per_s_median']:8.2f} {row['mel_frames_per_s']:9d} "
              f"{row['mel_frames_per_s_median']:8d} {row['ratio_to_gpu']:7.2f} {row['startup_s']:7.1f}")
    gpu_step_ms = 1e3 * any_frames / GPU_FRAMES_PER_S
    if 0 in rows:  # no workers: the Trainer loads each batch in line, between its GPU steps
        ms = 1e3 / rows[0]["batches_per_s"]
        print(f"num_workers 0: loading adds {ms:.1f} ms to every step, {100 * ms / gpu_step_ms:.0f} % of the "
              f"{gpu_step_ms:.1f} ms an A100 step takes at {GPU_FRAMES_PER_S} frames/s")
    one = min((w for w in workers if w > 0), default=None)
    if one is not None:
        per_worker = rows[one]["mel_frames_per_s"] / one
        for headroom in (1, 2):
            need = math.ceil(headroom * GPU_FRAMES_PER_S / per_worker)
            print(f"workers for {headroom}x the GPU's {GPU_FRAMES_PER_S} mel frames/s, at {per_worker:.0f} "
                  f"frames/s per worker (measured with {one}): {need}, each with a free core")
    cores = machine["cores_visible"]
    if max(workers) >= cores:
        print(f"note: {cores} cores: with {cores} or more workers they share the cores with each other and with "
              "the consumer, so more workers than that measure contention, not the loader")
    print(describe_load(summary) + " (our DataLoader workers counted as ours)")
    if args.json:
        out = {"machine": machine, "args": {k: str(v) for k, v in vars(args).items()}, "profile": prof,
               "gpu_mel_frames_per_s": GPU_FRAMES_PER_S, "results": rows, "load": summary}
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
