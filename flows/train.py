"""Train flow: the GAN variant of params.yaml (model.variant) on data/prepared + data/features.

Single process by default; ``--nproc-per-node N`` (and ``--nnodes`` etc.) runs the same loop under
torchrun (DDP). Checkpoints in checkpoints/ make a re-run resume where a killed one stopped.
"""

from __future__ import annotations

import argparse

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows._runtime import publish, run_cli
from ganpipe.training.launch import DistributedOptions, launch


# Writes DVC outputs (checkpoints, generator, metrics): never cached.
@task(name="train", cache_policy=NO_CACHE)
def train_task(params_path: str, opts: DistributedOptions) -> dict:
    return launch(params_path, opts)


@flow(name="train", log_prints=True)
def train_flow(params_path: str = "params.yaml", nproc_per_node: int = 1, nnodes: int = 1, node_rank: int = 0,
               master_addr: str = "127.0.0.1", master_port: int = 29500) -> dict:
    opts = DistributedOptions(nproc_per_node, nnodes, node_rank, master_addr, master_port)
    get_run_logger().info("training with %d process(es)", opts.world)
    metrics = train_task(params_path, opts)
    if metrics:
        publish("train-summary", "Training", {k: v for k, v in metrics.items()})
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser(description="Train the GAN variant of params.yaml.")
    ap.add_argument("--nproc-per-node", type=int, default=1, help="processes per node (torchrun DDP)")
    ap.add_argument("--nnodes", type=int, default=1)
    ap.add_argument("--node-rank", type=int, default=0)
    ap.add_argument("--master-addr", default="127.0.0.1")
    ap.add_argument("--master-port", type=int, default=29500)
    run_cli(train_flow, ap, lambda a: dict(nproc_per_node=a.nproc_per_node, nnodes=a.nnodes, node_rank=a.node_rank,
                                            master_addr=a.master_addr, master_port=a.master_port))


if __name__ == "__main__":
    main()
