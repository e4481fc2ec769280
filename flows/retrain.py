"""Retrain flow: (dvc pull) -> dvc repro -> (dvc push) -> register -> promote only if better.

A parent Prefect flow over the DVC pipeline, run in the project directory as subprocesses:

1. ``dvc pull --allow-missing`` when ``pull`` (data already in the DVC remote is fetched; the rest
   is rebuilt by the pipeline);
2. ``dvc repro`` (the whole pipeline: download ... evaluate, register). With
   ``fine_tune_from_champion`` and a champion in the registry: ``dvc exp run -S
   train.fine_tune_from=models:/NAME/<champion version>`` instead, so the training starts from the
   champion's generator weights (like any ``dvc exp run -S``, the value stays in params.yaml and
   dvc.lock records it). Caveat: the train stage resumes from ``checkpoints/<variant>-<hash>/``
   when it holds checkpoints, and that hash does not cover ``train.fine_tune_from`` (nor the data):
   with checkpoints of the same architecture present, training resumes (and stops at
   ``train.steps``) instead of fine-tuning; the re-saved generator has the same weights, so no new
   version is registered. ``command`` replaces this step by any command (tests, custom pipelines;
   it gets ``GANPIPE_FINE_TUNE_FROM`` in its environment when fine-tuning);
3. ``dvc push`` when ``push`` (the data version the new model refers to is in the remote);
4. registration of models/generator.pt with metrics/eval.json (idempotent: when ``dvc repro`` has
   already registered it, the existing version's promotion is re-evaluated and returned).

Promotion follows ganpipe/promotion.py: only a model made on the main line may become champion.
The flow checks the project *before* running the pipeline: when it starts from committed files
(no uncommitted changes, not inside a DVC experiment), the model it produces counts as made on the
main line, including the ``dvc exp run -S train.fine_tune_from=...`` of ``fine_tune_from_champion``
(whose register stage alone, inside the experiment, registers a candidate only; the flow's own
registration then re-evaluates it). Started from uncommitted changes, its model is registered as
candidate (unless ``registry.promote_from: any``).

Every DVC command runs under a project file lock (``.dvc/tmp/ganpipe-dvc.lock``), so two retrains
started at once run their DVC steps one after the other; registrations have their own lock
(ganpipe/model_registry.py). Transient failures (DVC's own lock held by another process, a busy
database, a network reset) are retried by Prefect (``registry.retries``, ``registry.retry_delay_seconds``);
any other failure stops the flow with the command, exit code and the end of its output, and
publishes a ``retrain-summary`` artifact. Nothing is registered or promoted before the pipeline
has succeeded, so a failed retrain leaves the champion as it was.

Scheduling (``ganpipe schedule --cron "0 3 * * 0"`` = ``python -m flows.retrain --serve --cron ...``):
``retrain_flow.serve`` creates the deployment ``retrain/<name>`` with the cron schedule on the
Prefect server at ``PREFECT_API_URL`` (a real ``prefect server start``) and stays in the
foreground, executing the scheduled (and manually triggered) runs until stopped. No prefect.yaml
or work pool is needed.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from filelock import Timeout
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows._runtime import publish, run_cli
from flows.register import register_in_flow, retry_transient, summary_rows
from ganpipe.config import load_params
from ganpipe.mlflow_store import TransientError, file_lock, is_transient
from ganpipe.model_registry import champion
from ganpipe.promotion import Source, promotion_source

DEPLOYMENT_NAME = "ganpipe-retrain"


class CommandError(RuntimeError):
    """A pipeline command failed for a reason retrying will not fix."""


def project_lock_path(root: Path) -> Path:
    """The lock serialising DVC commands of ganpipe processes on one project."""
    return (root / ".dvc" / "tmp" / "ganpipe-dvc.lock") if (root / ".dvc").is_dir() else root / ".ganpipe-dvc.lock"


# Runs the pipeline (external effects): never cached; only transient failures are retried.
@task(name="command", cache_policy=NO_CACHE, retry_condition_fn=retry_transient)
def run_command(args: list[str], project_dir: str, env_extra: dict[str, str] | None = None,
                tail_lines: int = 40) -> str:
    """Run ``args`` in ``project_dir``, streaming its output to the logs (the caller holds the
    project lock)."""
    logger = get_run_logger()
    root = Path(project_dir)
    env = {k: v for k, v in os.environ.items() if k != "PREFECT__FLOW_RUN_ID"}  # children start their own runs
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(env_extra or {})
    shown = " ".join(args)
    tail: collections.deque[str] = collections.deque(maxlen=tail_lines)
    logger.info("$ %s  (in %s)", shown, root)
    try:
        proc = subprocess.Popen(args, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, errors="replace")
    except OSError as exc:
        raise CommandError(f"cannot start {shown!r}: {exc}") from None
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail.append(line)
        logger.info("%s", line)
    code = proc.wait()
    if code == 0:
        return "\n".join(tail)
    message = f"{shown!r} failed with exit code {code} in {root}; last output:\n" + "\n".join(tail)
    if is_transient(RuntimeError("\n".join(tail))):
        raise TransientError(message)
    raise CommandError(message)


def pipeline_command(command: list[str] | None, fine_tune_from: str | None) -> tuple[list[str], dict[str, str]]:
    env = {"GANPIPE_FINE_TUNE_FROM": fine_tune_from} if fine_tune_from else {}
    if command:
        return list(command), env
    if fine_tune_from:
        return ["dvc", "exp", "run", "-S", f"train.fine_tune_from={fine_tune_from}"], env
    return ["dvc", "repro"], env


@flow(name="retrain", log_prints=True)
def retrain_flow(project_dir: str = ".", params_path: str = "params.yaml", pull: bool = False, push: bool = True,
                 fine_tune_from_champion: bool = False, command: list[str] | None = None,
                 generator: str = "models/generator.pt", eval_metrics: str = "metrics/eval.json") -> dict[str, Any]:
    """Retrain and register; see the module doc. Returns the registration and the champion before/after."""
    logger = get_run_logger()
    root = Path(project_dir).resolve()
    params = load_params(root / params_path)
    rp = params.registry
    name = rp.registered_name(params.dataset.name, params.model.variant)
    summary: dict[str, Any] = {"project": str(root), "model_name": name, "champion_before": None}
    retry = dict(retries=rp.retries, retry_delay_seconds=rp.retry_delay_seconds)
    step = "waiting for the project lock"
    lock = file_lock(project_lock_path(root), -1)  # waits as long as another retrain runs (no stale locks:
    try:                                          # the OS releases it when a process dies)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            logger.info("another retrain / DVC command holds %s: waiting for it", lock.lock_file)
            lock.acquire()
        step = "checking where the model will come from"
        start = promotion_source(root)  # before the pipeline changes anything (e.g. dvc exp run -S)
        source = Source(True, f"retrain flow started from: {start.description}") if start.main_line else start
        summary["source"] = source.description
        logger.info("source of the new model: %s", source.description)
        step = "reading the champion"
        before = champion(params, root, name)
        summary["champion_before"] = str(before.version) if before is not None else None
        if pull:
            step = "dvc pull"
            run_command.with_options(**retry)(["dvc", "pull", "--allow-missing"], str(root))
        fine_tune = None
        if fine_tune_from_champion:
            if before is None:
                logger.info("no champion of %s yet: training from scratch", name)
            else:
                fine_tune = f"models:/{name}/{before.version}"
                logger.info("fine-tuning from the champion %s", fine_tune)
        summary["fine_tune_from"] = fine_tune
        args, env = pipeline_command(command, fine_tune)
        step = " ".join(args)
        run_command.with_options(**retry)(args, str(root), env)
        if push:
            step = "dvc push"
            run_command.with_options(**retry)(["dvc", "push"], str(root))
        params = load_params(root / params_path)  # `dvc exp run -S` may have changed it
        if not params.registry.enabled:
            summary["registration"] = "registry.enabled is false: nothing registered"
            publish("retrain-summary", "Retrain: done (registry disabled)", summary)
            return summary
        step = "register"
        result = register_in_flow(params, generator, eval_metrics, str(root), source=source)
    except Exception as exc:
        try:
            after = champion(params, root, name)
        except Exception:  # noqa: BLE001 - the report must not hide the original error
            after = None
        summary.update(status="failed", failed_step=step, error=f"{type(exc).__name__}: {exc}"[:2000],
                       champion_after=str(after.version) if after is not None else None)
        logger.error("retrain failed at %r; champion: %s (before: %s)", step, summary["champion_after"],
                     summary["champion_before"])
        publish("retrain-summary", f"Retrain failed at {step}", summary)
        raise
    finally:
        if lock.is_locked:
            lock.release()
    after = champion(params, root, name)
    summary.update(status="ok", champion_after=str(after.version) if after is not None else None,
                   registration=summary_rows(result))
    logger.info("%s version %s: %s; champion %s -> %s", name, result["version"], result["decision"],
                summary["champion_before"], summary["champion_after"])
    publish("retrain-summary", f"Retrain: {name} v{result['version']} -> {result['decision']}",
            {k: v for k, v in summary.items() if k != "registration"}, extra="\n" + "\n".join(
                f"- {k}: {v}" for k, v in summary["registration"].items()))
    return summary


def serve(name: str, cron: str, timezone: str, parameters: dict[str, Any]) -> None:
    """Create the scheduled deployment ``retrain/<name>`` and execute its runs (blocks)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from prefect.schedules import Cron
    from prefect.settings import PREFECT_API_URL
    from prefect.types.entrypoint import EntrypointType

    try:
        ZoneInfo(timezone)
        schedule = Cron(cron, timezone=timezone)
    except (ValueError, TypeError, ZoneInfoNotFoundError) as exc:
        raise SystemExit(f"error: invalid schedule (cron {cron!r}, time zone {timezone!r}): {exc}") from None
    if not PREFECT_API_URL.value():
        raise SystemExit("error: scheduling needs a Prefect server: start one (`prefect server start`) and set "
                         "PREFECT_API_URL, e.g. export PREFECT_API_URL=http://127.0.0.1:4200/api")
    # The flow object of the importable module (not __main__), so the runner can load it by module path.
    from flows.retrain import retrain_flow as importable

    importable.serve(name=name, schedules=[schedule], parameters=parameters, entrypoint_type=EntrypointType.MODULE_PATH,
                     limit=1, description="ganpipe: retrain -> register -> promote only if better")


