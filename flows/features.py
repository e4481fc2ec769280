"""Features flow: log-mels of the prepared corpus, sharded over the configured task runner.

The mel is params.yaml's, with statistics over the train split; with ``mel.preset: from_model`` it is
the starting model's mel and statistics, as the validate stage resolved them into ``data/mel.json``
(a dependency of this stage in dvc.yaml: a starting model with another mel re-runs it).

The shard subflow gets the manifest's path and ``[start, end)`` ranges, not the jobs (a flow's
parameters go to the Prefect server, which limits their size), and plans the jobs itself.
"""

from __future__ import annotations

import math
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows._runtime import cli_main, publish, shard_ranges, task_runner
from ganpipe import features as F
from ganpipe.atomic import write_json
from ganpipe.config import load_params
from ganpipe.manifest import read_manifest

PREPARED = Path("data/prepared")
FEATURES = Path("data/features")
FEATURE_MEL = Path("data/mel.json")  # the validate stage's resolution of the mel (ganpipe.features.FeatureMel)


# Writes a DVC output: never cached (DVC clears outputs before the stage runs).
@task(name="extract-shard", cache_policy=NO_CACHE)
def extract_shard(jobs: list[F.FeatureJob], config: dict, device: str, batch_seconds: float) -> F.ShardResult:
    import torch

    torch.set_num_threads(1)  # parallelism comes from the task runner (one shard per worker)
    return F.extract_shard(jobs, config, device=device, batch_seconds=batch_seconds, threads=1)


@flow(name="features", log_prints=True)
def features_flow(params_path: str = "params.yaml", prepared_dir: str = str(PREPARED),
                  out_dir: str = str(FEATURES), metrics_path: str = "metrics/features.json",
                  mel_path: str = str(FEATURE_MEL)) -> dict:
    params = load_params(params_path)
    fp = params.features
    feature_mel = feature_mel_of(params, mel_path)
    mel_config = feature_mel.config
    manifest_path = Path(prepared_dir) / "manifest.csv"
    manifest = read_manifest(manifest_path)
    # At least two shards per worker so the runner keeps every worker busy.
    size = max(1, min(fp.shard_size, math.ceil(len(manifest) / (2 * fp.workers))))
    ranges = shard_ranges(len(manifest), size)
    F.start_output(out_dir)
    logger = get_run_logger()
    logger.info("features: %d utterances in %d shards on %s (%d workers), mel %s",
                len(manifest), len(ranges), fp.task_runner, fp.workers, mel_config.to_json())
    runner_flow = _run_shards.with_options(task_runner=task_runner(fp))
    results = runner_flow(str(manifest_path), str(prepared_dir), str(out_dir), ranges, mel_config.to_dict(),
                          fp.device, fp.batch_seconds)
    summary = F.finalize(results, manifest, out_dir, mel_config, feature_mel.stats)
    write_json(metrics_path, {k: summary[k] for k in ("utterances", "frames", "train_frames", "hours")})
    publish("features-summary", "Features", {
        "utterances": summary["utterances"], "frames": summary["frames"], "hours": summary["hours"],
        "splits": summary["per_split"], "task runner": f"{fp.task_runner} x{fp.workers}",
        "mel": mel_config.to_json()})
    return summary


def feature_mel_of(params, mel_path: str | Path) -> F.FeatureMel:
    """params.yaml's mel, or (mel.preset: from_model) the starting model's, read from ``mel_path``."""
    if params.mel.preset != "from_model":
        return F.FeatureMel(params.mel_config())
    resolved = F.FeatureMel.read(mel_path)
    if resolved.origin != "train.fine_tune_from" or resolved.stats is None:
        raise F.FeatureError(f"{mel_path} holds params.yaml's mel, but mel.preset is from_model: re-run the "
                             "validate stage (dvc repro validate) to resolve the starting model's")
    return resolved


@flow(name="features-shards")
def _run_shards(manifest_path: str, prepared_dir: str, out_dir: str, ranges: list[tuple[int, int]],
                config: dict, device: str, batch_seconds: float) -> list[F.ShardResult]:
    """Extract ``ranges`` of the jobs planned from ``manifest_path``."""
    jobs = F.plan_jobs(read_manifest(manifest_path), prepared_dir, out_dir)
    if not ranges or ranges[-1][1] != len(jobs):
        raise F.FeatureError(f"{manifest_path}: {len(jobs)} utterances, but "
                             f"{ranges[-1][1] if ranges else 0} were planned (changed while running?)")
    futures = [extract_shard.submit(jobs[a:b], config, device, batch_seconds) for a, b in ranges]
    return [f.result() for f in futures]


def main() -> None:
    cli_main(features_flow, "Compute log-mel features of data/prepared into data/features.")


if __name__ == "__main__":
    main()
