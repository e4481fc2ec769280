"""Does the default demo model beat Griffin-Lim? Train params.yaml's model on the prepared demo
corpus and score it, at a few step counts, with the evaluate stage's own code against Griffin-Lim
from the same mel.

Needs data/prepared and data/features (``dvc repro features``). Trains into a temporary folder
(nothing of the project's is written; MLflow off), resuming from one step count to the next, and
prints one row per step count: steps, training seconds so far, steps/s, then MCD / MR-STFT / PESQ of
the model and of Griffin-Lim (evaluation.griffin_lim_iterations) on evaluation.split.

    .venv/bin/python benchmarks/bench_demo_quality.py                       # params.yaml as it is
    .venv/bin/python benchmarks/bench_demo_quality.py --at 600,1200 --set train.lr_generator=1e-3

``--set key=value`` (YAML value) overrides params.yaml. ``--json FILE`` writes the rows. Training
seconds are wall time: on a shared machine compare steps/s with a baseline run at the same time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml


def _apply(data: dict, dotted: str) -> None:
    key, _, value = dotted.partition("=")
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = yaml.safe_load(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--at", default=None, help="comma-separated step counts to score at (default: train.steps)")
    ap.add_argument("--prepared", default="data/prepared")
    ap.add_argument("--features", default="data/features")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--keep", default=None, help="copy the last generator.pt here")
    args = ap.parse_args()

    import torch

    from ganpipe.config import Params
    from ganpipe.evaluation import evaluate_vocoder
    from ganpipe.generator_io import load_generator
    from ganpipe.manifest import read_manifest
    from ganpipe.training.trainer import Trainer, TrainPaths

    if args.threads:
        torch.set_num_threads(args.threads)
    data = yaml.safe_load(Path(args.params).read_text())
    for s in args.set:
        _apply(data, s)
    data.setdefault("tracking", {})["enabled"] = False
    base = Params.model_validate(data)
    at = [int(x) for x in args.at.split(",")] if args.at else [base.train.steps]
    ev = base.evaluation
    manifest = read_manifest(Path(args.prepared) / "manifest.csv")
    rows_m = manifest[manifest["split"] == ev.split]
    items = [(r.utt_id, str(Path(args.prepared) / r.path), r.speaker) for r in rows_m.itertuples()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = TrainPaths(Path(args.prepared), Path(args.features), work / "ckpt", work / "generator.pt",
                           work / "train.json", work / "curve.csv")
        baseline = None
        for steps in at:
            params = base.model_copy(update={"train": base.train.model_copy(update={"steps": steps})})
            t0 = time.perf_counter()
            metrics = Trainer(params, paths, progress=False).run()
            loaded = load_generator(paths.generator)
            result = evaluate_vocoder(loaded, items, "cpu", 0, ev.griffin_lim_iterations if baseline is None else 0)
            baseline = baseline or result.summary.get("griffin_lim")
            s = result.summary
            row = {"steps": steps, "train_seconds": round(metrics["steps"] / metrics["steps_per_second"], 1),
                   "steps_per_second": metrics["steps_per_second"], "val_mel_l1": metrics.get("val_mel_l1"),
                   "mcd": s["mcd"], "mrstft": s["mrstft"], "pesq": s["pesq"],
                   "gl_mcd": baseline and baseline["mcd"], "gl_mrstft": baseline and baseline["mrstft"],
                   "gl_pesq": baseline and baseline["pesq"], "wall_seconds": round(time.perf_counter() - t0, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
        if args.keep:
            import shutil

            shutil.copyfile(paths.generator, args.keep)
    print(f"settings: {' '.join(args.set) or '(params.yaml)'}", file=sys.stderr)
    if args.json:
        Path(args.json).write_text(json.dumps({"set": args.set, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
