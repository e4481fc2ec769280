"""Retrain flow: (dvc pull) -> dvc repro -> (dvc push) -> register -> promote only if better -> (commit).

A parent Prefect flow over the DVC pipeline, run in the project directory as subprocesses, in steps:

1. ``_start``: where the model will come from (:func:`ganpipe.promotion.promotion_source`, checked
   *before* the pipeline changes anything) and ``params.yaml``'s bytes; the champion now
   (``_read_champion``) is read after step 2, except when fine-tuning from it;
2. ``_nothing_changed``: for a plain ``dvc repro`` cycle, ``dvc status``; an up-to-date pipeline
   (no data, code or params changed: a ``local`` corpus is hashed by content, a URL corpus by its
   remote's validators, ``ganpipe.datasets.remote_state``, which the ``remote_validators`` stage
   records for plain ``dvc repro`` too) ends the cycle in seconds with
   "nothing changed, no new version" in the log and the ``retrain-summary`` artifact;
3. ``_pipeline``: ``dvc pull --allow-missing`` when ``pull``; ``dvc repro``, or with
   ``fine_tune_from_champion`` and a champion ``dvc exp run -S
   train.fine_tune_from=models:/NAME/<champion version>`` so that training starts from the
   champion's generator weights. The train stage's checkpoint folder is keyed by
   ``run_key`` (ganpipe/training/trainer.py), which covers the starting weights
   (``train.fine_tune_from``) and the training data: a fine-tune or new data starts its own run
   instead of resuming an old one. ``command`` replaces this step by any command (tests, custom
   pipelines; it gets ``GANPIPE_FINE_TUNE_FROM`` in its environment when fine-tuning); then ``dvc
   push`` when ``push``;
4. ``_register``: registration of models/generator.pt with metrics/eval.json (idempotent: when
   ``dvc repro`` has already registered it, the existing version's promotion is re-evaluated). The
   champion is re-scored on the new version's evaluation clips when they differ
   (ganpipe/rescoring.py); a fine-tune records its parent and must beat it (ganpipe/guards.py);
5. ``_commit`` (``retrain.commit``; ``auto`` = when the tree was clean at the start): dvc.lock,
   metrics and plots committed on the current branch and tagged ``<model>-v<version>``
   (ganpipe/lineage.py). Whatever happens, ``params.yaml`` ends as the cycle found it (``dvc exp
   run -S`` writes it): a cycle never leaves the work tree modified by it, so the next cycle's
   model can be promoted.

Promotion follows ganpipe/promotion.py: only a model made on the main line may become champion.
Started from committed files, the model counts as made on the main line, including the ``dvc exp
run -S`` of ``fine_tune_from_champion`` (whose register stage alone, inside the experiment,
registers a candidate only; the flow's own registration then re-evaluates it). Started from
uncommitted changes, its model is registered as candidate (unless ``registry.promote_from: any``).

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
or work pool is needed. With ``--when-changed`` the schedule is a frequent poll instead (default
every 15 minutes): a cycle whose data did not change ends at step 2, so a new or replaced corpus
starts a real cycle within one interval.

With ``--pool NAME`` (``ganpipe schedule --pool NAME``) the deployment goes to a Prefect *process*
work pool instead (:func:`deploy`; the pool is created when missing) and the command returns:
``prefect worker start --pool NAME`` processes, on any machine with the checkout at the same path,
execute the runs (the flow is loaded from ``<checkout>/flows/retrain.py``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import Timeout
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows._runtime import publish, run_cli
from flows.register import register_in_flow, retry_transient, summary_rows
from ganpipe.config import load_params
from ganpipe.datasets import remote_state
from ganpipe.lineage import commit_cycle, restore
from ganpipe.mlflow_store import TransientError, file_lock, is_transient
from ganpipe.model_registry import champion
from ganpipe.promotion import Source, promotion_source

DEPLOYMENT_NAME = "ganpipe-retrain"
NOTHING_CHANGED = "nothing changed, no new version"
DESCRIPTION = "ganpipe: retrain -> register -> promote only if better"


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


@dataclass
class Cycle:
    """One retrain cycle's state, shared by its steps."""

    root: Path
    params_path: str
    params: Any  # ganpipe.config.Params
    name: str  # the registered model
    summary: dict[str, Any]
    retry: dict[str, Any]
    step: str = "waiting for the project lock"
    source: Source | None = None
    clean_start: bool = False  # a git work tree without changes to tracked files at the start
    params_before: bytes | None = None  # params.yaml as the cycle found it (restored at the end)
    fine_tune: str | None = None
    champion_read: bool = False

    def run(self, args: list[str], env: dict[str, str] | None = None) -> str:
        self.step = " ".join(args)
        return run_command.with_options(**self.retry)(args, str(self.root), env)


