"""Training throughput of ganpipe's Trainer: steps/s, audio seconds/s and mel frames/s per variant,
and fp32 vs bf16 vs torch.compile as ratios measured in one run.

What is timed is the Trainer's own step (``Trainer.vocoder_step`` / ``latent_step``: generator
forward, discriminator update, generator losses and update, exactly as ``Trainer.run`` calls them)
on batches drawn beforehand from the Trainer's own data pipeline, so data loading, logging,
validation and checkpoints are excluded. Each Trainer is built for real (``Trainer(params, paths)``)
on a throw-away corpus written to a temporary folder: a few LJSpeech clips from
``../shared/data/ljspeech-mini`` when present, otherwise synthetic harmonic audio (throughput does
not depend on the content), with features from ``ganpipe.features.extract_features``.

Configurations of one variant are timed interleaved: ``--rounds`` rounds, each running ``--steps``
steps of every configuration in turn (order rotated per round); best and median block are
reported, and every configuration's ratio to the first one (fp32) in the same run.

    # the CPU run of RESULTS_train_inference.md (a few minutes on 2 cores)
    .venv/bin/python benchmarks/bench_train.py --device cpu
    # a GPU: HiFi-GAN V1, batch 16 x 8192 samples, fp32 vs bf16 vs compiled
    .venv/bin/python benchmarks/bench_train.py --device cuda --variants hifigan_v1 --batch 16 \\
        --configs fp32,bf16,compile,bf16+compile --steps 20 --rounds 3

Mel frames/s = steps/s x batch x segment / hop: comparable with NVIDIA's tuned HiFi-GAN
(DeepLearningExamples, ~15.6k mel frames/s with AMP on one A100, their reported training figure).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_inference import CpuLoad, describe_load, machine_info, pick_device, synchronize  # noqa: E402

from ganpipe.config import ModelParams, Params, TrackingParams, TrainParams  # noqa: E402
from ganpipe.features import extract_features  # noqa: E402
from ganpipe.mel import MelConfig  # noqa: E402
from ganpipe.models import TINY_OVERRIDES, VARIANTS  # noqa: E402
from ganpipe.training.recipes import RECIPES  # noqa: E402
from ganpipe.training.trainer import Trainer, TrainPaths  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "ljspeech-mini" / "LJSpeech-1.1"
CONFIGS = {  # name -> (precision, compile)
    "fp32": ("fp32", False),
    "bf16": ("bf16", False),
    "fp16": ("fp16", False),
    "compile": ("fp32", True),
    "bf16+compile": ("bf16", True),
}
CPU_DEFAULT_VARIANTS = "hifigan_v1,hifigan_v2,hifigan_v3,melgan,multiband_melgan,parallel_wavegan,wavegan,specgan,mel_mlp_gan"


# ------------------------------------------------------------------------------------------------
def write_corpus(root: Path, data: Path, n_utts: int, seconds: float) -> tuple[TrainPaths, str]:
    """A throw-away prepared corpus + features under ``root`` (train: all but one utterance)."""
    mel_config = MelConfig()
    sr = mel_config.sample_rate
    prepared, features = root / "prepared", root / "features"
    (prepared / "wavs").mkdir(parents=True)
    clips = sorted((data / "wavs").glob("*.wav"))[:n_utts] if (data / "wavs").is_dir() else []
    source = f"LJSpeech clips from {data}" if len(clips) == n_utts else "synthetic harmonic audio"
    rows = []
    rng = np.random.default_rng(0)
    for i in range(n_utts):
        if source.startswith("LJSpeech"):
            wav, file_sr = sf.read(clips[i], dtype="float32")
            if file_sr != sr:
                raise SystemExit(f"{clips[i]}: {file_sr} Hz, expected {sr} Hz")
        else:
            t = np.arange(int(seconds * sr)) / sr
            f0 = 100 + 60 * rng.random()
            wav = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 20)) * 0.1
            wav = (wav + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
        utt = f"utt{i:03d}"
        sf.write(prepared / "wavs" / f"{utt}.wav", wav, sr, subtype="FLOAT")
        rows.append({"utt_id": utt, "speaker": "spk", "path": f"wavs/{utt}.wav",
                     "split": "valid" if i == n_utts - 1 else "train"})
    pd.DataFrame(rows).to_csv(prepared / "manifest.csv", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extract_features(prepared / "manifest.csv", prepared, features, mel_config, device="cpu", workers=1)
    paths = TrainPaths(prepared=prepared, features=features, checkpoints=root / "checkpoints",
                       generator=root / "generator.pt", metrics=root / "train.json", curve=root / "curve.csv")
    return paths, source


def make_trainer(variant: str, config: str, args: argparse.Namespace, paths: TrainPaths,
                 device: torch.device) -> Trainer:
    precision, compiled = CONFIGS[config]
    train = {"steps": 10**9, "batch_size": batch_size(variant, args.batch), "precision": precision, "compile": compiled,
             "device": device.type, "num_workers": 0, "threads": args.threads if device.type == "cpu" else 0,
             "seed": 1234}
    if args.segment and variant in VOCODERS:
        train["segment_samples"] = args.segment
    if args.with_discriminator:
        train["discriminator_start_step"] = 0
    overrides = dict(TINY_OVERRIDES[variant]) if args.size == "tiny" else {}
    params = Params(model=ModelParams(variant=variant, overrides=overrides), train=TrainParams(**train),
                    tracking=TrackingParams(enabled=False))
    return Trainer(params, paths, progress=False)


def batch_size(variant: str, requested: int) -> int:
    """The mel MLP GAN's generator has BatchNorm: it cannot train on a batch of one frame."""
    return max(requested, 2) if variant == "mel_mlp_gan" else requested


