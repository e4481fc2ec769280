"""torchrun (2 CPU processes, gloo) through ganpipe.training.launch: only rank 0 writes, both ranks
end with identical generator and discriminator weights, and a NaN loss on one rank makes every rank
skip that step.

The per-rank view comes from a test-only ``sitecustomize`` put on the workers' PYTHONPATH: it wraps
``Trainer.run`` to dump each rank's final state and records which rank called the writers. The
production code has no hook for this.
"""

from __future__ import annotations

import json
import os
import textwrap

import pytest
import torch
import yaml

from ganpipe.training import checkpoint as ckpt
from ganpipe.training.launch import DistributedOptions, launch
from tests.conftest import REPO_ROOT
from tests.support.training_data import tiny_params_dict

HOOK = textwrap.dedent('''
    import os

    if os.environ.get("GANPIPE_TEST_DUMP") and "RANK" in os.environ:  # torchrun workers only
        import torch
        from ganpipe import generator_io
        from ganpipe.training import batching, checkpoint, report, trainer

        RANK = int(os.environ["RANK"])
        WRITES, BATCHES = [], []

        def _record(module, name):
            original = getattr(module, name)

            def wrapper(*args, **kwargs):
                WRITES.append(name)
                return original(*args, **kwargs)

            setattr(module, name, wrapper)

        if os.environ.get("GANPIPE_TEST_NAN_RANK") == str(RANK):  # one rank sees a NaN loss once
            from ganpipe.training import losses

            _generator_loss, CALLS = losses.generator_loss, []

            def generator_loss(kind, fake, weights=None):
                CALLS.append(1)
                out = _generator_loss(kind, fake, weights)
                return out * float("nan") if len(CALLS) == 2 else out

            losses.generator_loss = generator_loss

        _record(checkpoint, "save")
        _record(generator_io, "save_generator")
        _record(report, "write_json")
        _index_batches = batching.epoch_index_batches

        def epoch_index_batches(*args, **kwargs):
            out = _index_batches(*args, **kwargs)
            BATCHES.append(out)
            return out

        _run = trainer.Trainer.run

        def run(self):
            result = _run(self)
            torch.save({"generator": self.G.state_dict(), "discriminators": self.D.state_dict(),
                        "opt_d": self.opt_d.state_dict(), "world": self.dist.world, "rank": self.dist.rank,
                        "step": self.step, "writes": WRITES, "batches": BATCHES},
                       os.path.join(os.environ["GANPIPE_TEST_DUMP"], f"rank{RANK}.pt"))
            return result

        batching.epoch_index_batches = epoch_index_batches
        trainer.Trainer.run = run
''')


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow  # two torchrun processes (subprocesses)
def test_torchrun_two_cpu_processes(demo_corpus, tmp_path, monkeypatch):
    project = demo_corpus.install(tmp_path / "project")
    hook_dir, dump = tmp_path / "hook", tmp_path / "dump"
    hook_dir.mkdir()
    dump.mkdir()
    (hook_dir / "sitecustomize.py").write_text(HOOK)
    data = tiny_params_dict("hifigan_v3", train={"steps": 4, "batch_size": 4, "checkpoint_every": 2,
                                                 "keep_last": 5, "validate_every": 2})
    (project / "params.yaml").write_text(yaml.safe_dump(data))
    monkeypatch.chdir(project)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(hook_dir), str(REPO_ROOT)]))  # this checkout's code
    monkeypatch.setenv("GANPIPE_TEST_DUMP", str(dump))
    monkeypatch.setenv("GANPIPE_TEST_NAN_RANK", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")

    metrics = launch("params.yaml", DistributedOptions(nproc_per_node=2), progress=False)

    # rank 1's NaN at its second generator step: every rank skipped that step together
    assert metrics["steps"] == 4 and metrics["skipped_steps"] == 1
    assert json.loads((project / "metrics" / "train.json").read_text()) == metrics
    assert (project / "models" / "generator.pt").is_file() and (project / "plots" / "train_loss.csv").is_file()
    (run_dir,) = (project / "checkpoints").iterdir()
    assert [s for s, _ in ckpt.list_checkpoints(run_dir)] == [2, 4]

    r0 = torch.load(dump / "rank0.pt", weights_only=True)
    r1 = torch.load(dump / "rank1.pt", weights_only=True)
    assert (r0["world"], r0["rank"], r1["world"], r1["rank"]) == (2, 0, 2, 1)
    assert r0["step"] == r1["step"] == 4
    # only rank 0 writes: checkpoints (steps 2 and 4), the generator file, the metrics
    assert r0["writes"].count("save") == 2 and "save_generator" in r0["writes"] and "write_json" in r0["writes"]
    assert r1["writes"] == []
    # each rank trained on its own half of every batch
    first0, first1 = r0["batches"][0], r1["batches"][0]
    assert all(len(b) == 2 for b in first0 + first1)
    assert not {i for b in first0 for i in b} & {i for b in first1 for i in b}

    # identical weights on both ranks (generator via DDP, discriminators via the all-reduce)
    assert _equal(r0["generator"], r1["generator"])
    assert _equal(r0["discriminators"], r1["discriminators"])
    assert torch.equal(r0["opt_d"]["state"][0]["exp_avg"], r1["opt_d"]["state"][0]["exp_avg"])
    final = torch.load(run_dir / "step_000000004.pt", map_location="cpu", weights_only=True)
    assert _equal(final["generator"], r0["generator"]) and _equal(final["discriminators"], r0["discriminators"])
    assert len(final["rng_ranks"]) == 2
    assert not torch.equal(final["rng_ranks"][0]["torch"], final["rng_ranks"][1]["torch"])
    # and they did train: the checkpoint at step 2 differs
    mid = torch.load(run_dir / "step_000000002.pt", map_location="cpu", weights_only=True)
    assert not _equal(mid["generator"], final["generator"])
    assert not _equal(mid["discriminators"], final["discriminators"])