def _start(c: Cycle) -> None:
    """Where the model will come from (before the pipeline changes anything), params.yaml's bytes."""
    logger = get_run_logger()
    c.step = "checking where the model will come from"
    start = promotion_source(c.root)
    c.clean_start = start.main_line and start.description.startswith("main line")
    c.source = Source(True, f"retrain flow started from: {start.description}") if start.main_line else start
    c.summary["source"] = c.source.description
    logger.info("source of the new model: %s", c.source.description)
    params_file = c.root / c.params_path
    c.params_before = params_file.read_bytes() if params_file.is_file() else None


def _read_champion(c: Cycle, fine_tune_from_champion: bool) -> None:
    """The champion now (and, fine-tuning, the starting model). Not asked by a no-op cycle: the first
    registry read imports MLflow, most of a no-op cycle's time."""
    if c.champion_read:
        return
    logger = get_run_logger()
    c.step = "reading the champion"
    before = champion(c.params, c.root, c.name)
    c.champion_read = True
    c.summary["champion_before"] = str(before.version) if before is not None else None
    if fine_tune_from_champion:
        if before is None:
            logger.info("no champion of %s yet: training from scratch", c.name)
        else:
            c.fine_tune = f"models:/{c.name}/{before.version}"
            logger.info("fine-tuning from the champion %s", c.fine_tune)
    c.summary["fine_tune_from"] = c.fine_tune


def _nothing_changed(c: Cycle, command: list[str] | None, pull: bool) -> bool:
    """A plain `dvc repro` cycle whose pipeline is up to date (`dvc status`: data, code, params) and
    whose URL corpus is unchanged at its source: there is nothing to train, so no new version."""
    if command or pull or c.fine_tune:
        return False
    c.step = "asking the corpus' remote for its validators"
    replaced = remote_state.changed_urls(c.params.dataset, c.root)
    if replaced:  # dvc repro's remote_validators stage records the new ones: download runs again
        get_run_logger().info("replaced at the source: %s: the pipeline runs again", ", ".join(replaced))
        return False
    c.step = "dvc status"
    out = c.run(["dvc", "status", "--json"])
    text = out.strip().splitlines()[-1] if out.strip() else ""
    try:
        return up_to_date(json.loads(text))
    except json.JSONDecodeError:
        return False


def up_to_date(status: dict[str, Any]) -> bool:
    """`dvc status --json` of an up-to-date pipeline: empty, or only `always_changed` stages (the
    remote validators, just asked by :func:`_nothing_changed`) listed as "always changed"."""
    return all(changes == ["always changed"] for changes in status.values())


def _pipeline(c: Cycle, command: list[str] | None, pull: bool, push: bool) -> None:
    if pull:
        c.run(["dvc", "pull", "--allow-missing"])
    args, env = pipeline_command(command, c.fine_tune)
    c.run(args, env)
    if push:
        c.run(["dvc", "push", "--run-cache"])  # another clone's `dvc repro --pull` checks out what ran here


def _register(c: Cycle, generator: str, eval_metrics: str) -> dict[str, Any] | None:
    """Register what the pipeline made (None: the registry is disabled); a fine-tune names its parent."""
    c.params = load_params(c.root / c.params_path)  # `dvc exp run -S` may have changed it
    if not c.params.registry.enabled:
        return None
    c.step = "register"
    return register_in_flow(c.params, generator, eval_metrics, str(c.root), source=c.source, parent=c.fine_tune)


def _commit(c: Cycle, result: dict[str, Any]) -> None:
    """retrain.commit: commit dvc.lock, metrics and plots, tagged with the version (ganpipe.lineage)."""
    setting = c.params.retrain.commit
    if not (setting is True or (setting == "auto" and c.clean_start)):
        return
    c.step = "git commit"
    message = (f"retrain: {c.name} v{result['version']} {result['decision']}\n\n{result['decision_reason']}"
               + (f"\n\nfine-tuned from {c.fine_tune}" if c.fine_tune else ""))
    c.summary["git"] = commit_cycle(c.root, c.name, str(result["version"]), message, c.params_before, c.params_path)
    get_run_logger().info("committed %s, tag %s", c.summary["git"]["commit"][:7], c.summary["git"]["tag"] or "-")


