"""Training logs: plain loss lines every ``train.log_every`` steps (also in the train flow's Prefect
log); the tqdm bar only when stderr is a terminal (in a log file its redraws are one endless line
of carriage returns)."""

from __future__ import annotations

import io
import logging
import os
import re
import sys

import pytest
import yaml

from ganpipe.training.trainer import Trainer
from tests.support.training_data import tiny_params, tiny_params_dict, train_paths

LOSS_LINE = re.compile(r"^step (\d+)/(\d+): g_loss=\S+ d_loss=\S+ .*\blr_g=\S+ \((\S+) steps/s\)$")
VAL_LINE = re.compile(r"^step (\d+)/(\d+): val_mel_l1=\S+")


def _steps(messages: list[str], pattern: re.Pattern) -> list[int]:
    return [int(m.group(1)) for m in map(pattern.match, messages) if m]


def test_losses_are_logged_every_log_every_steps_and_no_bar_off_a_terminal(demo_corpus, tmp_path, caplog,
                                                                           monkeypatch):
    caplog.set_level(logging.INFO, logger="ganpipe.training")
    params = tiny_params("hifigan_v3", train={"steps": 5, "log_every": 2, "validate_every": 4})
    log_file = io.StringIO()  # stderr redirected to a file, as under Prefect, CI or nohup
    monkeypatch.setattr(sys, "stderr", log_file)
    Trainer(params, train_paths(demo_corpus, tmp_path), progress=True).run()
    monkeypatch.undo()
    messages = [r.getMessage() for r in caplog.records if r.name == "ganpipe.training.trainer"]
    assert _steps(messages, LOSS_LINE) == [2, 4, 5], messages  # every log_every steps, and the last
    line = next(m for m in messages if LOSS_LINE.match(m))
    assert all(f" {k}=" in line for k in ("g_mel_l1", "g_adv", "g_fm")) and float(LOSS_LINE.match(line)[3]) > 0
    assert _steps(messages, VAL_LINE) == [0, 4, 5]
    err = log_file.getvalue()
    assert "\r" not in err and "train hifigan_v3" not in err  # no progress bar in a non-terminal stderr


def test_the_progress_bar_is_drawn_on_a_terminal(demo_corpus, tmp_path, monkeypatch):
    import fcntl
    import struct
    import termios

    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 160, 0, 0))  # (a width for the bar)
    try:
        with os.fdopen(slave, "w", closefd=False) as terminal:
            monkeypatch.setattr(sys, "stderr", terminal)
            Trainer(tiny_params("hifigan_v3", train={"steps": 2}), train_paths(demo_corpus, tmp_path),
                    progress=True).run()
            terminal.flush()
            monkeypatch.undo()
        os.set_blocking(master, False)
        out = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except (BlockingIOError, OSError):
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(slave)
        os.close(master)
    text = out.decode(errors="replace")
    assert "train hifigan_v3" in text and "2/2" in text


@pytest.mark.slow
@pytest.mark.network  # (a temporary Prefect server)
def test_the_train_flow_log_has_the_loss_lines(demo_corpus, tmp_path, monkeypatch, prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    from flows.train import train_flow

    project = demo_corpus.install(tmp_path / "project")
    params = project / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params_dict("hifigan_v3", train={"steps": 4, "log_every": 2})))
    monkeypatch.chdir(project)
    state = train_flow(params_path=str(params), return_state=True)
    assert state.is_completed()
    APILogHandler().flush()
    with get_client(sync_client=True) as client:
        logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[state.state_details.flow_run_id])))
    messages = [entry.message for entry in logs]
    assert _steps(messages, LOSS_LINE) == [2, 4], messages
    assert not any("\r" in m for m in messages)
    assert (project / "plots" / "train" / "g_loss.png").is_file()