VOCODERS = {"hifigan_v1", "hifigan_v2", "hifigan_v3", "melgan", "multiband_melgan", "parallel_wavegan"}


class Runner:
    """One configured Trainer plus pre-drawn batches; ``block(n)`` runs n steps and returns seconds."""

    def __init__(self, trainer: Trainer, n_batches: int):
        self.trainer = trainer
        source = trainer.batches()
        self.batches = [next(source) for _ in range(n_batches)]
        self.cycle = itertools.cycle(self.batches)
        self.vocoder = trainer.bundle.kind == "vocoder"
        first = self.batches[0]
        self.batch_size = int(next(iter(first.values())).shape[0])
        self.samples = int(first["wav"].shape[-1]) if "wav" in first else 0
        self.critic_steps = trainer.recipe.critic_steps

    def step(self) -> None:
        batch = next(self.cycle)
        t = self.trainer
        logs = t.vocoder_step(batch) if self.vocoder else t.latent_step(batch, self.cycle)
        if "nonfinite" in logs:
            raise RuntimeError(f"{t.bundle.variant}: non-finite loss during the benchmark")
        t.step += 1

    def block(self, steps: int) -> float:
        device = self.trainer.device
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            self.step()
        synchronize(device)
        return time.perf_counter() - t0


def bench_variant(variant: str, configs: list[str], args: argparse.Namespace, paths: TrainPaths,
                  device: torch.device) -> dict[str, Any]:
    runners: dict[str, Runner] = {}
    warm: dict[str, float] = {}
    for config in configs:
        t0 = time.perf_counter()
        runner = Runner(make_trainer(variant, config, args, paths, device), n_batches=4)
        runner.block(args.warmup)  # compile (when on), allocator, cuDNN/oneDNN algorithm choice
        warm[config] = time.perf_counter() - t0
        runners[config] = runner
    times: dict[str, list[float]] = {c: [] for c in configs}
    for r in range(args.rounds):
        order = configs[r % len(configs):] + configs[: r % len(configs)]
        for config in order:
            times[config].append(runners[config].block(args.steps))
    any_runner = next(iter(runners.values()))
    recipe = any_runner.trainer.recipe
    hop = any_runner.trainer.mel_config.hop_length
    sr = any_runner.trainer.bundle.sample_rate if not any_runner.vocoder else any_runner.trainer.mel_config.sample_rate
    counts = dict(any_runner.trainer.bundle.parameter_counts())
    rows: dict[str, Any] = {}
    base = configs[0]
    for config in configs:
        best = args.steps / min(times[config])
        median = args.steps / statistics.median(times[config])
        r = runners[config]
        row = {"steps_per_s": round(best, 4), "steps_per_s_median": round(median, 4),
               "ratio_vs_" + base: round(best / (args.steps / min(times[base])), 2),
               "ratio_vs_" + base + "_median": round(median / (args.steps / statistics.median(times[base])), 2),
               "warmup_s": round(warm[config], 1)}
        if r.vocoder:
            row["audio_s_per_s"] = round(best * r.batch_size * r.samples / sr, 3)
            row["mel_frames_per_s"] = round(best * r.batch_size * r.samples / hop, 1)
        elif r.samples:
            row["audio_s_per_s"] = round(best * r.batch_size * r.samples / sr, 3)
        rows[config] = row
    out = {"variant": variant, "size": args.size, "batch": any_runner.batch_size,
           "segment_samples": any_runner.samples if any_runner.samples else None,
           "critic_steps": recipe.critic_steps, "discriminator_active": recipe.discriminator_start_step == 0,
           "generator_parameters": counts.pop("generator"),
           "discriminator_parameters": sum(counts.values()),
           "configs": rows}
    del runners
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--variants", default=None,
                        help="comma-separated (default: hifigan_v1 on CUDA, every variant on the CPU)")
    parser.add_argument("--configs", default=None,
                        help=f"comma-separated subset of {','.join(CONFIGS)}; the first is the baseline of the "
                             "ratios (default: fp32,bf16,compile on CUDA, fp32 on the CPU)")
    parser.add_argument("--size", choices=("full", "tiny"), default=None,
                        help="reference sizes or TINY_OVERRIDES (default: full on CUDA; on the CPU full for "
                             "HiFi-GAN V1-V3 runs at --batch 1 in minutes, so full)")
    parser.add_argument("--batch", type=int, default=None, help="batch size (default 16 on CUDA, 1 on the CPU)")
    parser.add_argument("--segment", type=int, default=None,
                        help="vocoder segment samples (default: each variant's recipe, 8192 for HiFi-GAN)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed block (default 10 CUDA, 1 CPU)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="timed blocks per configuration, interleaved (default 3 CUDA, 4 CPU: short blocks "
                             "and more of them find the quiet moments of a shared CPU)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3 CUDA, 1 CPU)")
    parser.add_argument("--with-discriminator", action="store_true",
                        help="discriminator from step 0 (MB-MelGAN and Parallel WaveGAN recipes train the "
                             "generator alone for the first 200k / 100k steps: by default that first stage is timed)")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    device = pick_device(args.device)
    cuda = device.type == "cuda"
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    args.variants = (args.variants or ("hifigan_v1" if cuda else CPU_DEFAULT_VARIANTS)).split(",")
    unknown = sorted(set(args.variants) - VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variant(s) {unknown}; choose from {sorted(VARIANTS)}")
    configs = (args.configs or ("fp32,bf16,compile" if cuda else "fp32")).split(",")
    if set(configs) - set(CONFIGS):
        raise SystemExit(f"unknown config(s) {sorted(set(configs) - set(CONFIGS))}; choose from {list(CONFIGS)}")
    args.size = args.size or "full"
    args.batch = args.batch or (16 if cuda else 1)
    args.steps = args.steps or (10 if cuda else 1)
    args.rounds = args.rounds or (3 if cuda else 4)
    args.warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)

    machine = machine_info(device)
    print(f"device: {machine['device_name']} ({device}); torch {machine['torch']}, "
          f"{args.threads if not cuda else torch.get_num_threads()} CPU threads, {machine['cores_visible']} cores visible")
    print(f"{args.size} models, batch {args.batch}, segment {args.segment or 'per recipe'}; configs {configs}; "
          f"{args.rounds} interleaved blocks of {args.steps} steps after {args.warmup} warm-up step(s)")
    if cuda:
        torch.backends.cudnn.benchmark = True

    load = CpuLoad()
    results = []
    with tempfile.TemporaryDirectory(prefix="ganpipe-bench-train-") as tmp:
        segment = max([args.segment or 0] + [next(iter(RECIPES[v].values())).segment_samples for v in args.variants])
        paths, source = write_corpus(Path(tmp), args.data, n_utts=5, seconds=max(2.0, segment / 22050 + 0.5))
        print(f"corpus: {source}")
        header = (f"  {'config':<14} {'steps/s':>8} {'(median)':>9} {'audio s/s':>9} {'mel frames/s':>12} "
                  f"{'ratio':>6} {'(median)':>8} {'warm-up s':>9}")
        for variant in args.variants:
            t0 = time.perf_counter()
            try:
                res = bench_variant(variant, configs, args, paths, device)
            except Exception as exc:  # noqa: BLE001 - report and go on with the other variants
                print(f"\n{variant}: FAILED {type(exc).__name__}: {exc}")
                results.append({"variant": variant, "error": f"{type(exc).__name__}: {exc}"})
                continue
            results.append(res)
            seg = f", segment {res['segment_samples']}" if res["segment_samples"] else ""
            seg += "" if res["discriminator_active"] else ", generator alone (recipe's first stage)"
            print(f"\n{variant} ({args.size}: G {res['generator_parameters']:,} / "
                  f"D {res['discriminator_parameters']:,} params), batch {res['batch']}{seg}, "
                  f"critic steps {res['critic_steps']}  [{time.perf_counter() - t0:.0f} s]")
            print(header)
            base = configs[0]
            for config, row in res["configs"].items():
                audio = f"{row['audio_s_per_s']:9.3f}" if "audio_s_per_s" in row else f"{'-':>9}"
                frames = f"{row['mel_frames_per_s']:12.1f}" if "mel_frames_per_s" in row else f"{'-':>12}"
                print(f"  {config:<14} {row['steps_per_s']:8.3f} {row['steps_per_s_median']:9.3f} {audio} {frames} "
                      f"{row['ratio_vs_' + base]:6.2f} {row['ratio_vs_' + base + '_median']:8.2f} "
                      f"{row['warmup_s']:9.1f}")
        shutil.rmtree(Path(tmp) / "checkpoints", ignore_errors=True)
    load_summary = load.summary()
    print(f"\n{describe_load(load_summary)}")
    if args.json:
        out = {"machine": machine, "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
               "configs": configs, "load": load_summary, "results": results}
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