def _failed(c: Cycle, exc: Exception) -> None:
    try:
        after = champion(c.params, c.root, c.name)
    except Exception:  # noqa: BLE001 - the report must not hide the original error
        after = None
    c.summary.update(status="failed", failed_step=c.step, error=f"{type(exc).__name__}: {exc}"[:2000],
                     champion_after=str(after.version) if after is not None else None)
    get_run_logger().error("retrain failed at %r; champion: %s (before: %s)", c.step, c.summary["champion_after"],
                           c.summary["champion_before"])
    publish("retrain-summary", f"Retrain failed at {c.step}", c.summary)


def _report(c: Cycle, result: dict[str, Any] | None, status: str) -> dict[str, Any]:
    logger = get_run_logger()
    if status == "unchanged":  # the registry is not read: nothing was registered
        c.summary.update(status=status, registration=NOTHING_CHANGED, champion="unchanged")
        logger.info("%s: %s (champion unchanged)", c.name, NOTHING_CHANGED)
        publish("retrain-summary", f"Retrain: {NOTHING_CHANGED}", c.summary)
        return c.summary
    after = champion(c.params, c.root, c.name)
    c.summary.update(status=status, champion_after=str(after.version) if after is not None else None)
    if result is None:
        c.summary["registration"] = "registry.enabled is false: nothing registered"
        publish("retrain-summary", "Retrain: done (registry disabled)", c.summary)
        return c.summary
    c.summary["registration"] = summary_rows(result)
    logger.info("%s version %s: %s; champion %s -> %s", c.name, result["version"], result["decision"],
                c.summary["champion_before"], c.summary["champion_after"])
    publish("retrain-summary", f"Retrain: {c.name} v{result['version']} -> {result['decision']}",
            {k: v for k, v in c.summary.items() if k != "registration"}, extra="\n" + "\n".join(
                f"- {k}: {v}" for k, v in c.summary["registration"].items()))
    return c.summary


@flow(name="retrain", log_prints=True)
def retrain_flow(project_dir: str = ".", params_path: str = "params.yaml", pull: bool = False, push: bool = True,
                 fine_tune_from_champion: bool = False, command: list[str] | None = None,
                 generator: str = "models/generator.pt", eval_metrics: str = "metrics/eval.json") -> dict[str, Any]:
    """Retrain and register; see the module doc. Returns the registration and the champion before/after."""
    root = Path(project_dir).resolve()
    params = load_params(root / params_path)
    rp = params.registry
    name = rp.registered_name(params.dataset.name, params.model.variant)
    c = Cycle(root, params_path, params, name, {"project": str(root), "model_name": name, "champion_before": None},
              dict(retries=rp.retries, retry_delay_seconds=rp.retry_delay_seconds))
    result = None
    lock = file_lock(project_lock_path(root), -1)  # waits as long as another retrain runs (no stale locks:
    try:                                          # the OS releases it when a process dies)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            get_run_logger().info("another retrain / DVC command holds %s: waiting for it", lock.lock_file)
            lock.acquire()
        _start(c)
        if fine_tune_from_champion:  # the starting model decides whether there is anything to do
            _read_champion(c, True)
        if _nothing_changed(c, command, pull):
            return _report(c, None, "unchanged")
        _read_champion(c, fine_tune_from_champion)
        try:
            _pipeline(c, command, pull, push)
            result = _register(c, generator, eval_metrics)
            if result is not None:
                _commit(c, result)
        finally:  # the work tree as the cycle found it (dvc exp run -S writes params.yaml)
            if restore(root / params_path, c.params_before):
                get_run_logger().info("%s restored as it was before the cycle", params_path)
    except Exception as exc:
        _failed(c, exc)
        raise
    finally:
        if lock.is_locked:
            lock.release()
    return _report(c, result, "ok")


