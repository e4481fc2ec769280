"""Evaluate flow: objective metrics of models/generator.pt -> metrics/eval.json + reports/eval/.

Vocoders: copy-synthesis of the evaluation split, scored per utterance (MCD, MR-STFT, log-mel L1,
PESQ, F0 RMSE, V/UV F1) and averaged; real-time factor on the evaluation device; Griffin-Lim from
the same mel scored beside it (``griffin_lim`` in metrics/eval.json, evaluation.griffin_lim_iterations).
Unconditional variants: Fréchet distance in a mel-statistics embedding and NDB (see ganpipe/evaluation.py).
Everything is also logged to the training run in MLflow.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows._runtime import cli_main, publish
from ganpipe import evaluation as E
from ganpipe.atomic import write_json
from ganpipe.config import Params, load_params
from ganpipe.devices import resolve_device
from ganpipe.eval_report import write_report
from ganpipe.generator_io import load_generator
from ganpipe.mel import MelConfig
from ganpipe.metrics import HIGHER_IS_BETTER


# Writes DVC outputs: never cached.
@task(name="score", cache_policy=NO_CACHE)
def score(params: Params, generator: str, prepared: str) -> E.EvalResult:
    """The scoring (ganpipe.rescoring.score_generator: the register step re-scores a champion with it)."""
    from ganpipe.rescoring import score_generator

    ev = params.evaluation
    device = resolve_device(ev.device, "evaluation.device")  # a named device that is absent: a clear error
    return score_generator(load_generator(generator, device), prepared, ev, device)


def mlflow_metrics(summary: dict) -> dict[str, float]:
    """The numbers of ``summary`` as MLflow metrics: ``eval_<key>``, and ``eval_griffin_lim_<key>``
    for the baseline's."""
    def numbers(d: dict, prefix: str) -> dict[str, float]:
        return {f"{prefix}{k}": float(v) for k, v in d.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)}

    return {**numbers(summary, "eval_"), **numbers(summary.get("griffin_lim") or {}, "eval_griffin_lim_")}


def baseline_line(summary: dict) -> str | None:
    """One line comparing the model with the Griffin-Lim baseline (None without a baseline)."""
    gl = summary.get("griffin_lim")
    if not gl:
        return None
    parts = []
    for key in ("mcd", "mrstft", "pesq"):
        m, b = summary.get(key), gl.get(key)
        if m is None or b is None:
            continue
        better = (m > b) if HIGHER_IS_BETTER[key] else (m < b)
        parts.append(f"{key} {m:.3f} vs {b:.3f} ({'better' if better else 'WORSE'})")
    return f"model vs Griffin-Lim ({gl['iterations']} iterations, same mel): " + ", ".join(parts)


def log_to_mlflow(params: Params, run_id: str | None, summary: dict, out_dir: Path) -> None:
    if not (params.tracking.enabled and run_id):
        return
    import mlflow

    from ganpipe.mlflow_store import project_tracking
    from ganpipe.redaction import redact
    from ganpipe.tracking_outage import bounded_http, is_outage
    from ganpipe.training.tracking import setup_mlflow

    with bounded_http(params.tracking.server_timeout_seconds):
        try:
            setup_mlflow(params.tracking)
            with mlflow.start_run(run_id=run_id):
                mlflow.log_metrics(mlflow_metrics(summary))
                mlflow.log_artifacts(str(out_dir), artifact_path="eval")
        except Exception as exc:
            if not is_outage(exc):
                raise
            # metrics/eval.json is the stage's output; the copy in the training run can wait
            get_run_logger().warning("MLflow tracking at %s is not reachable (%s): the evaluation is not logged "
                                     "to the training run", redact(project_tracking(params.tracking).tracking_uri),
                                     redact(exc))


@flow(name="evaluate", log_prints=True)
def evaluate_flow(params_path: str = "params.yaml", generator: str = "models/generator.pt",
                  prepared: str = "data/prepared", out_dir: str = "reports/eval",
                  metrics_path: str = "metrics/eval.json") -> dict:
    params = load_params(params_path)
    logger = get_run_logger()
    result = score(params, generator, prepared)
    loaded = load_generator(generator)
    sr = loaded.mel_config.sample_rate if loaded.bundle.kind == "vocoder" else loaded.bundle.sample_rate
    mel_cfg = MelConfig.from_dict({**loaded.mel_config.to_dict(), "normalize": "none"}) \
        if loaded.bundle.kind == "vocoder" else None
    write_report(result, Path(out_dir), sr, mel_cfg)
    summary = {**result.summary, "variant": loaded.bundle.variant, "step": loaded.meta.get("step"),
               "split": params.evaluation.split}
    write_json(metrics_path, summary)
    for s in result.skipped:
        logger.warning("skipped %s: %s", s.get("utt_id"), s.get("reason"))
    line = baseline_line(summary)
    if line:
        logger.info(line)
    log_to_mlflow(params, loaded.meta.get("run_id"), summary, Path(out_dir))
    publish("evaluate-summary", f"Evaluation: {loaded.bundle.variant}", summary, extra=line or "")
    return summary


def main() -> None:
    cli_main(evaluate_flow, "Score models/generator.pt on the evaluation split -> metrics/eval.json.")


if __name__ == "__main__":
    main()
