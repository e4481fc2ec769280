"""Vocoder inference speed: the reference way vs ganpipe.serving.backends's fast paths, in one run.

Reference (jik876/hifi-gan ``inference.py``): generator with weight norm removed, ``eval()``,
plain forward under ``torch.no_grad()``. Fast paths (``ganpipe.serving.backends.prepare_for_inference``):
``onnxruntime`` (the CPU default), ``torch`` (the reference module under ``inference_mode``),
``compile`` (torch.compile, opt-in: slow to build), and for the record ``jit`` (torch.jit trace +
freeze + optimize_for_inference, not shipped). Every path synthesises the same mel: the project mel
(ganpipe.mel) of a real LJSpeech clip cut to ``--seconds``. Timed runs alternate between the paths
(round-robin, order rotated every round, a short pause before each so that idle worker threads of
the previous path stop spinning); best and median of ``--repeats`` are reported, with the real-time
factor RTF = audio seconds / wall seconds, the speed-up over the reference (ratio of bests, and
the median over rounds of the within-round ratio, steadier on a shared machine), the cores other
processes kept busy during the calls, and the largest absolute difference of each path's waveform
from the reference one (must be < 1e-4).

    .venv/bin/python benchmarks/bench_inference.py [--variants hifigan_v1,hifigan_v3] [--seconds 5]
        [--threads 2] [--repeats 5] [--device auto|cpu|cuda] [--paths reference,torch,jit,onnxruntime]
        [--generator models/generator.pt] [--json OUT]

Weights are random (the architecture, not the training, fixes the cost) unless ``--generator``
points at a trained generator file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ganpipe.mel import MelConfig, MelSpectrogram  # noqa: E402
from ganpipe.models import build  # noqa: E402
from ganpipe.serving.backends import max_abs_diff, prepare_for_inference, reference_module  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "ljspeech-mini" / "LJSpeech-1.1"
ALL_PATHS = ("reference", "torch", "jit", "onnxruntime", "compile")
TOLERANCE = 1e-4


# ------------------------------------------------------------------------------------------------
# machine description and load (shared with bench_train.py)
def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: torch.device) -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores_visible": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_model(),
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info


class CpuLoad:
    """Load seen while measuring: 1-min load average at start/end and the CPU time other
    processes used during the run (``/proc/stat`` busy time minus this process's CPU time)."""

    def __init__(self) -> None:
        self.loadavg_start = self._loadavg()
        self._wall0, self._busy0, self._own0 = time.perf_counter(), self._busy(), self._own()

    @staticmethod
    def _loadavg() -> float | None:
        try:
            return float(Path("/proc/loadavg").read_text().split()[0])
        except OSError:
            return None

    @staticmethod
    def _busy() -> float | None:
        try:
            fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        except OSError:
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)
        return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system

    def summary(self) -> dict[str, Any]:
        wall = time.perf_counter() - self._wall0
        busy = self._busy()
        others = None
        if busy is not None and self._busy0 is not None and wall > 0:
            others = max(0.0, (busy - self._busy0) - (self._own() - self._own0)) / wall
        return {
            "loadavg_1min_start": self.loadavg_start,
            "loadavg_1min_end": self._loadavg(),
            "other_processes_cores_busy": None if others is None else round(others, 2),
            "seconds": round(wall, 1),
        }


def describe_load(load: dict[str, Any]) -> str:
    return (f"load average {load['loadavg_1min_start']} -> {load['loadavg_1min_end']}; other processes kept "
            f"{load['other_processes_cores_busy']} cores busy on average over {load['seconds']} s")


