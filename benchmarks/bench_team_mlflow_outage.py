"""Measures what issue 24 asks of a team's tracking server, against a real PostgreSQL-backed
`mlflow server` (tests/support/team_mlflow.py) really stopped and started again:

1. how long `register` takes to fail with the server down (tracking.server_timeout_seconds at its
   default, 120 s), and that it completes when run again once the server is back;
2. training steps lost (and metric values missing on the server) across a tracking outage of at
   least ``--outage`` seconds in the middle of a tiny training.

Run: python benchmarks/bench_team_mlflow_outage.py [--outage 30] [--steps 600]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path


class _Factory:
    """What tests.support.training_data.build_demo asks of pytest's tmp_path_factory."""

    def __init__(self, root: Path):
        self.root = root

    def mktemp(self, name: str) -> Path:
        path = Path(tempfile.mkdtemp(prefix=name, dir=self.root))
        return path


def register_while_down(server, root: Path) -> None:
    from ganpipe.config import load_params
    from ganpipe.model_registry import register_generator
    from ganpipe.promotion import Source
    from ganpipe.tracking_outage import TrackingServerUnavailable
    from tests.conftest import write_params
    from tests.support.registry_project import eval_json, make_generator

    params = load_params(write_params(root / "params.yaml", {"registry": {"export_onnx": False}}))
    gen, metrics = make_generator(root / "g.pt", seed=3), eval_json(root / "e.json", mcd=5.0)
    server.stop()
    started = time.monotonic()
    try:
        register_generator(gen, metrics, params, root, source=Source(True, "bench"), model_name="bench-outage")
        print("register with the server down: did not fail (unexpected)")
    except TrackingServerUnavailable as exc:
        print(f"register with the server stopped: failed after {time.monotonic() - started:.2f} s "
              f"(tracking.server_timeout_seconds={params.tracking.server_timeout_seconds:g}): {exc}")
    print(f"server restart: {server.restart():.1f} s")
    started = time.monotonic()
    reg = register_generator(gen, metrics, params, root, source=Source(True, "bench"), model_name="bench-outage")
    print(f"register again: {reg.model_name} v{reg.version} {reg.decision} in {time.monotonic() - started:.1f} s")


def train_through_outage(server, root: Path, steps: int, outage_s: float) -> None:
    from mlflow import MlflowClient

    from ganpipe.training.trainer import Trainer
    from tests.support.training_data import build_demo, tiny_params, train_paths

    corpus = build_demo(_Factory(root))
    params = tiny_params("hifigan_v3", train={"steps": steps, "log_every": 5, "validate_every": 100,
                                              "checkpoint_every": 100},
                         tracking={"enabled": True, "experiment": "bench-outage-training"})
    paths = train_paths(corpus, root / "train")
    trainer = Trainer(params, paths, progress=False)
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(trainer.run()))
    client = MlflowClient(tracking_uri=server.url)
    thread.start()
    while not list(paths.checkpoints.rglob("mlflow_run.json")) or trainer.step < 10:
        time.sleep(0.2)
    step_down, down = trainer.step, time.monotonic()
    server.stop()
    time.sleep(outage_s)
    restart_s = server.restart()
    step_up, outage = trainer.step, time.monotonic() - down
    thread.join()
    run_id = json.loads(next(paths.checkpoints.rglob("mlflow_run.json")).read_text())["run_id"]
    logged = sorted(m.step for m in client.get_metric_history(run_id, "g_loss"))
    expected = list(range(5, steps + 1, 5))
    print(f"training through a {outage:.1f} s outage (server stopped at step {step_down}, answering again at "
          f"step {step_up}, restart {restart_s:.1f} s): finished at step {result.get('steps')} of {steps} "
          f"(steps lost: {steps - int(result.get('steps', 0))}); g_loss values on the server {len(logged)} of "
          f"{len(expected)} (missing: {sorted(set(expected) - set(logged))})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--outage", type=float, default=30.0)
    ap.add_argument("--steps", type=int, default=600)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    from tests.support.team_mlflow import TrackingServer, postgres_cluster

    with tempfile.TemporaryDirectory(prefix="bench-team-") as tmp, postgres_cluster() as backend:
        root = Path(tmp)
        started = time.monotonic()
        server = TrackingServer(backend, root).start()
        print(f"PostgreSQL + mlflow server up in {time.monotonic() - started:.1f} s ({backend.split('@')[-1]})")
        os.environ["MLFLOW_TRACKING_URI"] = server.url
        try:
            (root / "reg").mkdir()
            register_while_down(server, root / "reg")
            train_through_outage(server, root, args.steps, args.outage)
        finally:
            server.stop()


if __name__ == "__main__":
    main()