def main() -> None:
    ap = argparse.ArgumentParser(description="Retrain (dvc repro), push, register and promote only if better; "
                                             "--serve runs it on a cron schedule.")
    ap.add_argument("--project-dir", default=".", help="the project (default: current directory)")
    ap.add_argument("--pull", action="store_true", help="dvc pull --allow-missing first")
    ap.add_argument("--no-push", action="store_true", help="skip dvc push")
    ap.add_argument("--fine-tune", action="store_true", help="start training from the current champion's weights")
    ap.add_argument("--command", default=None, help="run this command instead of dvc repro (shell-split)")
    ap.add_argument("--serve", action="store_true", help="create a scheduled deployment and execute its runs")
    ap.add_argument("--cron", default="0 3 * * 0", help="with --serve: cron schedule (default: Sundays 03:00)")
    ap.add_argument("--timezone", default="UTC", help="with --serve: time zone of the cron schedule")
    ap.add_argument("--name", default=DEPLOYMENT_NAME, help="with --serve: deployment name")

    def flow_args(a: argparse.Namespace) -> dict[str, Any]:
        import shlex

        return dict(project_dir=str(Path(a.project_dir).resolve()), pull=a.pull, push=not a.no_push,
                    fine_tune_from_champion=a.fine_tune, command=shlex.split(a.command) if a.command else None)

    if "--serve" in sys.argv[1:]:
        ap.add_argument("--params", default="params.yaml")
        a = ap.parse_args()
        parameters = {**flow_args(a), "params_path": a.params}
        load_params(Path(parameters["project_dir"]) / a.params)  # fail before serving
        serve(a.name, a.cron, a.timezone, parameters)
        return
    run_cli(retrain_flow, ap, flow_args)


if __name__ == "__main__":
    main()