def pick_device(choice: str) -> torch.device:
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device available")
    return torch.device(choice)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def alternate(fns: dict[str, Callable[[], Any]], repeats: int, device: torch.device,
              pause: float = 0.05) -> tuple[dict[str, list[float]], dict[str, list[float | None]]]:
    """Wall times of ``repeats`` calls of every function, interleaved round-robin (order rotated
    each round), and the cores other processes kept busy during each call."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    others: dict[str, list[float | None]] = {n: [] for n in names}
    for r in range(repeats):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            time.sleep(pause)
            synchronize(device)
            probe = CpuLoad()
            t0 = time.perf_counter()
            fns[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - t0)
            others[name].append(probe.summary()["other_processes_cores_busy"])
    return times, others


def paired_speedup(reference: list[float], path: list[float]) -> float:
    """Median over rounds of reference time / path time within the same round: adjacent calls
    see about the same machine load, so this is steadier than a ratio of bests on a shared host."""
    return statistics.median(r / p for r, p in zip(reference, path))


# ------------------------------------------------------------------------------------------------
def load_mel(data: Path, seconds: float, clip: str | None) -> tuple[torch.Tensor, str, MelConfig]:
    config = MelConfig()
    files = sorted((data / "wavs").glob("*.wav"))
    if clip:
        files = [f for f in files if f.stem == clip]
    if not files:
        raise SystemExit(f"{data}/wavs: no clip found (pass --data pointing at an LJSpeech-1.1 folder)")
    need = int(round(seconds * config.sample_rate))
    for path in files:
        info = sf.info(path)
        if info.frames >= need or clip:
            wav, sr = sf.read(path, dtype="float32", frames=need)
            if sr != config.sample_rate:
                raise SystemExit(f"{path}: {sr} Hz, the project mel expects {config.sample_rate} Hz")
            if len(wav) < need:
                wav = np.pad(wav, (0, need - len(wav)))
            mel = MelSpectrogram(config)(torch.from_numpy(wav))
            return mel.unsqueeze(0), path.stem, config
    raise SystemExit(f"{data}/wavs: no clip is {seconds} s long")


def load_generator(variant: str, generator_file: Path | None) -> torch.nn.Module:
    if generator_file is not None:
        from ganpipe.generator_io import load_generator as load

        loaded = load(generator_file)
        if loaded.bundle.variant != variant:
            raise SystemExit(f"{generator_file} holds {loaded.bundle.variant}, not {variant}")
        return loaded.generator
    torch.manual_seed(0)
    return build(variant).generator


def jit_module(reference: torch.nn.Module, mel: torch.Tensor) -> torch.nn.Module:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit is deprecated
        return torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.trace(reference, mel)))


def bench_variant(variant: str, mel: torch.Tensor, audio_seconds: float, args: argparse.Namespace,
                  device: torch.device) -> dict[str, Any]:
    generator = load_generator(variant, args.generator)
    mel = mel.to(device)
    paths = [p for p in args.paths if not (p == "onnxruntime" and device.type != "cpu")]
    skipped = sorted(set(args.paths) - set(paths))
    fns: dict[str, Callable[[], torch.Tensor]] = {}
    build_s: dict[str, float] = {}

    t0 = time.perf_counter()
    reference = reference_module(generator, device)
    build_s["reference"] = time.perf_counter() - t0

    def run_reference() -> torch.Tensor:
        with torch.no_grad():
            return reference(mel)

    fns["reference"] = run_reference
    for path in paths:
        if path == "reference":
            continue
        t0 = time.perf_counter()
        if path == "jit":
            module = jit_module(reference, mel)

            def run(module: Any = module) -> torch.Tensor:
                with torch.no_grad():
                    return module(mel)
        else:
            fast = prepare_for_inference(generator, backend=path, device=device, threads=args.threads)

            def run(fast: Any = fast) -> torch.Tensor:
                return fast(mel)
        fns[path] = run
        build_s[path] = time.perf_counter() - t0

    # warm-up (the first call of compile compiles) and output check against the reference
    expected = run_reference()
    diffs: dict[str, float] = {}
    for name, fn in fns.items():
        t0 = time.perf_counter()
        out = fn()
        synchronize(device)
        if name in ("compile", "jit"):
            build_s[name] += time.perf_counter() - t0  # first call compiles / optimises
        diffs[name] = max_abs_diff(out, expected)
        fn()  # second warm-up call (allocator, oneDNN/ORT caches)
    del expected

    times, others = alternate(fns, args.repeats, device)
    ref_best = min(times["reference"])
    rows = {}
    for name, t in times.items():
        best, median = min(t), statistics.median(t)
        busy = [o for o in others[name] if o is not None]
        rows[name] = {
            "best_s": round(best, 4),
            "median_s": round(median, 4),
            "rtf_best": round(audio_seconds / best, 2),
            "rtf_median": round(audio_seconds / median, 2),
            "speedup_best": round(ref_best / best, 2),
            "speedup_paired_median": round(paired_speedup(times["reference"], t), 2),
            "other_cores_busy_mean": round(statistics.mean(busy), 2) if busy else None,
            "times_s": [round(x, 4) for x in t],
            "max_abs_diff": diffs[name],
            "identical": diffs[name] < TOLERANCE,
            "build_s": round(build_s.get(name, 0.0), 2),
        }
    return {"variant": variant, "paths": rows, "skipped": skipped}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="hifigan_v1,hifigan_v3")
    parser.add_argument("--seconds", type=float, default=5.0, help="audio length synthesised per call")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch and ONNX Runtime)")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per path (interleaved)")
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--paths", default="reference,torch,jit,onnxruntime",
                        help=f"comma-separated subset of {','.join(ALL_PATHS)} (compile is slow to build)")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--clip", default=None, help="utterance id (default: the first clip long enough)")
    parser.add_argument("--generator", type=Path, default=None, help="trained generator file (one variant)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    args.paths = [p for p in args.paths.split(",") if p]
    unknown = sorted(set(args.paths) - set(ALL_PATHS))
    if unknown:
        raise SystemExit(f"unknown path(s) {unknown}; choose from {ALL_PATHS}")
    if "reference" not in args.paths:
        args.paths.insert(0, "reference")

    torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    mel, clip, config = load_mel(args.data, args.seconds, args.clip)
    audio_seconds = mel.shape[-1] * config.hop_length / config.sample_rate
    machine = machine_info(device)
    print(f"device: {machine['device_name']} ({device}); torch {machine['torch']}, "
          f"onnxruntime {machine['onnxruntime']}, {args.threads} threads, {machine['cores_visible']} cores visible")
    print(f"mel: {clip}, {mel.shape[-1]} frames = {audio_seconds:.2f} s of audio; best/median of "
          f"{args.repeats} interleaved calls per path")

    load = CpuLoad()
    results = []
    for variant in [v for v in args.variants.split(",") if v]:
        res = bench_variant(variant, mel, audio_seconds, args, device)
        results.append(res)
        print(f"\n{variant}")
        print(f"  {'path':<12} {'best s':>7} {'RTF best':>8} {'RTF med':>8} {'x ref best':>10} "
              f"{'x ref paired':>12} {'max|diff|':>9} {'build s':>8} {'others':>6}")
        for name, row in res["paths"].items():
            flag = "" if row["identical"] else "  NOT IDENTICAL"
            print(f"  {name:<12} {row['best_s']:7.3f} {row['rtf_best']:8.2f} {row['rtf_median']:8.2f} "
                  f"{row['speedup_best']:10.2f} {row['speedup_paired_median']:12.2f} {row['max_abs_diff']:9.2e} "
                  f"{row['build_s']:8.2f} {row['other_cores_busy_mean']:6}{flag}")
        if res["skipped"]:
            print(f"  skipped on {device.type}: {', '.join(res['skipped'])}")
    load_summary = load.summary()
    print(f"\n{describe_load(load_summary)}")
    if args.json:
        out = {"machine": machine, "threads": args.threads, "clip": clip, "audio_seconds": audio_seconds,
               "repeats": args.repeats, "load": load_summary, "results": results}
        args.json.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
