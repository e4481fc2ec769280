"""Register flow: models/generator.pt (+ metrics/eval.json) -> a version of the MLflow registered model.

Vocoders and unconditional generators (wavegan, specgan) alike. Every new version gets alias
``registry.candidate_alias``; it becomes ``registry.champion_alias`` only when it was made on the
main line (committed files, not a DVC experiment: ``registry.promote_from``) and beats a champion
evaluated the same way (same mel configuration and evaluation set) on ``registry.primary_metric``
(``auto``: mcd for vocoders, frechet_mel for unconditional models) by more than
``registry.margin`` (or when there is no champion). ``--promote`` makes it the champion whatever
the rule says. Re-running for the same generator file creates nothing new and re-evaluates the
promotion (after a commit, ``ganpipe register`` promotes what ``dvc repro`` registered as candidate).
The decision and the registry's aliases go to metrics/register.json (DVC metric), the version's
tags, the log and a Prefect artifact. See ganpipe/promotion.py and ganpipe/model_registry.py (rules), and
ganpipe/serving/pyfunc.py (the model's input/output contract).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows._runtime import publish, run_cli
from ganpipe.config import Params, load_params
from ganpipe.mlflow_store import is_transient, project_tracking
from ganpipe.model_registry import register_generator, write_register_json
from ganpipe.promotion import Source
from ganpipe.redaction import redact


def retry_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry condition: retry only failures that may pass (locks, busy database)."""
    try:
        state.result()
    except Exception as exc:  # noqa: BLE001 - classified, not handled
        return is_transient(exc)
    return False


# Talks to the registry (an external store): never cached.
@task(name="register-model", cache_policy=NO_CACHE, retry_condition_fn=retry_transient)
def register_task(params: Params, generator: str, eval_metrics: str, project_dir: str, promote: bool = False,
                  source: Source | None = None, parent: str | None = None) -> dict[str, Any]:
    reg = register_generator(generator, eval_metrics, params, project_dir, promote=promote, source=source,
                             parent=parent)
    return reg.to_dict(include_created=True)


def summary_rows(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("model_name", "version", "variant", "kind", "decision", "decision_reason", "source", "comparable",
            "primary_metric", "new_value", "champion_before_version", "champion_before_value", "margin",
            "aliases", "champion_version", "created", "generator_sha256", "weights_sha256", "model_uri")
    return {k: result.get(k) for k in keys if k in result}


def outcome_line(result: dict[str, Any]) -> str:
    """One log line: the decision, its reason and the registry's aliases as they are now."""
    held = ", ".join(result.get("aliases") or []) or "none"
    champ = result.get("champion_version")
    return (f"{result['model_name']} version {result['version']}: {result['decision']} ({result['decision_reason']})"
            f"{'' if result.get('created', True) else ' [already registered: no new version]'}; aliases now: "
            f"{held}; champion: {'v' + champ if champ else 'none'}; source: {result.get('source') or '?'}")


def experiment_runs_url(params: Params, root: Path) -> str:
    """The MLflow UI page of the project's runs (the Model training view: ganpipe.training.tracking)."""
    from mlflow import MlflowClient

    from ganpipe.training.tracking import runs_url

    tp = project_tracking(params.tracking, root)
    exp = MlflowClient(tracking_uri=tp.tracking_uri).get_experiment_by_name(tp.experiment)
    return runs_url(exp.experiment_id if exp is not None else "0")


def register_in_flow(params: Params, generator: str, eval_metrics: str, project_dir: str, promote: bool = False,
                     source: Source | None = None, parent: str | None = None) -> dict[str, Any]:
    """The register task with the configured retries (used by this flow and the retrain flow);
    ``parent``: the model a fine-tune started from (default: train.fine_tune_from)."""
    rp = params.registry
    return register_task.with_options(retries=rp.retries, retry_delay_seconds=rp.retry_delay_seconds)(
        params, generator, eval_metrics, project_dir, promote, source, parent)


@flow(name="register", log_prints=True)
def register_flow(params_path: str = "params.yaml", generator: str = "models/generator.pt",
                  eval_metrics: str = "metrics/eval.json", out: str = "metrics/register.json",
                  project_dir: str = ".", promote: bool = False) -> dict[str, Any]:
    logger = get_run_logger()
    root = Path(project_dir).resolve()
    params = load_params(root / params_path)
    out_path = root / out
    if not params.registry.enabled:
        result: dict[str, Any] = {"registered": False, "reason": "registry.enabled is false"}
        write_register_json(out_path, result)
        logger.info("registry disabled (registry.enabled: false): nothing registered")
        return result
    result = register_in_flow(params, generator, eval_metrics, str(root), promote)
    write_register_json(out_path, {k: v for k, v in result.items() if k != "created"})
    logger.info("%s", outcome_line(result))
    logger.info("runs in the MLflow UI of %s: %s", redact(project_tracking(params.tracking, root).tracking_uri),
                experiment_runs_url(params, root))
    publish("register-summary", f"Registration: {result['model_name']} v{result['version']} -> {result['decision']}",
            summary_rows(result))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description="Register models/generator.pt in the MLflow model registry -> "
                                             "metrics/register.json.")
    ap.add_argument("--promote", action="store_true",
                    help="make this version the champion whatever the promotion rule says (an experiment, "
                         "uncommitted changes, a champion evaluated differently, a worse metric)")
    run_cli(register_flow, ap, lambda a: {"promote": a.promote})


if __name__ == "__main__":
    main()
