"""BigVGAN-v2 on a CPU, ours vs NVIDIA's package (``bigvgan==2.4.1``, torch activation path), one run.

Inference: the full-size ``bigvgan_v2`` generator (bigvgan_v2_22khz_80band_256x, 112M parameters,
random weights: the architecture fixes the cost) on the project mel of ``--seconds`` of a real
LJSpeech clip. Paths: ``reference`` (``bigvgan.bigvgan.BigVGAN(h, use_cuda_kernel=False)`` with our
weights mapped into it, ``remove_weight_norm()``, ``eval()``, ``torch.no_grad()`` — its
``inference.py``), ours ``torch`` and ``onnxruntime`` (``ganpipe.serving.backends.prepare_for_inference``;
the ONNX export is checked against the reference module at registration, here too). Timed calls
alternate round-robin (bench_inference.alternate); reported: best and median wall, × real time
(audio seconds / wall seconds), the within-round speed-up over the reference, the largest waveform
difference from the reference.

Training step: one iteration at batch 1 on ``--segment`` samples of real audio, ours
(``Trainer.vocoder_step``, the ``bigvgan_v2`` recipe) vs the reference's train.py loop body
(tests/_bigvgan_reference.iteration: same networks, losses, clipping and schedulers), alternating,
full size (``--train-width`` to shrink the generator's initial channels).

    .venv/bin/python benchmarks/bench_bigvgan.py [--seconds 5] [--threads 2] [--repeats 2]
        [--paths reference,torch,onnxruntime] [--segment 8192] [--train-repeats 2] [--skip-train] [--json OUT]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_inference import DEFAULT_DATA, CpuLoad, alternate, describe_load, load_mel, machine_info, paired_speedup  # noqa: E402

from ganpipe.models import build  # noqa: E402
from ganpipe.models import reference_weights as rw  # noqa: E402
from ganpipe.serving.backends import max_abs_diff, prepare_for_inference, reference_module  # noqa: E402
from tests import _bigvgan_reference as ref  # noqa: E402


def _quiet() -> contextlib.ExitStack:
    stack = contextlib.ExitStack()
    stack.enter_context(warnings.catch_warnings())
    warnings.simplefilter("ignore")
    stack.enter_context(contextlib.redirect_stdout(io.StringIO()))
    return stack


def bench_inference(args: argparse.Namespace) -> dict[str, Any]:
    mel, clip, _ = load_mel(DEFAULT_DATA, args.seconds, None)
    audio_seconds = mel.shape[-1] * 256 / 22050
    torch.manual_seed(0)
    ours = build("bigvgan_v2").generator
    h = ref.config("bigvgan_v2")
    with _quiet():
        theirs = ref.generator(h)
        ours_state = rw.from_bigvgan_generator(theirs.state_dict(), ours)  # same weights both sides
        ours.load_state_dict(ours_state)
        theirs.remove_weight_norm()
    theirs.eval()
    fns: dict[str, Any] = {}
    outputs: dict[str, torch.Tensor] = {}
    calls: dict[str, Any] = {}
    if "reference" in args.paths:
        calls["reference"] = theirs
    for backend in ("torch", "onnxruntime"):
        if backend in args.paths:
            with _quiet():
                calls[backend] = prepare_for_inference(ours, backend=backend)
    for name, call in calls.items():
        def run(name: str = name, call: Any = call) -> None:
            with torch.no_grad():
                outputs[name] = call(mel)
        fns[name] = run
        with torch.no_grad():
            call(mel[..., :16])  # warm-up on a short input (allocator, ORT session)
    load = CpuLoad()
    times, others = alternate(fns, args.repeats, torch.device("cpu"))
    rows = {}
    with torch.no_grad():
        expected = outputs.get("reference") if "reference" in outputs else reference_module(ours)(mel)
    for name, ts in times.items():
        rows[name] = {"best_s": round(min(ts), 2), "median_s": round(statistics.median(ts), 2),
                      "x_real_time": round(audio_seconds / min(ts), 4),
                      "speedup_vs_reference": (round(paired_speedup(times["reference"], ts), 2)
                                               if "reference" in times else None),
                      "max_abs_diff": max_abs_diff(outputs[name], expected),
                      "other_cores_busy": others[name]}
    return {"clip": clip, "audio_seconds": round(audio_seconds, 2), "frames": mel.shape[-1], "paths": rows,
            "load": load.summary()}


def bench_training(args: argparse.Namespace) -> dict[str, Any]:
    from tests.support import reference_step as rs
    from tests.support.training_data import build_lj

    class _Factory:  # build_lj's tmp_path_factory
        def __init__(self, root: Path) -> None:
            self.root = root

        def mktemp(self, name: str) -> Path:
            path = self.root / name
            path.mkdir()
            return path

    wavs = sorted((DEFAULT_DATA / "wavs").glob("LJ*.wav"))
    sizes = {"upsample_initial_channel": args.train_width} if args.train_width else {}
    with tempfile.TemporaryDirectory() as tmp, _quiet():
        corpus = build_lj(_Factory(Path(tmp)), wavs)
        h = ref.config("bigvgan_v2", **sizes)
        torch.manual_seed(0)
        reference = ref.Reference(h, ref.generator(h), *ref.discriminators(h))
        t = rs.trainer(corpus, Path(tmp) / "ours", "bigvgan_v2", sizes, {"batch_size": 1,
                                                                         "segment_samples": args.segment})
        t.G.load_state_dict(rw.from_bigvgan_generator(reference.generator.state_dict(), t.G))
        t.D.parts.load_state_dict(rw.from_bigvgan_discriminators(reference.mpd.state_dict(),
                                                                 reference.mrd.state_dict(), t.D.parts))
    wav = ref.load_real(wavs, args.segment)[:1]
    batch = {"wav": wav, "mel": t.mel_fn(wav[:, 0])}
    fns = {"reference": lambda: ref.iteration(reference, batch["mel"], wav),
           "ours": lambda: t.vocoder_step(batch)}
    with _quiet():
        for fn in fns.values():
            fn()  # warm-up (one step each)
        load = CpuLoad()
        times, others = alternate(fns, args.train_repeats, torch.device("cpu"))
    return {"segment": args.segment, "batch": 1, "generator_width": args.train_width or 1536,
            "steps": {k: {"best_s": round(min(v), 2), "median_s": round(statistics.median(v), 2),
                          "other_cores_busy": others[k]} for k, v in times.items()},
            "speedup_vs_reference": round(paired_speedup(times["reference"], times["ours"]), 2),
            "load": load.summary()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--paths", default="reference,torch,onnxruntime")
    parser.add_argument("--segment", type=int, default=8192)
    parser.add_argument("--train-repeats", type=int, default=2)
    parser.add_argument("--train-width", type=int, default=0, help="generator initial channels (0: 1536)")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-inference", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.paths = [p for p in args.paths.split(",") if p]
    ref.require_bigvgan()
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"machine": machine_info(torch.device("cpu"))}
    if not args.skip_inference:
        inf = result["inference"] = bench_inference(args)
        print(f"\nBigVGAN-v2 (112M) inference, {inf['audio_seconds']} s of {inf['clip']}, {args.threads} threads, "
              f"{args.repeats} timed calls per path ({describe_load(inf['load'])})")
        print(f"{'path':<12} {'best s':>8} {'median s':>9} {'x real time':>12} {'vs reference':>13} {'max |diff|':>11}")
        for name, row in inf["paths"].items():
            print(f"{name:<12} {row['best_s']:>8} {row['median_s']:>9} {row['x_real_time']:>12} "
                  f"{row['speedup_vs_reference'] or '':>13} {row['max_abs_diff']:>11.2e}")
    if not args.skip_train:
        tr = result["training"] = bench_training(args)
        print(f"\nBigVGAN-v2 training step, batch 1 x {tr['segment']} samples, generator width "
              f"{tr['generator_width']}, {args.threads} threads ({describe_load(tr['load'])})")
        for name, row in tr["steps"].items():
            print(f"{name:<10} best {row['best_s']} s  median {row['median_s']} s")
        print(f"ours vs reference (within-round): {tr['speedup_vs_reference']}x")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
