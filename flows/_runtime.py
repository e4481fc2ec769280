"""What every flow shares: argument parsing, params loading, task runners, run artifacts."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect.artifacts import create_markdown_artifact
from prefect.task_runners import ThreadPoolTaskRunner

from ganpipe.config import ConfigError, FeaturesParams, load_params


def task_runner(fp: FeaturesParams) -> Any:
    """Threads by default; Dask (a local cluster of ``workers`` processes, or an existing
    scheduler at ``dask_address``) when a corpus outgrows one machine's threads."""
    if fp.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=fp.workers)
    from prefect_dask import DaskTaskRunner

    if fp.dask_address:
        return DaskTaskRunner(address=fp.dask_address)
    return DaskTaskRunner(cluster_kwargs={"n_workers": fp.workers, "threads_per_worker": 1,
                                          "processes": True, "dashboard_address": None})


def shard_ranges(n: int, size: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of at most ``size`` items covering ``range(n)``.

    Flows pass these (and the path of the job list: the sources or the manifest) to their shard
    subflows, never the jobs themselves: a flow's parameters go to the Prefect server, which
    refuses more than ``server.api.max_parameter_size`` (512 KiB by default), about 2,000
    utterances' worth."""
    size = max(1, size)
    return [(i, min(i + size, n)) for i in range(0, n, size)]


def markdown_table(rows: dict[str, Any]) -> str:
    lines = ["| item | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in rows.items()]
    return "\n".join(lines)


def publish(key: str, title: str, rows: dict[str, Any], extra: str = "") -> None:
    """A Prefect artifact summarising the run (visible in the Prefect UI)."""
    create_markdown_artifact(key=key, markdown=f"## {title}\n\n{markdown_table(rows)}\n{extra}",
                             description=title)


def cli_main(flow_fn: Callable[..., Any], description: str) -> None:
    """``python -m flows.<stage> [--params params.yaml]`` entry point; config errors exit 2."""
    run_cli(flow_fn, argparse.ArgumentParser(description=description))


def run_cli(flow_fn: Callable[..., Any], ap: argparse.ArgumentParser,
            extra: Callable[[argparse.Namespace], dict[str, Any]] | None = None) -> None:
    ap.add_argument("--params", default="params.yaml", help="parameters file (default: params.yaml)")
    args = ap.parse_args()
    try:
        load_params(args.params)  # fail fast, before a Prefect server is started
    except ConfigError as exc:
        raise SystemExit(f"error: {exc}") from None
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    try:
        flow_fn(params_path=str(Path(args.params)), **(extra(args) if extra else {}))
    except Exception as exc:  # noqa: BLE001 - the flow's logs above hold the details and traceback
        print(f"error: {flow_fn.__name__} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
