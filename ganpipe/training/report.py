"""What a training run reports: the progress bar while it runs (drawn only on a terminal), and at the
end ``metrics/train.json``, the curves as a CSV and one PNG per quantity (``plots/train/``: DVC image
plots, see :mod:`ganpipe.plots`)."""

from __future__ import annotations

import contextlib
import math
import time
from typing import TYPE_CHECKING, Any

import pandas as pd
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ganpipe.atomic import atomic_path, write_json
from ganpipe.plots import plot_training_curves

if TYPE_CHECKING:
    from ganpipe.training.setup import TrainPaths

SHOWN_ON_THE_BAR = ("g_loss", "d_loss", "g_mel_l1")


class Progress:
    """The tqdm bar (only when ``draw``: in a log file (Prefect, CI, nohup) its redraws are one endless
    line of carriage returns, and the trainer's log lines carry the same numbers there) and the speed
    since the last logged row. A context manager: on a terminal, log lines print above the bar."""

    def __init__(self, total: int, initial: int, description: str, draw: bool):
        self.bar = tqdm(total=total, initial=initial, desc=description, unit="step", disable=not draw,
                        dynamic_ncols=True)
        self._redirect = contextlib.ExitStack()
        if draw:
            self._redirect.enter_context(logging_redirect_tqdm())
        self._logged_at, self._logged_step = time.perf_counter(), initial

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.close()
        self._redirect.close()

    def advance(self) -> None:
        self.bar.update(1)

    def row_logged(self, row: dict[str, float], step: int) -> float:
        """Shows ``row``'s main losses on the bar; returns the steps per second since the last row."""
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k in SHOWN_ON_THE_BAR})
        now = time.perf_counter()
        speed = (step - self._logged_step) / max(now - self._logged_at, 1e-9)
        self._logged_at, self._logged_step = now, step
        return speed


def is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def train_metrics(counts: dict[str, int], steps_per_second: float, generator_parameters: int,
                  last_row: dict[str, float], audio_seconds_per_step: float | None,
                  first_val: float | None, last_val: float | None) -> dict[str, Any]:
    """``metrics/train.json``: ``counts`` (steps, skipped_steps, skipped_d_updates), the speed, the
    generator's size, the last logged row's finite values and the validation mel L1 before and after."""
    metrics = {
        **counts, "steps_per_second": round(steps_per_second, 4), "generator_parameters": generator_parameters,
        **{k: round(v, 6) for k, v in last_row.items() if k not in ("step",) and math.isfinite(v)},
    }
    if audio_seconds_per_step is not None:  # vocoders: seconds of training audio per second
        metrics["audio_seconds_per_second"] = round(steps_per_second * audio_seconds_per_step, 3)
    if first_val is not None:
        metrics["val_mel_l1_initial"] = round(first_val, 6)
    if last_val is not None:
        metrics["val_mel_l1"] = round(last_val, 6)
    return metrics


def write_outputs(paths: TrainPaths, metrics: dict[str, Any], history: list[dict[str, float]],
                  val_history: list[dict[str, float]]) -> None:
    """The metrics file, the curves as a CSV and the figures (the validations, from step 0 on, as one
    more quantity)."""
    write_json(paths.metrics, metrics)
    with atomic_path(paths.curve) as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False)
    figures = pd.DataFrame(history or {"step": []})
    if val_history:
        figures = figures.merge(pd.DataFrame(val_history), on="step", how="outer")
    plot_training_curves(paths.figure_dir, figures.sort_values("step"))
