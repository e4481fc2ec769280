"""A tracking server that goes away. Register fails within tracking.server_timeout_seconds, naming the
server (password redacted), is not retried by Prefect, and completes when run again once the server is
back; a training goes on through the outage, loses no step, and sends the buffered metrics afterwards.
The outage: the server's address stops answering (ganpipe connects through an OutageSwitch relay),
which a client cannot tell from a stopped server, and which comes back at once (a real restart takes a
minute here: benchmarks/team_mlflow_outage.py measures that one)."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from ganpipe.tracking_outage import TrackingServerUnavailable
from tests.support.registry_project import eval_json, make_generator
from tests.support.team_mlflow import OutageSwitch

pytestmark = [pytest.mark.slow, pytest.mark.network]

SECRET = "outage-pass-77"


@pytest.fixture()
def switch(team_server):
    relay = OutageSwitch(team_server.port).up()
    yield relay
    relay.down()


def test_register_fails_in_bounded_time_and_completes_when_run_again(team_server, switch, tmp_path, monkeypatch):
    from ganpipe.model_registry import register_generator
    from ganpipe.promotion import Source
    from tests.conftest import write_params

    name = "team-outage-register"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", switch.url.replace("http://", f"http://team:{SECRET}@"))
    from ganpipe.config import load_params

    params = load_params(write_params(tmp_path / "params.yaml", {"registry": {"export_onnx": False}}))
    short = params.model_copy(update={"tracking": params.tracking.model_copy(update={"server_timeout_seconds": 4})})
    gen, metrics = make_generator(tmp_path / "g.pt", seed=5), eval_json(tmp_path / "e.json", mcd=5.0)

    def register(p=params):
        return register_generator(gen, metrics, p, tmp_path, source=Source(True, "main line (test)"),
                                  model_name=name)

    for outage in (switch.down, switch.hang):  # refused at once; accepted and never answered
        outage()
        started = time.monotonic()
        with pytest.raises(TrackingServerUnavailable) as err:
            register(short)
        print(f"register with the server {outage.__name__}: failed after {time.monotonic() - started:.1f} s "
              f"(tracking.server_timeout_seconds=4): {err.value}")
        assert f"127.0.0.1:{switch.port}" in str(err.value) and SECRET not in str(err.value)
        assert "team:***@" in str(err.value)
    switch.up()
    reg = register()
    assert reg.decision == "champion" and reg.created and reg.version == "1"
    assert register().version == "1"  # run again: nothing new


def test_prefect_does_not_retry_an_outage():
    from prefect.states import Failed

    from flows.register import retry_transient

    outage = Failed(data=TrackingServerUnavailable("MLflow tracking server http://127.0.0.1:1 is not reachable"))
    assert retry_transient(None, None, outage) is False
    assert retry_transient(None, None, Failed(data=RuntimeError("database is locked"))) is True


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)

    def after(self, text: str) -> list[str]:
        messages = [r.getMessage() for r in self.records]
        hits = [i for i, m in enumerate(messages) if text in m]
        return messages[hits[0] + 1:] if hits else []


def test_training_goes_on_through_a_tracking_outage(team_server, switch, demo_corpus, tmp_path, monkeypatch):
    from mlflow import MlflowClient

    from ganpipe.training.trainer import Trainer
    from tests.support.prefect_server import wait_until
    from tests.support.training_data import tiny_params, train_paths

    steps = 40
    monkeypatch.setenv("MLFLOW_TRACKING_URI", switch.url)
    params = tiny_params("hifigan_v3", train={"steps": steps, "log_every": 2, "validate_every": 10,
                                              "checkpoint_every": 10},
                         tracking={"enabled": True, "experiment": "team-outage-training"})
    paths = train_paths(demo_corpus, tmp_path)
    records, logger = _Records(), logging.getLogger("ganpipe")
    level = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    result: dict = {}
    trainer = Trainer(params, paths, progress=False)
    thread = threading.Thread(target=lambda: result.update(trainer.run()), daemon=True)
    client = MlflowClient(tracking_uri=team_server.url)  # straight to the server, not through the switch
    try:
        thread.start()
        wait_until(lambda: _metric_steps(client, paths.checkpoints), "first metrics on the server", [], [])
        switch.down()
        down = time.monotonic()
        wait_until(lambda: [m for m in records.after("MLflow tracking at") if m.startswith("step ")],
                   "a step logged after the outage began", [], [])
        switch.up()
        print(f"outage: {time.monotonic() - down:.1f} s")
        thread.join(timeout=600)
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
    assert result.get("steps") == steps and trainer.step == steps  # no step lost
    assert sorted(p.name for p in trainer.ckpt_dir.glob("step_*.pt"))[-1] == f"step_{steps:09d}.pt"
    warnings = [r for r in records.records if r.levelno >= logging.WARNING and r.name == "ganpipe.training.tracking"]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    logged = _metric_steps(client, paths.checkpoints)
    assert logged == list(range(2, steps + 1, 2)), logged  # the buffered values reached the server


def _metric_steps(client, ck_dir) -> list[int]:
    import json

    run_files = list(ck_dir.rglob("mlflow_run.json"))
    if not run_files:
        return []
    run_id = json.loads(run_files[0].read_text())["run_id"]
    return sorted(m.step for m in client.get_metric_history(run_id, "g_loss"))
