"""The CUDA paths on a real GPU: the Trainer in fp32, bf16, fp16 (GradScaler) and with
``train.compile``; checkpoint save -> kill -> resume; features and inference on CUDA against the CPU.

Marked ``cuda``: run them with ``python -m pytest -m cuda`` on a machine with a GPU (the GPU kit,
benchmarks/gpu/run.sh, does). Without CUDA they are deselected from ordinary runs (tests/conftest.py)
and skip, naming the reason, when asked for with ``-m cuda``. ``GANPIPE_CUDA_TESTS_ON_CPU=1`` runs the
same assertions on the CPU (slow: a rehearsal of the thresholds, not a test of CUDA).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from ganpipe.config import parse_params
from ganpipe.models import TINY_OVERRIDES, build
from ganpipe.training import checkpoint as ckpt
from ganpipe.training.trainer import Trainer
from tests.support.training_data import deep_merge, train_paths

pytestmark = pytest.mark.cuda
REPO = Path(__file__).resolve().parents[2]
STEPS = 30


@pytest.fixture(scope="module")
def device() -> str:
    if os.environ.get("GANPIPE_CUDA_TESTS_ON_CPU") == "1":
        return "cpu"
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available (torch.cuda.is_available() is False): these tests need a GPU; "
                    "benchmarks/gpu/run.sh runs them there")
    return "cuda"


def _params_dict(device: str, **train: object) -> dict:
    """A tiny HiFi-GAN V1 that learns visibly in 30 steps: the generator alone at the demo's rate
    (mel + MR-STFT losses, as the demo trains), then every step logged."""
    return deep_merge({
        "model": {"variant": "hifigan_v1", "overrides": dict(TINY_OVERRIDES["hifigan_v1"])},
        "train": {"steps": STEPS, "batch_size": 4, "segment_samples": 8192, "num_workers": 0, "device": device,
                  "lr_generator": 2e-3, "lambda_stft": 45.0, "discriminator_start_step": 20,
                  "log_every": 1, "validate_every": 1000, "checkpoint_every": 1000, "samples_to_log": 1},
        "tracking": {"enabled": False}}, {"train": train})


_RUNS: dict[tuple, tuple[Trainer, dict]] = {}


def _train(corpus, tmp_path_factory, device: str, precision: str, compile: bool = False) -> tuple[Trainer, dict]:
    """One 30-step run per setting, shared by the tests of this module."""
    key = (device, precision, compile)
    if key not in _RUNS:
        out = tmp_path_factory.mktemp(f"cuda_{precision}_{'compiled' if compile else 'eager'}")
        trainer = Trainer(parse_params(_params_dict(device, precision=precision, compile=compile)),
                          train_paths(corpus, out), progress=False)
        t0 = time.perf_counter()
        metrics = trainer.run()
        print(f"{precision} compile={compile} on {device}: {STEPS} steps in {time.perf_counter() - t0:.1f} s")
        _RUNS[key] = (trainer, metrics)
    return _RUNS[key]


def _curve(trainer: Trainer, key: str) -> np.ndarray:
    return np.array([row[key] for row in trainer.history if key in row])


@pytest.mark.parametrize("precision,compile", [("fp32", False), ("bf16", False), ("fp16", False), ("bf16", True)],
                         ids=["fp32", "bf16", "fp16-gradscaler", "bf16-compile"])
def test_trainer_losses_are_finite_and_fall(device, demo_corpus, tmp_path_factory, precision, compile):
    trainer, metrics = _train(demo_corpus, tmp_path_factory, device, precision, compile)
    assert trainer.device.type == device and next(trainer.G.parameters()).device.type == device
    assert metrics["steps"] == STEPS and metrics["skipped_steps"] == 0
    mel = _curve(trainer, "g_mel_l1")
    assert len(mel) == STEPS and np.isfinite(mel).all(), mel
    for key in ("g_loss", "d_loss"):
        assert np.isfinite(_curve(trainer, key)).all(), key
    first, last = mel[:5].mean(), mel[-5:].mean()
    print(f"{precision} compile={compile}: mel L1 {first:.4f} (steps 1-5) -> {last:.4f} (steps 26-30)")
    assert last < 0.9 * first, f"mel L1 did not fall: {mel.round(4).tolist()}"
    if precision == "fp16":
        assert trainer.scaler.is_enabled()
        scales = _curve(trainer, "amp_scale")
        assert len(scales) == STEPS and (scales > 0).all()
    else:
        assert not trainer.scaler.is_enabled()
    if compile:
        assert type(trainer.G_train).__name__ == "OptimizedModule"


def test_bf16_curve_is_close_to_fp32(device, demo_corpus, tmp_path_factory):
    fp32, _ = _train(demo_corpus, tmp_path_factory, device, "fp32")
    bf16, _ = _train(demo_corpus, tmp_path_factory, device, "bf16")
    a, b = _curve(fp32, "g_mel_l1"), _curve(bf16, "g_mel_l1")
    rel = np.abs(a - b) / np.abs(a)
    print(f"bf16 vs fp32 mel L1, relative difference per step: max {rel.max():.3f}, "
          f"first {rel[0]:.4f}, last 5 mean {rel[-5:].mean():.3f}")
    # the same weights and batches: only the arithmetic differs (on the CPU's bf16: max 0.057, last 5: 0.010)
    assert rel.max() < 0.15 and abs(a[-5:].mean() - b[-5:].mean()) < 0.05 * a[-5:].mean()


WORKER = """
import sys
from pathlib import Path
from ganpipe.config import load_params
from ganpipe.training.trainer import TrainPaths, train
prepared, features, out = (Path(a) for a in sys.argv[2:5])
train(load_params(sys.argv[1]), TrainPaths(prepared=prepared, features=features, checkpoints=out / "ck",
      generator=out / "g.pt", metrics=out / "m.json", curve=out / "c.csv"), progress=False)
