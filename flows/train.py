"""Train flow: the GAN variant of params.yaml (model.variant) on data/prepared + data/features.

One process, or DDP under torchrun as ``train.nproc_per_node`` / ``train.nnodes`` (or the flags
overriding them) ask: this node's share, at the c10d rendezvous ``train.rdzv_endpoint`` with several
nodes (ganpipe/training/launch.py). Checkpoints in checkpoints/ make a re-run resume where a killed
one stopped.
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
from ganpipe.config import load_params
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
def train_flow(params_path: str = "params.yaml", nproc_per_node: int | None = None, nnodes: int | None = None,
               rdzv_endpoint: str | None = None, rdzv_id: str | None = None) -> dict:
    """``None``: params.yaml's ``train.*`` value."""
    opts = DistributedOptions.from_params(load_params(params_path).train, nproc_per_node=nproc_per_node,
                                          nnodes=nnodes, rdzv_endpoint=rdzv_endpoint, rdzv_id=rdzv_id)
    get_run_logger().info("training with %d process(es) on %d node(s)", opts.world, opts.nnodes)
    metrics = train_task(params_path, opts)
    if metrics:
        publish("train-summary", "Training", {k: v for k, v in metrics.items()})
    return metrics


def main() -> None:
    ap = argparse.ArgumentParser(description="Train the GAN variant of params.yaml.")
    ap.add_argument("--nproc-per-node", type=int, help="processes per node (default: train.nproc_per_node)")
    ap.add_argument("--nnodes", type=int, help="nodes (default: train.nnodes)")
    ap.add_argument("--rdzv-endpoint", help="host:port of the c10d rendezvous (default: train.rdzv_endpoint)")
    ap.add_argument("--rdzv-id", help="the job's name at the rendezvous (default: train.rdzv_id)")
    run_cli(train_flow, ap, lambda a: dict(nproc_per_node=a.nproc_per_node, nnodes=a.nnodes,
                                            rdzv_endpoint=a.rdzv_endpoint, rdzv_id=a.rdzv_id))


if __name__ == "__main__":
    main()
