"""Registering an imported model (``ganpipe import-model ... --register``): score it by copy-synthesis
like the evaluate stage does (:func:`ganpipe.evaluation.evaluate_vocoder` on ``evaluation.split`` of
the prepared corpus, or on a folder of reference wavs), then register it with the usual
candidate/champion rules (:func:`ganpipe.model_registry.register_generator`; the version's tags name its
source format, the source file's sha256 and its step count).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ganpipe.config import Params


def score(generator: str | Path, params: Params, project_dir: str | Path = ".",
          eval_dir: str | Path | None = None) -> dict[str, Any]:
    """The evaluate stage's summary (``metrics/eval.json``'s keys) of ``generator``, scored on
    ``eval_dir``'s wavs when given, else on ``evaluation.split`` of ``data/prepared``."""
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
    result = E.evaluate_vocoder(loaded, items, "cpu", keep_samples=0)
    if not result.summary["utterances"]:
        reasons = "; ".join(f"{s['utt_id']}: {s['reason']}" for s in result.skipped[:3])
        raise ValueError(f"no utterance could be scored ({len(result.skipped)} skipped: {reasons})")
    return {**result.summary, "variant": loaded.bundle.variant, "step": loaded.meta.get("step"), "split": split,
            **extra}


def register_imported(generator: str | Path, params: Params, project_dir: str | Path = ".",
                      model_name: str | None = None, eval_dir: str | Path | None = None,
                      promote: bool = False) -> tuple[Any, dict[str, Any]]:
    """Score and register an imported generator file: ``(Registration, the scores)``."""
    from ganpipe.model_registry import register_generator

    metrics = score(generator, params, project_dir, eval_dir)
    registration = register_generator(Path(generator).resolve(), metrics, params, project_dir, promote=promote,
                                      model_name=model_name)
    return registration, metrics