"""


def test_checkpoint_kill_resume(device, demo_corpus, tmp_path):
    every, steps = 5, 15
    data = _params_dict(device, steps=steps, checkpoint_every=every, keep_last=2, precision="bf16")
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(data))
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", WORKER, str(params_file), str(demo_corpus.prepared), str(demo_corpus.features),
           str(out)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300  # a guard against hanging, not a timing assertion
        while proc.poll() is None and time.monotonic() < deadline:
            dirs = [d for d in (out / "ck").glob("*") if d.is_dir()]
            if dirs and ckpt.list_checkpoints(dirs[0]):
                break
            time.sleep(0.01)
        assert proc.poll() is None, f"training ended before it could be killed:\n{proc.stderr.read()}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    (ck_dir,) = [d for d in (out / "ck").glob("*") if d.is_dir()]
    newest, newest_path = ckpt.list_checkpoints(ck_dir)[-1]
    assert newest < steps
    state = torch.load(newest_path, map_location="cpu", weights_only=True)
    trainer = Trainer(parse_params(data), train_paths(demo_corpus, out), progress=False)
    assert trainer.step == newest
    assert all(torch.equal(v.cpu(), state["generator"][k]) for k, v in trainer.G.state_dict().items())
    exp_avg = trainer.opt_g.state_dict()["state"][0]["exp_avg"]
    assert exp_avg.device.type == device and torch.equal(exp_avg.cpu(), state["opt_g"]["state"][0]["exp_avg"])
    metrics = trainer.run()
    assert metrics["steps"] == steps and metrics["skipped_steps"] == 0
    assert [r["step"] for r in trainer.history] == list(range(1, steps + 1))
    assert np.isfinite(_curve(trainer, "g_loss")).all()


def test_features_on_cuda_equal_cpu(device, demo_corpus, tmp_path):
    from ganpipe.features import extract_features

    mel = parse_params({}).mel_config()
    manifest = demo_corpus.prepared / "manifest.csv"
    for dev in ("cpu", device):
        extract_features(manifest, demo_corpus.prepared, tmp_path / dev, mel, device=dev, workers=2)
    worst = 0.0
    for path in sorted((tmp_path / "cpu").rglob("*.npy")):
        a = np.load(path)
        b = np.load(tmp_path / device / path.relative_to(tmp_path / "cpu"))
        assert a.shape == b.shape, path.name
        worst = max(worst, float(np.abs(a - b).max()))
    print(f"features {device} vs cpu: max |Δ| {worst:.2e} (log-mel)")
    assert worst <= 1e-4


@pytest.mark.parametrize("variant", ["hifigan_v1", "hifigan_v3"])
def test_inference_on_cuda_equals_cpu(device, variant):
    from ganpipe.serving.backends import prepare_for_inference

    torch.manual_seed(0)
    generator = build(variant, **TINY_OVERRIDES[variant]).generator
    mel = torch.randn(2, 80, 200) - 4.0
    cpu = prepare_for_inference(generator, backend="torch", device="cpu")(mel)
    gpu = prepare_for_inference(generator, backend="torch", device=device)(mel.to(device))
    assert gpu.device.type == device
    diff = float((gpu.float().cpu() - cpu).abs().max())
    print(f"{variant} inference {device} vs cpu (fp32): max |Δ| {diff:.2e}, output peak {cpu.abs().max():.3f}")
    assert diff <= 1e-3
