"""The GPU kit (issue 13): one run that checks and measures ganpipe on CUDA, side by side with the
reference trainer. ``benchmarks/gpu/run.sh`` installs the carried wheels and calls this; see
benchmarks/gpu/README.md for the exact device command.

Sections, in this order (cheap and most informative first); each one's failure is recorded and the
next one still runs; the JSON is rewritten after every section, so a run cut short keeps what it did:

1. ``environment``: GPU, driver, torch / CUDA / cuDNN versions, bf16 support, package versions.
2. ``cuda_tests``: ``python -m pytest -m cuda tests/training/test_cuda.py`` (its output goes to the log).
3. ``train_throughput``: HiFi-GAN V1, batch 16 x 8192 samples: jik876's ``train.py`` iteration
   (its models and loss functions from ``hifi-gan==0.0.2``, AdamW, fp32) vs ours (the Trainer's
   step) in fp32, bf16 and bf16 + ``train.compile``, every one fed by the Trainer's own DataLoader
   from the demo corpus' real features: steps/s, mel frames/s, peak GPU memory, data-wait fraction.
4. ``inference``: HiFi-GAN V1 and V3, batch 1 and 16 x 10 s, fp32 and bf16: x real time, max |Δ|
   of bf16 against fp32.
5. ``end_to_end``: the demo corpus through the library (no DVC, no Prefect, tracking off): generate,
   prepare, features, 200 training steps, evaluate, with the wall time of each.

Modes (``--mode``, default ``auto``): ``gpu`` (the sizes above); ``cpu`` (no CUDA: everything
shrunk so that the rehearsal ends in minutes; CUDA-only parts skipped with a line saying so);
``dry`` (no CUDA, tiny everything, no pytest sub-run: the CI check that the kit has not rotted).
``auto`` = ``gpu`` with CUDA, else ``cpu``. Results: ``<out>/kit.json`` and ``<out>/kit.log``
(``<out>`` = ``--out``, else ``$OUT``, else ``benchmarks/gpu/results``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

log = logging.getLogger("gpukit")
# NVIDIA's published HiFi-GAN V1 training throughput (AMP, one A100): the yardstick
NVIDIA_A100_MEL_FRAMES_PER_S = 15_600


@dataclass(frozen=True)
class Sizes:
    mode: str
    v1_width: int | None  # the V1 generator's upsample_initial_channel in the throughput runs (None: 512)
    batch: int
    segment: int
    warmup: int  # untimed steps per configuration (compiled: twice as many)
    steps: int  # timed steps per configuration, at most ...
    seconds_per_config: float  # ... or until this much time was timed
    num_workers: int
    compile: bool  # the bf16 + compile configuration
    infer_seconds: float
    infer_batches: tuple[int, ...]
    infer_reps: int
    infer_tiny: bool  # TINY_OVERRIDES models (dry)
    e2e_steps: int
    demo: dict[str, Any] = field(default_factory=dict)  # dataset.demo overrides (empty: params.yaml's)
    split: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)  # evaluation overrides of the end-to-end run
    pytest: bool = True
    budget_s: float = 450.0  # the kit's own deadline: later sections shrink or skip past it


SIZES = {
    "gpu": Sizes("gpu", None, 16, 8192, 5, 60, 20.0, 4, True, 10.0, (1, 16), 10, False, 200),
    "cpu": Sizes("cpu", 32, 2, 2048, 1, 2, 10.0, 1, False, 1.0, (1, 2), 1, False, 10,
                 demo={"n_speakers": 2, "utterances_per_speaker": 10, "min_seconds": 1.0, "max_seconds": 2.0},
                 split={"valid_fraction": 0.2, "test_fraction": 0.2},
                 evaluation={"max_utterances": 2, "griffin_lim_iterations": 4}, budget_s=900.0),
    "dry": Sizes("dry", 16, 1, 2048, 0, 1, 5.0, 0, False, 0.2, (1,), 1, True, 2,
                 demo={"n_speakers": 2, "utterances_per_speaker": 5, "min_seconds": 0.8, "max_seconds": 1.2},
                 split={"valid_fraction": 0.2, "test_fraction": 0.2},
                 evaluation={"max_utterances": 1, "griffin_lim_iterations": 0}, pytest=False, budget_s=300.0),
}


class Kit:
    def __init__(self, sizes: Sizes, out: Path, work: Path):
        self.sizes, self.out, self.work = sizes, out, work
        self.t0 = time.perf_counter()
        self.results: dict[str, Any] = {"mode": sizes.mode, "sizes": asdict(sizes), "sections": {}}
        import torch

        self.cuda = torch.cuda.is_available()
        self.device = "cuda" if self.cuda else "cpu"
        self._demo: tuple[Path, Path, Path] | None = None

    # -- bookkeeping ----------------------------------------------------------------------------
    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def left(self) -> float:
        return self.sizes.budget_s - self.elapsed()

    def save(self) -> None:
        self.results["wall_seconds"] = round(self.elapsed(), 1)
        tmp = self.out / "kit.json.tmp"
        tmp.write_text(json.dumps(self.results, indent=2, default=str))
        tmp.replace(self.out / "kit.json")

    def section(self, name: str, fn: Callable[[], dict[str, Any]]) -> None:
        log.info("==== %s (%.0f s into the kit, %.0f s of its budget left)", name, self.elapsed(), self.left())
        t0 = time.perf_counter()
        try:
            result = fn()
            status = result.pop("status", "ok")
        except Exception as exc:  # noqa: BLE001 - recorded; the next section still runs
            log.error("%s FAILED: %s\n%s", name, exc, traceback.format_exc())
            result, status = {"error": f"{type(exc).__name__}: {exc}"}, "failed"
        result = {"status": status, "seconds": round(time.perf_counter() - t0, 1), **result}
        self.results["sections"][name] = result
        log.info("==== %s: %s in %.1f s", name, status, result["seconds"])
        self.save()

    def skip(self, what: str, why: str) -> dict[str, str]:
        log.info("SKIPPED %s: %s", what, why)
        return {"skipped": why}

    def sync(self) -> None:
        if self.cuda:
            import torch

            torch.cuda.synchronize()

    def workers(self) -> int:
        """Processes for prepare (1 in the dry CI check: no pool)."""
        return 1 if self.sizes.mode == "dry" else min(8, os.cpu_count() or 1)

    # -- 1. environment -------------------------------------------------------------------------
    def environment(self) -> dict[str, Any]:
        import importlib.metadata as md

        import torch

        env: dict[str, Any] = {
            "python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform(),
            "cpus": os.cpu_count(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "cuda_available": self.cuda,
            "tf32": {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32},
        }
        packages = {}
        for name in ("torchaudio", "numpy", "scipy", "pandas", "pydantic", "soundfile", "soxr", "numba", "librosa",
                     "hifi-gan", "pysptk", "pyworld", "pesq", "triton", "pytest", "mlflow", "prefect", "dvc"):
            try:
                packages[name] = md.version(name)
            except md.PackageNotFoundError:
                packages[name] = None
        env["packages"] = packages
        if self.cuda:
            p = torch.cuda.get_device_properties(0)
            env["gpu"] = {"name": p.name, "capability": f"{p.major}.{p.minor}", "memory_gib": round(p.total_memory / 2**30, 1),
                          "multiprocessors": p.multi_processor_count, "bf16": torch.cuda.is_bf16_supported(),
                          "count": torch.cuda.device_count()}
            try:
                smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm",
                                      "--format=csv,noheader"], capture_output=True, text=True, timeout=30)
                env["nvidia_smi"] = smi.stdout.strip() or smi.stderr.strip()
            except (OSError, subprocess.TimeoutExpired) as exc:
                env["nvidia_smi"] = f"not run: {exc}"
        else:
            env["gpu"] = self.skip("GPU properties", "no CUDA device (torch.cuda.is_available() is False)")
        log.info("environment: %s", json.dumps(env, default=str))
        return env

    # -- 2. pytest -m cuda ----------------------------------------------------------------------
    def cuda_tests(self) -> dict[str, Any]:
        if not self.sizes.pytest:
            return {"status": "skipped", **self.skip("pytest -m cuda", "dry mode (the CI check runs no sub-pytest)")}
        cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "tests/training/test_cuda.py", "-v", "-s", "-p", "no:cacheprovider",
               "-o", "timeout=300"]
        log.info("running: %s", " ".join(cmd))
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        timeout = max(60.0, min(330.0, self.left() - 120))
        try:
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
            log.info("pytest output:\n%s", out)
            return {"status": "failed", "error": f"pytest -m cuda ran past {timeout:.0f} s"}
        log.info("pytest output:\n%s%s", proc.stdout, proc.stderr[-4000:])
        tail = [line for line in proc.stdout.splitlines() if line.strip()][-1:] or [""]
        lines = [line for line in proc.stdout.splitlines() if line.startswith("tests/training/test_cuda.py::")]
        measured = [line for line in proc.stdout.splitlines()
                    if any(k in line for k in ("max |Δ|", "mel L1", "relative difference", "steps in"))]
        status = "ok" if proc.returncode == 0 else "failed"
        if not self.cuda and proc.returncode == 0:
            status = "skipped"
        return {"status": status, "returncode": proc.returncode, "summary": tail[0], "tests": lines,
                "measured": measured}

    # -- the demo corpus (shared by the throughput runs) -----------------------------------------
    def params(self, overrides: dict[str, Any]) -> Any:
        """params.yaml with ``overrides`` deep-merged (validated)."""
        import yaml

        from ganpipe.config import parse_params

        data = yaml.safe_load((REPO / "params.yaml").read_text())

        def merge(base: dict, extra: dict) -> None:
            for k, v in extra.items():
                if isinstance(v, dict) and isinstance(base.get(k), dict):
                    merge(base[k], v)
                else:
                    base[k] = v

        merge(data, {"dataset": {"demo": dict(self.sizes.demo)}, "split": dict(self.sizes.split),
                     "tracking": {"enabled": False}})
        merge(data, overrides)
        return parse_params(data)

    def demo_data(self) -> tuple[Path, Path, Path]:
        """(raw, prepared, features) of the demo corpus, made once through the library API."""
        if self._demo is None:
            from ganpipe.datasets import demo
            from ganpipe.datasets.layouts import discover
            from ganpipe.features import extract_features
            from ganpipe.prepare import prepare_corpus

            params = self.params({})
            root = self.work / "demo"
            raw, prepared, features = root / "raw", root / "prepared", root / "features"
            t0 = time.perf_counter()
            demo.generate(raw, params.dataset.demo)
            prepare_corpus(discover("demo", raw), prepared, params.audio, params.split,
                           workers=self.workers(), progress=False, dataset="demo")
            extract_features(prepared / "manifest.csv", prepared, features, params.mel_config(), device=self.device)
            log.info("demo corpus for the throughput runs: %.1f s (generate + prepare + features)", time.perf_counter() - t0)
            self._demo = (raw, prepared, features)
        return self._demo

    # -- 3. training throughput -----------------------------------------------------------------
    def _trainer(self, precision: str, compile: bool, tiny: bool = False) -> Any:
        from ganpipe.config import parse_params
        from ganpipe.models import TINY_OVERRIDES
        from ganpipe.training.trainer import Trainer, TrainPaths

        s = self.sizes
        _, prepared, features = self.demo_data()
        overrides = dict(TINY_OVERRIDES["hifigan_v1"]) if tiny else (
            {"upsample_initial_channel": s.v1_width} if s.v1_width else {})
        params = parse_params({
            "model": {"variant": "hifigan_v1", "overrides": overrides},
            "train": {"steps": 10**6, "batch_size": s.batch, "segment_samples": s.segment, "num_workers": s.num_workers,
                      "device": self.device, "precision": precision, "compile": compile, "log_every": 10**6,
                      "validate_every": 10**6, "checkpoint_every": 10**6},
            "tracking": {"enabled": False}})
        out = Path(tempfile.mkdtemp(prefix="ganpipe-kit-train-", dir=self.work))
        paths = TrainPaths(prepared=prepared, features=features, checkpoints=out / "ck", generator=out / "g.pt",
                           metrics=out / "m.json", curve=out / "c.csv")
        return Trainer(params, paths, progress=False)

    def _jik876(self, trainer: Any) -> Callable[[dict[str, Any]], dict[str, float]]:
        """jik876's train.py iteration on the device: its models (V1, our run's generator width),
        loss functions and mel loss, AdamW(lr, betas) for G and for chain(msd, mpd), fp32."""
        import itertools
        import warnings

        import torch

        from tests.support import oracles
        from tests.support.reference_step import jik876_iteration

        h = jik876_config("hifigan_v1", trainer, self.sizes.v1_width)
        m = oracles.hifigan_models()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            generator, mpd, msd = m.Generator(h), m.MultiPeriodDiscriminator(), m.MultiScaleDiscriminator()
        generator, mpd, msd = (net.to(trainer.device).train() for net in (generator, mpd, msd))
        optim_g = torch.optim.AdamW(generator.parameters(), h.learning_rate, betas=[h.adam_b1, h.adam_b2])
        optim_d = torch.optim.AdamW(itertools.chain(msd.parameters(), mpd.parameters()), h.learning_rate,
                                    betas=[h.adam_b1, h.adam_b2])
        mel_spectrogram = oracles.jik876_mel_spectrogram()

        def loss_mel(w: torch.Tensor) -> torch.Tensor:
            return mel_spectrogram(w, h.n_fft, h.num_mels, h.sampling_rate, h.hop_size, h.win_size, h.fmin,
                                   h.fmax_for_loss)

        def step(batch: dict[str, Any]) -> dict[str, float]:
            return jik876_iteration(m, generator, mpd, msd, optim_g, optim_d, loss_mel, batch["mel"], batch["wav"])

        step.parameters = sum(p.numel() for p in generator.parameters())  # type: ignore[attr-defined]
        return step

    def _timed(self, name: str, batches: Iterator[dict[str, Any]], step: Callable[[dict[str, Any]], Any],
               warmup: int) -> dict[str, Any]:
        import torch

        s = self.sizes
        for _ in range(warmup):
            step(next(batches))
        self.sync()
        if self.cuda:
            torch.cuda.reset_peak_memory_stats()
        waits, totals = [], []
        limit = min(s.seconds_per_config, max(5.0, self.left() / 4))
        while len(totals) < s.steps and (sum(totals) < limit or len(totals) < 2):
            t0 = time.perf_counter()
            batch = next(batches)
            self.sync()  # the host-to-device copy done: the data is there
            t1 = time.perf_counter()
            step(batch)  # both steps read their losses back to the host (a sync), as training logs them
            self.sync()
            t2 = time.perf_counter()
            waits.append(t1 - t0)
            totals.append(t2 - t0)
        total = sum(totals)
        frames = s.batch * (s.segment // 256)
        row = {"timed_steps": len(totals), "steps_per_s": round(len(totals) / total, 3),
               "mel_frames_per_s": round(len(totals) * frames / total, 1),
               "median_step_ms": round(1000 * statistics.median(totals), 2),
               "data_wait_fraction": round(sum(waits) / total, 4),
               "peak_gpu_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if self.cuda else None}
        log.info("%-22s %s", name, row)
        return row

    def train_throughput(self) -> dict[str, Any]:
        import gc

        import torch

        s = self.sizes
        configs: list[tuple[str, str, bool]] = [("reference fp32 (jik876)", "fp32", False), ("ours fp32", "fp32", False),
                                                ("ours bf16", "bf16", False)]
        out: dict[str, Any] = {"variant": "hifigan_v1", "generator_width": s.v1_width or 512, "batch": s.batch,
                               "segment_samples": s.segment, "num_workers": s.num_workers, "device": self.device,
                               "configs": {}}
        if s.compile:
            configs.append(("ours bf16 + compile", "bf16", True))
        else:
            out["configs"]["ours bf16 + compile"] = self.skip(
                "ours bf16 + compile", "no CUDA: compiling full HiFi-GAN V1 and its discriminators takes minutes "
                "on a CPU (train.compile on a GPU: tests/training/test_cuda.py and the gpu mode)")
        for name, precision, compile in configs:
            if self.left() < (90 if compile else 30):
                out["configs"][name] = self.skip(name, f"the kit's time budget is nearly spent ({self.left():.0f} s left)")
                continue
            try:
                if name.startswith("reference"):
                    # the reference is fed by the Trainer's loader too (a tiny-model Trainer: its data only)
                    feeder = self._trainer("fp32", False, tiny=True)
                    step = self._jik876(feeder)
                    out["reference_generator_parameters"] = step.parameters  # type: ignore[attr-defined]
                    row = self._timed(name, feeder.batches(), step, s.warmup)
                else:
                    trainer = self._trainer(precision, compile)
                    out["generator_parameters"] = sum(p.numel() for p in trainer.G.parameters())

                    def step(batch: dict[str, Any], t: Any = trainer) -> dict[str, float]:
                        logs = t.vocoder_step(batch)  # what Trainer.run does per step
                        t.ema_update()
                        t.step += 1
                        return {k: float(v) for k, v in logs.items()}

                    t0 = time.perf_counter()
                    batches = trainer.batches()
                    step(next(batches))
                    self.sync()
                    first = time.perf_counter() - t0
                    row = self._timed(name, batches, step, s.warmup * (2 if compile else 1))
                    row["first_step_s"] = round(first, 2)  # compile: the compilation
            except Exception as exc:  # noqa: BLE001 - one configuration failing is a result too
                log.error("%s FAILED: %s\n%s", name, exc, traceback.format_exc())
                row = {"error": f"{type(exc).__name__}: {exc}"}
            out["configs"][name] = row
            gc.collect()
            if self.cuda:
                torch.cuda.empty_cache()
            self.save()
        ref = out["configs"].get("reference fp32 (jik876)", {}).get("mel_frames_per_s")
        for row in out["configs"].values():
            if ref and isinstance(row, dict) and row.get("mel_frames_per_s"):
                row["x_reference"] = round(row["mel_frames_per_s"] / ref, 3)
                row["x_nvidia_a100_amp"] = round(row["mel_frames_per_s"] / NVIDIA_A100_MEL_FRAMES_PER_S, 3)
        if not self.cuda:
            out["note"] = "no CUDA: a CPU rehearsal at reduced sizes (checks the code path; not a measurement)"
        return out

    # -- 4. inference ---------------------------------------------------------------------------
    def inference(self) -> dict[str, Any]:
        import torch

        from ganpipe.models import TINY_OVERRIDES, build
        from ganpipe.serving.backends import prepare_for_inference

        s = self.sizes
        frames = max(32, int(s.infer_seconds * 22050 / 256))
        audio_seconds = frames * 256 / 22050
        out: dict[str, Any] = {"audio_seconds_per_item": round(audio_seconds, 3), "device": self.device, "rows": []}
        for variant in ("hifigan_v1", "hifigan_v3"):
            torch.manual_seed(0)
            generator = build(variant, **(TINY_OVERRIDES[variant] if s.infer_tiny else {})).generator
            fast = prepare_for_inference(generator, backend="torch", device=self.device, verify=False)
            for batch in s.infer_batches:
                if self.left() < 20:
                    out["rows"].append({"variant": variant, "batch": batch, **self.skip(
                        f"inference {variant} batch {batch}", "the kit's time budget is nearly spent")})
                    continue
                gen = torch.Generator().manual_seed(batch)
                mel = (torch.randn(batch, 80, frames, generator=gen) - 5.0).to(self.device)
                ref = None
                for precision in ("fp32", "bf16"):
                    ctx = (torch.autocast(self.device, dtype=torch.bfloat16) if precision == "bf16"
                           else contextlib.nullcontext())

                    def call(ctx=ctx, module=fast.module, mel=mel) -> torch.Tensor:
                        with ctx, torch.inference_mode():
                            return module(mel).float()

                    wav = call()  # warm-up (cuDNN autotuning, allocations)
                    self.sync()
                    times = []
                    for _ in range(s.infer_reps):
                        t0 = time.perf_counter()
                        wav = call()
                        self.sync()
                        times.append(time.perf_counter() - t0)
                    t = statistics.median(times)
                    row = {"variant": variant, "batch": batch, "precision": precision, "median_s": round(t, 5),
                           "x_real_time": round(batch * audio_seconds / t, 1)}
                    if ref is None:
                        ref = wav
                    else:
                        row["max_abs_diff_vs_fp32"] = float((wav - ref).abs().max())
                    log.info("inference %s", row)
                    out["rows"].append(row)
                del mel, ref
            del fast, generator
            if self.cuda:
                torch.cuda.empty_cache()
        if not self.cuda:
            out["note"] = "no CUDA: CPU rehearsal at reduced sizes (checks the code path; not a measurement)"
        return out

    # -- 5. end to end --------------------------------------------------------------------------
    def end_to_end(self) -> dict[str, Any]:
        import pandas as pd

        from ganpipe import evaluation as E
        from ganpipe.datasets import demo
        from ganpipe.datasets.layouts import discover
        from ganpipe.features import extract_features
        from ganpipe.generator_io import load_generator
        from ganpipe.prepare import prepare_corpus
        from ganpipe.training.trainer import TrainPaths, train

        s = self.sizes
        if self.left() < 45:
            return {"status": "skipped", **self.skip("end to end", f"the kit's time budget is nearly spent "
                                                                  f"({self.left():.0f} s left)")}
        steps = s.e2e_steps
        params = self.params({
            "train": {"steps": steps, "device": self.device, "checkpoint_every": steps, "validate_every": steps,
                      "log_every": max(1, steps // 10), "num_workers": 0},
            "features": {"device": self.device}, "evaluation": {"device": self.device, **s.evaluation}})
        root = self.work / "e2e"
        raw, prepared, features = root / "raw", root / "prepared", root / "features"
        stages: dict[str, float] = {}

        @contextlib.contextmanager
        def stage(name: str) -> Iterator[None]:
            t0 = time.perf_counter()
            yield
            self.sync()
            stages[name] = round(time.perf_counter() - t0, 2)
            log.info("end-to-end %s: %.2f s", name, stages[name])

        with stage("generate (the download stage of the demo)"):
            demo.generate(raw, params.dataset.demo)
        with stage("prepare"):
            prepare_corpus(discover("demo", raw), prepared, params.audio, params.split,
                           workers=self.workers(), progress=False, dataset="demo")
        fp = params.features
        with stage("features"):
            extract_features(prepared / "manifest.csv", prepared, features, params.mel_config(),
                             shard_size=fp.shard_size, device=self.device, batch_seconds=fp.batch_seconds,
                             workers=fp.workers)
        paths = TrainPaths(prepared=prepared, features=features, checkpoints=root / "checkpoints",
                           generator=root / "models" / "generator.pt", metrics=root / "metrics" / "train.json",
                           curve=root / "plots" / "train_loss.csv")
        with stage(f"train ({steps} steps)"):
            metrics = train(params, paths, progress=False)
        ev = params.evaluation
        with stage("evaluate"):
            loaded = load_generator(paths.generator, self.device)
            manifest = pd.read_csv(prepared / "manifest.csv", keep_default_na=False, dtype={"utt_id": str, "speaker": str})
            rows = manifest[manifest["split"] == ev.split]
            if ev.max_utterances:
                rows = rows.head(ev.max_utterances)
            items = [(r.utt_id, str(prepared / r.path), r.speaker) for r in rows.itertuples()]
            result = E.evaluate_vocoder(loaded, items, self.device, ev.samples_to_save, ev.griffin_lim_iterations)
        keep = ("steps", "steps_per_second", "audio_seconds_per_second", "g_loss", "val_mel_l1_initial", "val_mel_l1")
        return {"variant": params.model.variant, "device": self.device, "stage_seconds": stages,
                "total_seconds": round(sum(stages.values()), 2),
                "train": {k: metrics.get(k) for k in keep}, "evaluate": result.summary}


def jik876_config(variant: str, trainer: Any, width: int | None = None) -> Any:
    """jik876's ``config_v1.json`` / ``config_v3.json`` (the keys its models and train.py read),
    from our variant's published sizes, this run's generator width, our mel and the jik876 recipe
    (tests/project/test_gpu_kit.py checks it against the published file in ../shared/reference)."""
    from ganpipe.models.hifigan import HIFIGAN_V1, HIFIGAN_V3
    from tests.support.oracles import AttrDict

    c = {"hifigan_v1": HIFIGAN_V1, "hifigan_v3": HIFIGAN_V3}[variant]
    r, mel = trainer.recipe, trainer.mel_config
    return AttrDict({
        "resblock": c.resblock, "upsample_rates": list(c.upsample_rates),
        "upsample_kernel_sizes": list(c.upsample_kernel_sizes),
        "upsample_initial_channel": width or c.upsample_initial_channel,
        "resblock_kernel_sizes": list(c.resblock_kernel_sizes),
        "resblock_dilation_sizes": [list(d) for d in c.resblock_dilation_sizes],
        "learning_rate": r.lr_generator, "adam_b1": r.adam_betas[0], "adam_b2": r.adam_betas[1], "lr_decay": r.lr_gamma,
        "segment_size": r.segment_samples, "num_mels": mel.n_mels, "n_fft": mel.n_fft, "hop_size": mel.hop_length,
        "win_size": mel.win_length, "sampling_rate": mel.sample_rate, "fmin": mel.fmin, "fmax": mel.fmax,
        "fmax_for_loss": r.mel_loss_fmax,
    })


def _setup_logging(out: Path) -> None:
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in (logging.StreamHandler(sys.stdout), logging.FileHandler(out / "kit.log", mode="w")):
        handler.setFormatter(fmt)
        root.addHandler(handler)
    for noisy in ("numba", "matplotlib", "PIL", "torch._inductor", "torch._dynamo"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def summary_lines(results: dict[str, Any]) -> list[str]:
    """A short table of the headline numbers (the device reply keeps the end of the output)."""
    sec = results["sections"]
    lines = [f"GPU kit, mode {results['mode']}, {results.get('wall_seconds')} s"]
    for name, r in sec.items():
        lines.append(f"  {name}: {r.get('status')} ({r.get('seconds')} s)" + (f" {r['error']}" if "error" in r else ""))
    env = sec.get("environment", {})
    if isinstance(env.get("gpu"), dict) and "name" in env["gpu"]:
        lines.append(f"  GPU {env['gpu']['name']}, driver: {env.get('nvidia_smi')}, torch {env.get('torch')}")
    ct = sec.get("cuda_tests", {})
    if ct.get("summary"):
        lines.append(f"  pytest -m cuda: {ct['summary']}")
    for name, row in sec.get("train_throughput", {}).get("configs", {}).items():
        if "mel_frames_per_s" in row:
            lines.append(f"  train {name:24s} {row['steps_per_s']:8.3f} steps/s {row['mel_frames_per_s']:10.0f} mel frames/s "
                         f"x{row.get('x_reference', float('nan')):.2f} ref, wait {100 * row['data_wait_fraction']:.1f} %, "
                         f"peak {row['peak_gpu_memory_gib']} GiB")
        else:
            lines.append(f"  train {name:24s} {row.get('skipped') or row.get('error')}")
    for row in sec.get("inference", {}).get("rows", []):
        if "x_real_time" in row:
            lines.append(f"  infer {row['variant']} b{row['batch']} {row['precision']}: {row['x_real_time']}x real time"
                         + (f", max|Δ| vs fp32 {row['max_abs_diff_vs_fp32']:.2e}" if "max_abs_diff_vs_fp32" in row else ""))
    e2e = sec.get("end_to_end", {})
    if "stage_seconds" in e2e:
        lines.append("  end-to-end: " + ", ".join(f"{k} {v} s" for k, v in e2e["stage_seconds"].items()))
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=["auto", "gpu", "cpu", "dry"], default="auto")
    ap.add_argument("--out", type=Path, default=None, help="results folder (default: $OUT, else benchmarks/gpu/results)")
    ap.add_argument("--budget", type=float, default=None, help="the kit's own deadline in seconds (default: per mode)")
    ap.add_argument("--only", default="", help="comma-separated sections to run (default: all)")
    args = ap.parse_args(argv)
    import torch

    mode = args.mode if args.mode != "auto" else ("gpu" if torch.cuda.is_available() else "cpu")
    if mode == "gpu" and not torch.cuda.is_available():
        ap.error("--mode gpu needs CUDA (torch.cuda.is_available() is False)")
    sizes = SIZES[mode]
    if args.budget:
        sizes = replace(sizes, budget_s=args.budget)
    out = args.out or Path(os.environ.get("OUT") or REPO / "benchmarks" / "gpu" / "results")
    out.mkdir(parents=True, exist_ok=True)
    _setup_logging(out)
    os.environ.setdefault("MPLBACKEND", "Agg")
    if not torch.cuda.is_available():
        torch.set_num_threads(1)  # a shared small CPU: one intra-op thread is faster and steadier
        log.info("NO CUDA: mode %s — sizes shrunk, CUDA-only parts skipped with a line saying so", mode)
    with tempfile.TemporaryDirectory(prefix="ganpipe-kit-") as work:
        kit = Kit(sizes, out, Path(work))
        sections = {"environment": kit.environment, "cuda_tests": kit.cuda_tests,
                    "train_throughput": kit.train_throughput, "inference": kit.inference, "end_to_end": kit.end_to_end}
        only = [s for s in args.only.split(",") if s]
        for name, fn in sections.items():
            if only and name not in only:
                continue
            kit.section(name, fn)
        kit.save()
    for line in summary_lines(kit.results):
        print(line, flush=True)
    failed = [n for n, r in kit.results["sections"].items() if r["status"] == "failed"]
    print(f"GPU kit: {len(kit.results['sections'])} sections, failed: {', '.join(failed) or 'none'}; "
          f"results in {out}/kit.json and {out}/kit.log", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
