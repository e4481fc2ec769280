"""Checkpoints: resume after ``kill -9`` (bit-identical to an uninterrupted run), corrupt-file
fallback, keep-last-K, safe loading."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from ganpipe.config import parse_params
from ganpipe.training import checkpoint as ckpt
from ganpipe.training.trainer import Trainer, train
from tests.support.training_data import tiny_params_dict, train_paths

REPO = Path(__file__).resolve().parents[2]
WORKER = """
import logging
import sys
from pathlib import Path
logging.basicConfig(level=logging.WARNING)
logging.getLogger("ganpipe").setLevel(logging.INFO)  # the loss lines ("step N/16: ...") on stderr
from ganpipe.config import load_params
from ganpipe.training.trainer import TrainPaths, train
prepared, features, out = (Path(a) for a in sys.argv[2:5])
train(load_params(sys.argv[1]), TrainPaths(prepared=prepared, features=features, checkpoints=out / "ck",
      generator=out / "g.pt", metrics=out / "m.json", curve=out / "c.csv"), progress=True)
"""


def _checkpoints(out: Path) -> list[tuple[int, Path]]:
    dirs = [d for d in (out / "ck").glob("*") if d.is_dir()]
    assert len(dirs) <= 1, dirs
    return ckpt.list_checkpoints(dirs[0]) if dirs else []


def _state_dicts_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # a training subprocess, killed and resumed
def test_resume_after_kill_9_continues_from_the_newest_checkpoint(demo_corpus, tmp_path):
    # 6 training utterances, batch 2: 3 batches per epoch, so checkpoints every 4 steps fall
    # mid-epoch; EMA and the per-epoch LR decay are on, so their state must survive too
    every, steps = 4, 16
    data = tiny_params_dict("hifigan_v3", train={"steps": steps, "checkpoint_every": every, "keep_last": 2,
                                                 "ema_decay": 0.9})
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(data))
    params = parse_params(data)
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-c", WORKER, str(params_file), str(demo_corpus.prepared),
           str(demo_corpus.features), str(killed)]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180  # a guard against hanging, not a timing assertion
        while proc.poll() is None and time.monotonic() < deadline:
            done = _checkpoints(killed)
            if done and done[-1][0] >= 2 * every:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"training ended before it could be killed:\n{proc.stderr.read()}"
        os.kill(proc.pid, signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    reached = max([int(n) for n in re.findall(rf"(\d+)/{steps}\b", err)] or [0])

    newest, newest_path = _checkpoints(killed)[-1]
    assert newest % every == 0 and newest >= 2 * every and newest < steps
    assert newest <= reached <= newest + every  # at most checkpoint_every steps are lost (from the log lines)
    state = torch.load(newest_path, map_location="cpu", weights_only=True)
    assert state["step"] == newest and state["opt_g"]["state"] and state["opt_d"]["state"]

    paths = train_paths(demo_corpus, killed)
    trainer = Trainer(params, paths, progress=False)
    assert trainer.step == newest
    assert trainer.epoch == state["epoch"] and trainer.batch_in_epoch == state["batch_in_epoch"]
    assert torch.equal(trainer.opt_g.state_dict()["state"][0]["step"], state["opt_g"]["state"][0]["step"])
    assert torch.equal(trainer.opt_g.state_dict()["state"][0]["exp_avg"], state["opt_g"]["state"][0]["exp_avg"])
    assert _state_dicts_equal(trainer.G.state_dict(), state["generator"])
    assert [r["step"] for r in trainer.history] == list(range(1, newest + 1))
    metrics = trainer.run()
    assert metrics["steps"] == steps and metrics["skipped_steps"] == 0
    assert [r["step"] for r in trainer.history] == list(range(1, steps + 1))
    assert "val_mel_l1_initial" in metrics and "val_mel_l1" in metrics
    assert [s for s, _ in _checkpoints(killed)] == [steps - every, steps]  # keep_last: 2

    # the same run without interruption ends with bit-identical weights and optimiser state
    reference = tmp_path / "reference"
    ref_metrics = train(params, train_paths(demo_corpus, reference), progress=False)
    a = torch.load(_checkpoints(killed)[-1][1], map_location="cpu", weights_only=True)
    b = torch.load(_checkpoints(reference)[-1][1], map_location="cpu", weights_only=True)
    for key in ("generator", "discriminators", "ema"):
        assert _state_dicts_equal(a[key], b[key]), f"{key} differs from the uninterrupted run"
    assert torch.equal(a["opt_d"]["state"][0]["exp_avg_sq"], b["opt_d"]["state"][0]["exp_avg_sq"])
    assert a["sched_g"] == b["sched_g"] and a["epoch"] == b["epoch"]
    assert metrics["g_loss"] == ref_metrics["g_loss"]
    assert metrics["val_mel_l1_initial"] == ref_metrics["val_mel_l1_initial"]
    ga = torch.load(paths.generator, weights_only=True)["state_dict"]
    gb = torch.load(reference / "g.pt", weights_only=True)["state_dict"]
    assert _state_dicts_equal(ga, gb)


def test_corrupt_newest_checkpoint_falls_back_and_keep_last_is_honoured(demo_corpus, tmp_path):
    params = parse_params(tiny_params_dict("melgan", train={"steps": 4, "checkpoint_every": 1, "keep_last": 3}))
    paths = train_paths(demo_corpus, tmp_path)
    first = train(params, paths, progress=False)
    found = _checkpoints(tmp_path)
    assert [s for s, _ in found] == [2, 3, 4]
    for step, path in found:  # plain data only
        assert torch.load(path, map_location="cpu", weights_only=True)["step"] == step
    ck_dir = found[0][1].parent

    # a finished run re-run: nothing to train, same metrics (including the initial validation)
    again = train(params, paths, progress=False)
    assert again["steps"] == 4 and again["val_mel_l1_initial"] == first["val_mel_l1_initial"]
    assert again["val_mel_l1"] == first["val_mel_l1"]
    # ... and the throughput of the training that made the model (steps and wall time kept in the
    # checkpoint), not the 0 steps/s of the re-run itself
    timed = ckpt.load_latest(ck_dir)["timed"]
    spent = timed["seconds"]
    assert timed["steps"] == 4 and spent > 0
    # (the re-run's own few microseconds of loop are counted too: equal to rounding, not bitwise)
    assert again["steps_per_second"] == pytest.approx(4 / spent, rel=1e-3) and first["steps_per_second"] > 0

    # truncate the newest file: the previous one is used
    data = found[-1][1].read_bytes()
    found[-1][1].write_bytes(data[: len(data) // 2])
    assert ckpt.load_latest(ck_dir)["step"] == 3
    # a file whose name and content disagree is skipped as well
    (ck_dir / "step_000000003.pt").write_bytes((ck_dir / "step_000000002.pt").read_bytes())
    assert ckpt.load_latest(ck_dir)["step"] == 2
    (ck_dir / ".step_000000009.pt.tmp-abc.pt").write_bytes(b"half a write")  # left by a killed save

    longer = parse_params(tiny_params_dict("melgan", train={"steps": 5, "checkpoint_every": 1, "keep_last": 3}))
    trainer = Trainer(longer, paths, progress=False)
    assert trainer.step == 2
    trainer.run()
    assert [s for s, _ in _checkpoints(tmp_path)] == [3, 4, 5]  # the bad files were replaced/pruned
    assert ckpt.load_latest(ck_dir)["step"] == 5
    assert not list(ck_dir.glob(".step_*"))  # stale temporary file removed

    # nothing readable at all: a fresh start
    for _, path in _checkpoints(tmp_path):
        path.write_bytes(b"not a checkpoint")
    assert ckpt.load_latest(ck_dir) is None
    assert Trainer(longer, paths, progress=False).step == 0


def test_checkpoint_holds_no_pickled_objects(demo_corpus, tmp_path):
    """A latent model's checkpoint loads with weights_only=True too."""
    params = parse_params(tiny_params_dict("wavegan", train={"steps": 1}))
    train(params, train_paths(demo_corpus, tmp_path), progress=False)
    (_, path), = _checkpoints(tmp_path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    assert state["variant"] == "wavegan" and state["step"] == 1 and state["history"][0]["step"] == 1
