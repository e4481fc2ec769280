"""Registering an imported model (``ganpipe import-model ... --register``): score it by copy-synthesis
like the evaluate stage does (:func:`ganpipe.evaluation.evaluate_vocoder` on ``evaluation.split`` of
the prepared corpus, or on a folder of reference wavs), then register it with the usual
candidate/champion rules (:func:`ganpipe.model_registry.register_generator`; the version's tags name its
source format, the source file's sha256 and its step count, and its dataset and data version are the
source's: :mod:`.metadata`). The register run gets the evaluate stage's report: samples, per-utterance
CSV and plots (:mod:`ganpipe.eval_report`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganpipe.config import Params


def evaluate(generator: str | Path, params: Params, project_dir: str | Path = ".",
             eval_dir: str | Path | None = None) -> tuple[dict[str, Any], Any]:
    """The evaluate stage's summary (``metrics/eval.json``'s keys) of ``generator`` and its full result
    (samples, per-utterance rows, Griffin-Lim baseline: evaluation.*), scored on ``eval_dir``'s wavs
    when given, else on ``evaluation.split`` of ``data/prepared``."""
    from ganpipe import evaluation as E
    from ganpipe.generator_io import load_generator
    from ganpipe.promotion import folder_fingerprint

    loaded = load_generator(generator)
    ev = params.evaluation
    extra: dict[str, Any] = {}
    if eval_dir is not None:
        items = E.folder_items(eval_dir)
        split = "eval-dir"  # the folder is identified by its content (eval_set), not by its path
        extra["eval_set"] = folder_fingerprint(items)
    else:
        prepared = Path(project_dir) / "data" / "prepared"
        if not (prepared / "manifest.csv").is_file():
            raise FileNotFoundError(f"{prepared / 'manifest.csv'} not found: prepare the corpus first (dvc repro "
                                    "prepare), or score on a folder of reference wavs with --eval-dir DIR")
        items = E.split_items(prepared, ev.split, ev.max_utterances)
        split = ev.split
    result = E.evaluate_vocoder(loaded, items, "cpu", keep_samples=ev.samples_to_save,
                                griffin_lim_iterations=ev.griffin_lim_iterations)
    if not result.summary["utterances"]:
        reasons = "; ".join(f"{s['utt_id']}: {s['reason']}" for s in result.skipped[:3])
        raise ValueError(f"no utterance could be scored ({len(result.skipped)} skipped: {reasons})")
    return {**result.summary, "variant": loaded.bundle.variant, "step": loaded.meta.get("step"), "split": split,
            **extra}, result


def score(generator: str | Path, params: Params, project_dir: str | Path = ".",
          eval_dir: str | Path | None = None) -> dict[str, Any]:
    """The summary of :func:`evaluate`."""
    return evaluate(generator, params, project_dir, eval_dir)[0]


def log_report(registration: Any, result: Any, generator: str | Path, params: Params,
               project_dir: str | Path = ".") -> None:
    """The evaluate stage's report (samples, per-utterance CSV, plots) into the version's register run,
    under ``eval/``: something to listen to in MLflow."""
    import tempfile

    from mlflow import MlflowClient

    from ganpipe.eval_report import write_report
    from ganpipe.generator_io import load_generator
    from ganpipe.mel import MelConfig
    from ganpipe.mlflow_store import project_tracking

    if not registration.run_id:
        return
    loaded = load_generator(generator)
    mel = MelConfig.from_dict({**loaded.mel_config.to_dict(), "normalize": "none"})
    tp = project_tracking(params.tracking, project_dir)
    with tempfile.TemporaryDirectory(prefix="ganpipe-import-eval-") as tmp:
        write_report(result, Path(tmp) / "eval", mel.sample_rate, mel)
        MlflowClient(tracking_uri=tp.tracking_uri).log_artifacts(registration.run_id, str(Path(tmp) / "eval"), "eval")


def register_imported(generator: str | Path, params: Params, project_dir: str | Path = ".",
                      model_name: str | None = None, eval_dir: str | Path | None = None,
                      promote: bool = False) -> tuple[Any, dict[str, Any]]:
    """Score and register an imported generator file: ``(Registration, the scores)``."""
    from ganpipe.model_registry import register_generator

    metrics, result = evaluate(generator, params, project_dir, eval_dir)
    registration = register_generator(Path(generator).resolve(), metrics, params, project_dir, promote=promote,
                                      model_name=model_name)
    if registration.created:  # a new version: its register run gets the evaluate stage's report
        log_report(registration, result, generator, params, project_dir)
    return registration, metrics
