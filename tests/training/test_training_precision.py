"""Mixed precision and torch.compile in the Trainer, exercised on the CPU (no GPU in this project's
sessions): bf16 autocast really reaches the generator and discriminators, fp16 runs with a
GradScaler whose state is checkpointed and resumed and which skips inf-gradient steps without the
trainer's non-finite counter stepping in, and ``train.compile`` trains like eager mode with the
same checkpoint keys."""

from __future__ import annotations

import math
import time

import pytest
import torch

from ganpipe import generator_io
from ganpipe.training import checkpoint as ckpt
from ganpipe.training.setup import autocast_dtype
from ganpipe.training.trainer import Trainer
from tests.support.training_data import tiny_params, train_paths


def _watch_dtypes(trainer: Trainer) -> dict[str, list[tuple[torch.dtype, bool]]]:
    """Output dtype (and autocast state) of the first conv of G and of D at every training-mode call."""
    seen: dict[str, list[tuple[torch.dtype, bool]]] = {"G": [], "D": []}
    for name, net in (("G", trainer.G), ("D", trainer.D)):
        conv = next(m for m in net.modules() if isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d)))

        def hook(module, args, out, name=name):
            if module.training:  # validation runs the generator in eval mode, in fp32
                seen[name].append((out.dtype, torch.is_autocast_enabled("cpu")))

        conv.register_forward_hook(hook)
    return seen


def _latest(paths) -> dict:
    (ck_dir,) = [d for d in paths.checkpoints.iterdir() if d.is_dir()]
    return ckpt.load(ckpt.list_checkpoints(ck_dir)[-1][1])


def test_bf16_autocasts_generator_and_discriminator_on_cpu(demo_corpus, tmp_path):
    runs = {}
    for precision in ("fp32", "bf16"):
        paths = train_paths(demo_corpus, tmp_path / precision)
        trainer = Trainer(tiny_params("hifigan_v3", train={"steps": 3, "precision": precision}), paths,
                          progress=False)
        seen = _watch_dtypes(trainer)
        metrics = trainer.run()
        assert metrics["steps"] == 3 and metrics["skipped_steps"] == 0
        assert all(math.isfinite(v) for row in trainer.history for v in row.values())
        runs[precision] = (trainer, seen, paths)

    fp32, seen32, _ = runs["fp32"]
    bf16, seen16, paths16 = runs["bf16"]
    assert fp32.amp_dtype is None and bf16.amp_dtype is torch.bfloat16 and not bf16.scaler.is_enabled()
    assert {d for d, _ in seen32["G"] + seen32["D"]} == {torch.float32}
    # the training forwards of both networks ran under autocast, in bf16 (fails if precision is ignored)
    for net in ("G", "D"):
        assert seen16[net] and set(seen16[net]) == {(torch.bfloat16, True)}, (net, set(seen16[net]))
    # same seed, same first batch and initial weights: the losses agree to bf16 accuracy, not bitwise
    for key in ("d_loss", "g_mel_l1"):
        a, b = fp32.history[0][key], bf16.history[0][key]
        assert a != b and abs(a - b) <= 0.05 * abs(a), (key, a, b)
    # parameters and saved weights stay fp32
    saved = torch.load(paths16.generator, weights_only=True)["state_dict"]
    assert {v.dtype for v in saved.values() if v.is_floating_point()} == {torch.float32}
    assert _latest(paths16)["scaler"] == {}  # no scaler in bf16

    # precision is part of the run's identity (issue 10: only steps, cadence, workers and device are
    # not): an fp16 run beside that bf16 checkpoint starts its own run, its scaler at the initial scale
    other = Trainer(tiny_params("hifigan_v3", train={"steps": 4, "precision": "fp16"}), paths16, progress=False)
    assert other.step == 0 and other.ckpt_dir != bf16.ckpt_dir
    assert other.scaler.is_enabled() and other.scaler.get_scale() == 2.0 ** 16


