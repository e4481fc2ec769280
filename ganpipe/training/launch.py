"""Entry points of the training loop: in this process, or N processes under ``torchrun``.

``python -m ganpipe.training.launch --params params.yaml`` is what every torchrun worker runs;
:func:`launch` starts it (single process: in-process; several: ``torch.distributed.run``).
"""

from __future__ import annotations

import argparse
import logging
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from ganpipe.config import load_params


@dataclass(frozen=True)
class DistributedOptions:
    nproc_per_node: int = 1
    nnodes: int = 1
    node_rank: int = 0
    master_addr: str = "127.0.0.1"
    master_port: int = 29500

    @property
    def world(self) -> int:
        return self.nproc_per_node * self.nnodes


def torchrun_command(params_path: str, opts: DistributedOptions) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run",
            f"--nproc-per-node={opts.nproc_per_node}", f"--nnodes={opts.nnodes}",
            f"--node-rank={opts.node_rank}", f"--master-addr={opts.master_addr}",
            f"--master-port={opts.master_port}",
            "-m", "ganpipe.training.launch", "--params", params_path]


def launch(params_path: str, opts: DistributedOptions = DistributedOptions(), progress: bool = True) -> dict[str, Any]:
    """Train; returns the metrics (read back from metrics/train.json after a torchrun job)."""
    from ganpipe.training.trainer import TrainPaths, train

    params = load_params(params_path)
    if opts.world <= 1:
        return train(params, TrainPaths(), progress=progress)
    code = subprocess.call(torchrun_command(params_path, opts))
    if code:
        raise RuntimeError(f"torchrun training failed with exit code {code} (see the worker logs above)")
    import json

    return json.loads(TrainPaths().metrics.read_text()) if opts.node_rank == 0 else {}


def main() -> None:
    ap = argparse.ArgumentParser(description="Train model.variant (one torchrun worker or a single process).")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args()
    # a torchrun worker: rank 0's loss lines (every train.log_every steps) go to its stderr
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s | %(levelname)s | %(name)s - %(message)s"))
    logging.getLogger("ganpipe").addHandler(handler)
    logging.getLogger("ganpipe").setLevel(logging.INFO)
    from ganpipe.training.trainer import TrainPaths, train

    train(load_params(args.params), TrainPaths())


if __name__ == "__main__":
    main()
