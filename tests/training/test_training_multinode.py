"""Two nodes from params.yaml: two torchrun launches (``python -m ganpipe.training.launch``, one process
each) meet at a c10d rendezvous on 127.0.0.1 with gloo, as ``train.nnodes: 2`` and ``train.rdzv_endpoint``
ask. One project folder stands for the storage every node shares: both complete, there is one set of
outputs (one checkpoint folder, one generator, one metrics file), and a second pair of
launches with more steps resumes from the shared checkpoint. And the torchrun command params.yaml asks for.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from ganpipe.training import checkpoint as ckpt
from tests.conftest import REPO_ROOT
from tests.support.fresh_clone import clean_env
from tests.support.prefect_server import free_port
from tests.support.training_data import tiny_params_dict


def _write_params(project: Path, steps: int, endpoint: str) -> None:
    data = tiny_params_dict("hifigan_v3", train={
        "steps": steps, "batch_size": 2, "checkpoint_every": 2, "keep_last": 5, "validate_every": 1000,
        "nproc_per_node": 1, "nnodes": 2, "rdzv_endpoint": endpoint, "rdzv_id": "two-nodes", "dist_backend": "gloo"})
    (project / "params.yaml").write_text(yaml.safe_dump(data))


def _two_nodes(project: Path, logs: Path) -> str:
    """Start both nodes' launches at once; both must succeed (one failing stops the other, which would
    wait for it at the rendezvous); their output together."""
    env = clean_env(PYTHONPATH=str(REPO_ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "ganpipe.training.launch", "--params", "params.yaml"]
    started, outs = time.perf_counter(), [logs / f"node{i}.log" for i in range(2)]
    nodes = [subprocess.Popen(cmd, cwd=project, env=env, stdout=out.open("w"), stderr=subprocess.STDOUT,
                              start_new_session=True) for out in outs]
    try:
        while any(node.poll() is None for node in nodes) and time.perf_counter() - started < 420:
            if any(node.poll() for node in nodes):  # one failed
                break
            with contextlib.suppress(subprocess.TimeoutExpired):
                next(node for node in nodes if node.poll() is None).wait(timeout=0.5)
    finally:
        for node in nodes:
            if node.poll() is None:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()
    text = [out.read_text() for out in outs]
    for i, node in enumerate(nodes):
        assert node.returncode == 0, f"node {i} failed ({node.returncode}):\n{text[i][-3000:]}\n" \
                                     f"the other:\n{text[1 - i][-3000:]}"
    print(f"two nodes: {time.perf_counter() - started:.1f} s")
    return "\n".join(text)


@pytest.mark.slow  # two torchrun agents and their workers (subprocesses), twice
def test_two_torchrun_nodes_train_and_resume_from_the_shared_checkpoint(demo_corpus, tmp_path):
    project = demo_corpus.install(tmp_path / "shared-project")
    endpoint = f"127.0.0.1:{free_port()}"
    _write_params(project, steps=2, endpoint=endpoint)

    out = _two_nodes(project, tmp_path)

    (run_dir,) = (project / "checkpoints").iterdir()  # one run folder, whichever node hosted rank 0
    assert [s for s, _ in ckpt.list_checkpoints(run_dir)] == [2]
    state = torch.load(run_dir / "step_000000002.pt", map_location="cpu", weights_only=True)
    assert len(state["rng_ranks"]) == 2  # one job of two ranks, not two jobs of one
    assert yaml.safe_load((project / "metrics" / "train.json").read_text())["steps"] == 2
    assert (project / "models" / "generator.pt").is_file()
    assert "resumed from step" not in out

    _write_params(project, steps=4, endpoint=endpoint)  # more steps: the same run continues
    out = _two_nodes(project, tmp_path)

    assert "resumed from step 2" in out
    assert [p.name for p in (project / "checkpoints").iterdir()] == [run_dir.name]
    assert [s for s, _ in ckpt.list_checkpoints(run_dir)] == [2, 4]
    assert yaml.safe_load((project / "metrics" / "train.json").read_text())["steps"] == 4
    assert len(torch.load(run_dir / "step_000000004.pt", map_location="cpu", weights_only=True)["rng_ranks"]) == 2


def test_params_choose_the_torchrun_command():
    """params.yaml's train.* (flags override them): one node on a free port, several at the c10d rendezvous."""
    from ganpipe.config import parse_params
    from ganpipe.training.launch import DistributedOptions, torchrun_command

    train = parse_params({"train": {"nproc_per_node": 4, "nnodes": 2, "rdzv_endpoint": "gpu-a:29400",
                                    "rdzv_id": "job7"}}).train
    opts = DistributedOptions.from_params(train)
    assert opts.world == 8
    cmd = torchrun_command("params.yaml", opts)
    assert cmd[1:] == ["-m", "torch.distributed.run", "--nnodes=2", "--nproc-per-node=4", "--rdzv-backend=c10d",
                       "--rdzv-endpoint=gpu-a:29400", "--rdzv-id=job7", "-m", "ganpipe.training.launch",
                       "--params", "params.yaml"]
    one_node = DistributedOptions.from_params(train, nnodes=1, nproc_per_node=None)
    assert "--standalone" in torchrun_command("params.yaml", one_node) and one_node.world == 4
    assert DistributedOptions.from_params(parse_params({}).train).world == 1
