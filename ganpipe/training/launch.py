"""Entry points of the training loop: in this process, or this node's processes under ``torchrun``.

``python -m ganpipe.training.launch --params params.yaml`` trains as ``train.nproc_per_node`` and
``train.nnodes`` say, without Prefect: in this process, or by starting ``torchrun`` (this node's
share of the job), whose workers run the same module again and train (``RANK`` set by torchrun).
Several nodes meet at torchrun's c10d rendezvous (``train.rdzv_endpoint``, ``train.rdzv_id``), which
numbers them: any node may host rank 0, the only one that writes, so the outputs, checkpoints and
features must be one shared folder, at the same path on every node.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, replace
from typing import Any

from ganpipe.config import ConfigError, TrainParams, load_params


@dataclass(frozen=True)
class DistributedOptions:
    """How many training processes, and where several nodes meet (``train.*`` of params.yaml)."""

    nproc_per_node: int = 1
    nnodes: int = 1
    rdzv_endpoint: str | None = None  # host:port of the c10d rendezvous (nnodes > 1)
    rdzv_id: str = "ganpipe"

    def __post_init__(self) -> None:
        if self.nproc_per_node < 1 or self.nnodes < 1:
            raise ConfigError(f"train.nproc_per_node and train.nnodes must be >= 1 (got {self.nproc_per_node}, "
                              f"{self.nnodes})")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ConfigError(f"train.nnodes: {self.nnodes} needs train.rdzv_endpoint (host:port of the c10d "
                              "rendezvous on one of the nodes)")

    @classmethod
    def from_params(cls, train: TrainParams, **overrides: Any) -> DistributedOptions:
        """params.yaml's settings, with the ``overrides`` that are not ``None`` (command-line flags)."""
        opts = cls(train.nproc_per_node, train.nnodes, train.rdzv_endpoint, train.rdzv_id)
        return replace(opts, **{k: v for k, v in overrides.items() if v is not None})

    @property
    def world(self) -> int:
        return self.nproc_per_node * self.nnodes


def torchrun_command(params_path: str, opts: DistributedOptions) -> list[str]:
    """This node's torchrun: one node on a free local port (``--standalone``), several at the c10d rendezvous."""
    if opts.nnodes == 1:
        rendezvous = ["--standalone"]
    else:
        rendezvous = ["--rdzv-backend=c10d", f"--rdzv-endpoint={opts.rdzv_endpoint}", f"--rdzv-id={opts.rdzv_id}"]
    return [sys.executable, "-m", "torch.distributed.run", f"--nnodes={opts.nnodes}",
            f"--nproc-per-node={opts.nproc_per_node}", *rendezvous,
            "-m", "ganpipe.training.launch", "--params", params_path]


def launch(params_path: str, opts: DistributedOptions | None = None, progress: bool = True) -> dict[str, Any]:
    """Train (``opts``: params.yaml's by default); returns the metrics, read back from metrics/train.json
    after a torchrun job (every node's torchrun ends after rank 0 wrote them: the trainer's last barrier)."""
    from ganpipe.training.trainer import TrainPaths, train

    params = load_params(params_path)
    opts = opts or DistributedOptions.from_params(params.train)
    if opts.world <= 1:
        return train(params, TrainPaths(), progress=progress)
    code = subprocess.call(torchrun_command(params_path, opts))
    if code:
        raise RuntimeError(f"torchrun training failed with exit code {code} (see the worker logs above)")
    return json.loads(TrainPaths().metrics.read_text())


def _log_to_stderr() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(name)s - %(message)s"))
    logging.getLogger("ganpipe").addHandler(handler)
    logging.getLogger("ganpipe").setLevel(logging.INFO)


def main() -> None:
    ap = argparse.ArgumentParser(description="Train model.variant as params.yaml's train.nproc_per_node / "
                                             "train.nnodes say (this node's share), without Prefect.")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    _log_to_stderr()  # rank 0's loss lines (every train.log_every steps) go to its stderr
    if "RANK" not in os.environ:  # started by hand: this node's share of the job
        launch(args.params, progress=False)
        return
    from ganpipe.training.trainer import TrainPaths, train

    train(load_params(args.params), TrainPaths())


if __name__ == "__main__":
    main()