def test_fp16_grad_scaler_skips_inf_gradients_and_is_checkpointed(demo_corpus, tmp_path, monkeypatch):
    paths = train_paths(demo_corpus, tmp_path)
    # max_nonfinite_steps 1: were a scaler-skipped step counted as non-finite, training would stop
    train = {"steps": 11, "precision": "fp16", "checkpoint_every": 1, "max_nonfinite_steps": 1, "grad_clip": 100.0}
    trainer = Trainer(tiny_params("hifigan_v3", train=train), paths, progress=False)
    assert trainer.amp_dtype is torch.float16 and trainer.scaler.is_enabled()
    seen = _watch_dtypes(trainer)

    probe = next(p for p in trainer.G.parameters() if p.requires_grad)
    updates: list[tuple[bool, float, float, bool]] = []  # (generator?, scale before, after, probe changed?)
    injected: list[int] = []  # index in `updates` of the generator update given an inf gradient

    def inject(grad):
        # From 2**16 the scaler backs off on real fp16 overflows (the mel loss gradient x scale
        # overflows the generator's fp16 output) until the generator's updates go through; then
        # the next generator update gets an inf gradient.
        g_updates = [u for u in updates if u[0]]
        if not injected and g_updates and g_updates[-1][3]:
            injected.append(len(updates))
            return torch.full_like(grad, math.inf)
        return grad

    probe.register_hook(inject)
    update = trainer.update

    def spy(loss, net, sync_grads):
        before, w = trainer.scaler.get_scale(), probe.detach().clone()
        stepped = update(loss, net, sync_grads)
        updates.append((net == "g", before, trainer.scaler.get_scale(), not torch.equal(w, probe)))
        return stepped

    monkeypatch.setattr(trainer, "update", spy)
    norms = []
    clip = torch.nn.utils.clip_grad_norm_

    def clip_spy(parameters, max_norm, *args, **kwargs):
        norms.append(float(clip(parameters, max_norm, *args, **kwargs)))
        return torch.tensor(norms[-1])

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip_spy)
    metrics = trainer.run()

    assert metrics["steps"] == 11 and metrics["skipped_steps"] == 0 and metrics["skipped_d_updates"] == 0
    for net in ("G", "D"):
        assert seen[net] and set(seen[net]) == {(torch.float16, True)}, (net, set(seen[net]))
    assert len(updates) == 22 and len(injected) == 1, (updates, injected)
    g_before, before, after, changed = updates[injected[0]]
    assert g_before and not changed and after == before / 2  # the scaler skipped that step and backed off
    assert any(u[0] and u[3] for u in updates[injected[0] + 1:])  # and training went on
    assert all(u[3] for u in updates if u[0] and u[1] == u[2])  # steps it did not skip updated G
    assert all(u[2] in (u[1], u[1] / 2) for u in updates)
    # clipping saw unscaled gradients (the scaled ones are >= 256x larger); inf/NaN on skipped steps
    finite = [n for n in norms if math.isfinite(n)]
    assert len(norms) == 22 and len(finite) >= 11 and 0 < min(finite) and max(finite) < 2e3, norms
    scale = trainer.scaler.get_scale()
    assert scale < 2.0 ** 16 and trainer.history[-1]["amp_scale"] == scale

    state = _latest(paths)
    assert state["step"] == 11 and state["scaler"]["scale"] == scale
    assert state["scaler"] == trainer.scaler.state_dict()
    resumed = Trainer(tiny_params("hifigan_v3", train={**train, "steps": 12}), paths, progress=False)
    assert resumed.step == 11 and resumed.scaler.get_scale() == scale
    assert resumed.scaler.state_dict() == state["scaler"]
    assert resumed.run()["steps"] == 12
    assert _latest(paths)["scaler"]["scale"] in (scale, scale / 2)


def test_unsupported_precision_fails_at_start_naming_the_key(monkeypatch):
    assert autocast_dtype("fp32", torch.device("cpu")) is None
    assert autocast_dtype("bf16", torch.device("cpu")) is torch.bfloat16
    assert autocast_dtype("fp16", torch.device("cpu")) is torch.float16
    monkeypatch.setattr(torch.amp, "is_autocast_available", lambda kind: False)
    with pytest.raises(ValueError, match=r"train\.precision: fp16 is not supported.*use train\.precision: fp32"):
        autocast_dtype("fp16", torch.device("cpu"))


@pytest.mark.slow  # 115-150 s on the 2-core CPU with a cold inductor cache (10-15 s warm): compiling
def test_compiled_training_matches_eager_and_checkpoints_plain_names(demo_corpus, tmp_path):
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    results = {}
    for compiled in (False, True):
        paths = train_paths(demo_corpus, tmp_path / ("compiled" if compiled else "eager"))
        trainer = Trainer(tiny_params("hifigan_v3", train={"steps": 2, "compile": compiled}), paths, progress=False)
        t0 = time.perf_counter()
        metrics = trainer.run()
        print(f"compile={compiled}: 2 steps in {time.perf_counter() - t0:.1f} s")
        assert metrics["steps"] == 2 and metrics["skipped_steps"] == 0
        results[compiled] = (trainer, paths, _latest(paths))
    eager, eager_paths, eager_state = results[False]
    comp, comp_paths, comp_state = results[True]
    assert type(comp.G_train).__name__ == "OptimizedModule" and type(comp.D_fwd).__name__ == "OptimizedModule"
    # dynamo really compiled the generator's and the discriminators' forwards, each as one graph
    assert counters["stats"]["unique_graphs"] >= 2 and not sum(counters["graph_break"].values()), dict(counters)

    for key in ("generator", "discriminators", "ema"):
        a, b = eager_state[key], comp_state[key]
        assert (a is None and b is None) or list(a) == list(b), key
    assert not [k for k in comp_state["generator"] if "_orig_mod" in k]
    eager_file = torch.load(eager_paths.generator, weights_only=True)["state_dict"]
    comp_file = torch.load(comp_paths.generator, weights_only=True)["state_dict"]
    assert list(comp_file) == list(eager_file) and not [k for k in comp_file if "_orig_mod" in k]
    generator_io.load_generator(comp_paths.generator)  # loads into a plain generator
    # same seed: the losses of step 1 and of step 2 (after one compiled forward + backward + update)
    # agree with eager mode (inductor may fuse/reorder float ops; on this CPU they matched bitwise)
    for row in (0, 1):
        for key in ("d_loss", "g_loss", "g_mel_l1"):
            a, b = eager.history[row][key], comp.history[row][key]
            assert abs(a - b) <= 1e-3 * abs(a) + 1e-5, (row, key, a, b)

    # resume with compile on: continues from step 2 and loads the plain names
    resumed = Trainer(tiny_params("hifigan_v3", train={"steps": 3, "compile": True}), comp_paths, progress=False)
    assert resumed.step == 2
    for k, v in comp_state["generator"].items():
        assert torch.equal(resumed.G.state_dict()[k], v), k
    assert resumed.run()["steps"] == 3
    assert list(_latest(comp_paths)["generator"]) == list(comp_state["generator"])
    torch._dynamo.reset()
