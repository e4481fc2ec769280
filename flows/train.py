"""Train flow: the GAN variant of params.yaml (model.variant) on data/prepared + data/features.

Single process by default; ``--nproc-per-node N`` (and ``--nnodes`` etc.) runs the same loop under
torchrun (DDP). Checkpoints in checkpoints/ make a re-run resume where a killed one stopped.
The trainer's log lines (losses every ``train.log_every`` steps, validation, resumption, skipped
steps) are part of the flow run's Prefect log; the progress bar is drawn only on a terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
from collections.abc import Iterator

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows._runtime import publish, run_cli
from ganpipe.training.launch import DistributedOptions, launch


@contextlib.contextmanager
def library_log_in_run(name: str = "ganpipe") -> Iterator[None]:
    """Send the INFO records of the library's loggers to this run's Prefect log (and console).

    What Prefect's ``logging.extra_loggers`` setting does, for this flow only, plus the INFO level
    (a library logger inherits the root's WARNING, which would drop the loss lines)."""
    from prefect.logging.handlers import APILogHandler

    logger = logging.getLogger(name)
    handler, level = APILogHandler(), logger.level
    logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


# Writes DVC outputs (checkpoints, generator, metrics): never cached.
@task(name="train", cache_policy=NO_CACHE)
def train_task(params_path: str, opts: DistributedOptions) -> dict:
    with library_log_in_run():
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