def _schedule(cron: str, timezone: str) -> Any:
    """The cron schedule, checked; and a Prefect server to hold it (PREFECT_API_URL)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from prefect.schedules import Cron
    from prefect.settings import PREFECT_API_URL

    try:
        ZoneInfo(timezone)
        schedule = Cron(cron, timezone=timezone)
    except (ValueError, TypeError, ZoneInfoNotFoundError) as exc:
        raise SystemExit(f"error: invalid schedule (cron {cron!r}, time zone {timezone!r}): {exc}") from None
    if not PREFECT_API_URL.value():
        raise SystemExit("error: scheduling needs a Prefect server: start one (`prefect server start`) and set "
                         "PREFECT_API_URL, e.g. export PREFECT_API_URL=http://127.0.0.1:4200/api")
    return schedule


def serve(name: str, cron: str, timezone: str, parameters: dict[str, Any]) -> None:
    """Create the scheduled deployment ``retrain/<name>`` and execute its runs (blocks)."""
    from prefect.types.entrypoint import EntrypointType

    schedule = _schedule(cron, timezone)
    # The flow object of the importable module (not __main__), so the runner can load it by module path.
    from flows.retrain import retrain_flow as importable

    importable.serve(name=name, schedules=[schedule], parameters=parameters, entrypoint_type=EntrypointType.MODULE_PATH,
                     limit=1, description=DESCRIPTION)


def ensure_process_pool(pool: str) -> None:
    """Create the work pool ``pool`` (type ``process``) when the server lacks it; an existing pool of
    another type is refused (its workers would not run the flow in the project checkout)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with get_client(sync_client=True) as client:
        try:
            existing = client.read_work_pool(pool)
        except ObjectNotFound:
            client.create_work_pool(WorkPoolCreate(name=pool, type=ProcessWorker.type,
                                                   base_job_template=ProcessWorker.get_default_base_job_template()))
            return
    if existing.type != ProcessWorker.type:
        raise SystemExit(f"error: work pool {pool!r} is of type {existing.type!r}; the retrain needs a "
                         f"{ProcessWorker.type!r} pool (a worker running in the project checkout): pick another name")


def deploy(name: str, pool: str, cron: str, timezone: str, parameters: dict[str, Any]) -> str:
    """Deploy ``retrain/<name>`` with the cron schedule to the process work pool ``pool`` (created
    when missing) and return at once; ``prefect worker start --pool <pool>`` executes its runs.

    The deployment's code is this checkout (``flows/retrain.py`` loaded from its absolute path, a
    ``set_working_directory`` pull step), so a worker's machine needs the checkout at the same path,
    as it needs the project at ``parameters["project_dir"]``."""
    schedule = _schedule(cron, timezone)
    ensure_process_pool(pool)
    checkout = Path(__file__).resolve().parents[1]
    source = retrain_flow.from_source(str(checkout), "flows/retrain.py:retrain_flow")
    deployment_id = source.deploy(name=name, work_pool_name=pool, schedules=[schedule], parameters=parameters,
                                  concurrency_limit=1, description=DESCRIPTION, build=False, push=False,
                                  print_next_steps=False, ignore_warnings=True)  # a process pool is the point
    print(f"deployed retrain/{name} ({deployment_id}) to work pool {pool!r}, cron {cron!r} ({timezone}); "
          f"runs start on a worker: prefect worker start --pool {pool}")
    return str(deployment_id)


def when_changed_cron(minutes: int) -> str:
    """The poll schedule of ``--when-changed``: every ``minutes`` (1-59), or every ``minutes // 60`` hours."""
    if minutes < 1:
        raise SystemExit(f"error: --poll-minutes must be >= 1 (got {minutes})")
    return f"*/{minutes} * * * *" if minutes < 60 else f"0 */{max(1, minutes // 60)} * * *"


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
    ap.add_argument("--when-changed", action="store_true",
                    help="with --serve: poll every --poll-minutes instead of --cron; a cycle runs the pipeline "
                         "only when the data (or code, or params) changed, else it ends in seconds")
    ap.add_argument("--poll-minutes", type=int, default=15, help="with --when-changed: minutes between checks")
    ap.add_argument("--pool", default=None,
                    help="with --serve: deploy to this process work pool (created if missing) and return; "
                         "`prefect worker start --pool NAME` runs the retrains")

    def flow_args(a: argparse.Namespace) -> dict[str, Any]:
        import shlex

        return dict(project_dir=str(Path(a.project_dir).resolve()), pull=a.pull, push=not a.no_push,
                    fine_tune_from_champion=a.fine_tune, command=shlex.split(a.command) if a.command else None)

    if "--serve" in sys.argv[1:]:
        ap.add_argument("--params", default="params.yaml")
        a = ap.parse_args()
        parameters = {**flow_args(a), "params_path": a.params}
        load_params(Path(parameters["project_dir"]) / a.params)  # fail before serving
        cron = when_changed_cron(a.poll_minutes) if a.when_changed else a.cron
        if a.pool:
            deploy(a.name, a.pool, cron, a.timezone, parameters)
        else:
            serve(a.name, cron, a.timezone, parameters)
        return
    run_cli(retrain_flow, ap, flow_args)


if __name__ == "__main__":
    main()
