"""Prepare flow: raw corpus -> mono, resampled, cleaned WAVs + manifest (+ split) + skip report.

The shard subflow gets the path of ``sources.json`` and ``[start, end)`` ranges, not the utterances
(a flow's parameters go to the Prefect server, which limits their size), and lists the corpus
itself. With the ``threads`` task runner each task hands its shard to a pool of ``features.workers``
processes (the per-file work holds the GIL too much for threads); with ``dask`` the tasks already
run in worker processes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from concurrent.futures import Executor
from dataclasses import replace
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows._runtime import cli_main, publish, shard_ranges, task_runner
from ganpipe import prepare as P
from ganpipe.atomic import write_json
from ganpipe.config import AudioParams, load_params
from ganpipe.datasets.layouts import discover
from ganpipe.datasets.types import SourceUtterance

PREPARED = Path("data/prepared")
# Worker processes forked by main() while the process still has one thread (before Prefect starts
# its threads); without them the subflow spawns workers, and a spawned worker imports this module,
# and with it Prefect, again (seconds per worker).
_PREFORKED: tuple[int, Executor] | None = None


# Writes a DVC output: never cached (DVC clears outputs before the stage runs).
@task(name="prepare-shard", cache_policy=NO_CACHE)
def prepare_shard(utts: list[SourceUtterance], out_dir: Path, audio: AudioParams,
                  pool: Executor | None = None) -> list:
    if pool is None:
        return P.prepare_shard(utts, out_dir, audio)
    return pool.submit(P.prepare_shard, utts, out_dir, audio).result()


@flow(name="prepare-shards")
def _run_shards(sources_file: str, speaker_from_subfolder: bool, ranges: list[tuple[int, int]],
                out_dir: str, audio: AudioParams, processes: int) -> list:
    """Prepare ``ranges`` of the corpus listed by ``sources_file``; in a pool of ``processes``
    processes when > 1 (threads task runner), else in the task itself (Dask workers)."""
    utts = read_sources(sources_file, speaker_from_subfolder)
    if not ranges or ranges[-1][1] != len(utts):
        raise P.PrepareError(f"{sources_file}: the corpus changed while preparing it "
                             f"({len(utts)} utterances now, {ranges[-1][1] if ranges else 0} planned)")
    own = processes > 1 and (_PREFORKED is None or _PREFORKED[0] != processes)
    pool = P.process_pool(processes) if own else (_PREFORKED[1] if processes > 1 and _PREFORKED else None)
    jobs, recorded = absolute_sources(utts)
    try:
        futures = [prepare_shard.submit(jobs[a:b], Path(out_dir).absolute(), audio, pool) for a, b in ranges]
        return [with_recorded_source(r, recorded) for f in futures for r in f.result()]
    finally:
        if own and pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def absolute_sources(utts: list[SourceUtterance]) -> tuple[list[SourceUtterance], dict[str, str]]:
    """The utterances with absolute paths (a shard may run in a process whose working directory is not
    the project's: a ``dask worker`` started anywhere on a shared filesystem), and each absolute
    path's path as ``sources.json`` lists it (what the manifest records, so that outputs do not
    depend on where the project lies)."""
    jobs = [replace(u, path=os.path.abspath(u.path)) for u in utts]
    return jobs, {job.path: u.path for job, u in zip(jobs, utts)}


def with_recorded_source(result: P.PreparedInfo | P.SkippedFile, recorded: dict[str, str]
                         ) -> P.PreparedInfo | P.SkippedFile:
    return replace(result, source_path=recorded.get(result.source_path, result.source_path))


def read_sources(sources_file: str | Path, speaker_from_subfolder: bool) -> list[SourceUtterance]:
    """Every utterance of the corpus that ``sources.json`` (written by the download stage) lists."""
    sources_file = Path(sources_file)
    if not sources_file.is_file():
        raise FileNotFoundError(f"{sources_file} not found: run the download stage first (ganpipe download)")
    sources = json.loads(sources_file.read_text())["sources"]
    utts: list[SourceUtterance] = []
    for src in sources:
        utts += discover(src["layout"], Path(src["root"]), speaker_from_subfolder=speaker_from_subfolder)
    return utts


def sources_path(raw_dir: str | Path, name: str) -> Path:
    return Path(raw_dir) / name / "sources.json"


def source_utterances(raw_dir: str | Path, name: str, speaker_from_subfolder: bool) -> list[SourceUtterance]:
    """Every utterance of the corpus the download stage recorded in ``sources.json``."""
    return read_sources(sources_path(raw_dir, name), speaker_from_subfolder)


@flow(name="prepare", log_prints=True)
def prepare_flow(params_path: str = "params.yaml", out_dir: str = str(PREPARED),
                 metrics_path: str = "metrics/prepare.json") -> dict:
    params = load_params(params_path)
    ds, fp = params.dataset, params.features
    logger = get_run_logger()
    sources_file = sources_path(ds.raw_dir, ds.name)
    utts = read_sources(sources_file, ds.speaker_from_subfolder)
    P.check_corpus(utts, params.split)
    P.clean_outputs(Path(out_dir))
    ranges = shard_ranges(len(utts), math.ceil(len(utts) / (4 * fp.workers)))
    processes = fp.workers if fp.task_runner == "threads" else 0
    logger.info("prepare: %d source files in %d shards (%s x%d%s)", len(utts), len(ranges),
                fp.task_runner, fp.workers, f", {processes} processes" if processes > 1 else "")
    del utts  # the subflow lists the corpus itself: its parameters go to the Prefect server
    audio = P.resolve_clips(params.audio, ds.name)  # clips of long pieces: auto -> on for music corpora
    if audio.clips.enabled:
        logger.info("prepare: long sources are cut into clips of at most %g s", audio.clips.seconds)
    results = _run_shards.with_options(task_runner=task_runner(fp))(
        str(sources_file), ds.speaker_from_subfolder, ranges, str(out_dir), audio, processes)
    prepared = [r for r in results if isinstance(r, P.PreparedInfo)]
    skipped = [r for r in results if isinstance(r, P.SkippedFile)]
    for s in skipped:
        logger.warning("skipped %s: %s (%s)", s.source_path, s.reason, s.detail)
    result = P.write_outputs(Path(out_dir), prepared, skipped, params.split, audio)
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
    global _PREFORKED
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--params", default="params.yaml")
    try:
        fp = load_params(ap.parse_known_args()[0].params).features
    except Exception:  # noqa: BLE001 - cli_main reports a bad params file
        fp = None
    if fp is not None and fp.task_runner == "threads" and fp.workers > 1:
        pool = P.process_pool(fp.workers)  # forked: this process has one thread so far
        pool.submit(int).result()  # starts every worker now
        _PREFORKED = (fp.workers, pool)
    try:
        cli_main(prepare_flow, "Resample, clean and split data/raw/<name> into data/prepared.")
    finally:
        if _PREFORKED is not None:
            _PREFORKED[1].shutdown(wait=True, cancel_futures=True)


if __name__ == "__main__":
    main()
