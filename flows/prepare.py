"""Prepare flow: raw corpus -> mono, resampled, cleaned WAVs + manifest (+ split) + skip report."""

from __future__ import annotations

import json
import math
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows._runtime import cli_main, publish, task_runner
from ganpipe import prepare as P
from ganpipe.atomic import write_json
from ganpipe.config import AudioParams, load_params
from ganpipe.datasets.layouts import discover
from ganpipe.datasets.types import SourceUtterance

PREPARED = Path("data/prepared")


# Writes a DVC output: never cached (DVC clears outputs before the stage runs).
@task(name="prepare-shard", cache_policy=NO_CACHE)
def prepare_shard(utts: list[SourceUtterance], out_dir: Path, audio: AudioParams) -> list:
    return P.prepare_shard(utts, out_dir, audio)


@flow(name="prepare-shards")
def _run_shards(shards: list[list[SourceUtterance]], out_dir: Path, audio: AudioParams) -> list:
    futures = [prepare_shard.submit(s, out_dir, audio) for s in shards]
    return [r for f in futures for r in f.result()]


def source_utterances(raw_dir: str | Path, name: str, speaker_from_subfolder: bool) -> list[SourceUtterance]:
    """Every utterance of the corpus the download stage recorded in ``sources.json``."""
    sources_file = Path(raw_dir) / name / "sources.json"
    if not sources_file.is_file():
        raise FileNotFoundError(f"{sources_file} not found: run the download stage first (ganpipe download)")
    sources = json.loads(sources_file.read_text())["sources"]
    utts: list[SourceUtterance] = []
    for src in sources:
        utts += discover(src["layout"], Path(src["root"]), speaker_from_subfolder=speaker_from_subfolder)
    return utts


@flow(name="prepare", log_prints=True)
def prepare_flow(params_path: str = "params.yaml", out_dir: str = str(PREPARED),
                 metrics_path: str = "metrics/prepare.json") -> dict:
    params = load_params(params_path)
    ds, fp = params.dataset, params.features
    logger = get_run_logger()
    utts = source_utterances(ds.raw_dir, ds.name, ds.speaker_from_subfolder)
    P.check_corpus(utts, params.split)
    P.clean_outputs(Path(out_dir))
    size = max(1, math.ceil(len(utts) / (4 * fp.workers)))
    shards = [utts[i:i + size] for i in range(0, len(utts), size)]
    logger.info("prepare: %d source files in %d shards (%s x%d)", len(utts), len(shards),
                fp.task_runner, fp.workers)
    results = _run_shards.with_options(task_runner=task_runner(fp))(shards, Path(out_dir), params.audio)
    prepared = [r for r in results if isinstance(r, P.PreparedInfo)]
    skipped = [r for r in results if isinstance(r, P.SkippedFile)]
    for s in skipped:
        logger.warning("skipped %s: %s (%s)", s.source_path, s.reason, s.detail)
    result = P.write_outputs(Path(out_dir), prepared, skipped, params.split, params.audio)
    summary = result.summary
    write_json(metrics_path, {"utterances": summary["utterances"], "hours": summary["hours"],
                              "skipped": summary["skipped"]["total"],
                              **{f"{k}_utterances": v["utterances"] for k, v in summary["splits"].items()}})
    publish("prepare-summary", f"Prepare: {ds.name}", {
        "source files": summary["source_files"], "prepared": summary["utterances"],
        "hours": summary["hours"], "speakers": len(summary["speakers"]),
        "splits": {k: v["utterances"] for k, v in summary["splits"].items()},
        "skipped": summary["skipped"]["total"], "skipped by reason": summary["skipped"]["by_reason"]},
        extra=_skipped_table(skipped))
    return summary


def _skipped_table(skipped: list) -> str:
    if not skipped:
        return "\nNo file was skipped.\n"
    rows = "\n".join(f"| {s.source_path} | {s.reason} | {s.detail} |" for s in skipped[:200])
    more = f"\n\n({len(skipped) - 200} more in skipped.csv)" if len(skipped) > 200 else ""
    return f"\n### Skipped files\n\n| file | reason | detail |\n| --- | --- | --- |\n{rows}{more}\n"


def main() -> None:
    cli_main(prepare_flow, "Resample, clean and split data/raw/<name> into data/prepared.")


if __name__ == "__main__":
    main()
