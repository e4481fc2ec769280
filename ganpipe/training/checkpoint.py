"""Checkpoints: atomic writes, keep-last-K, resume from the newest *valid* one, safe loading.

A checkpoint is a plain dict of tensors, numbers, strings and lists (no pickled objects), so it
loads with ``torch.load(weights_only=True)``. Files are ``step_000000100.pt``; a write goes to a
temporary file that is renamed into place, so a killed job never leaves a truncated checkpoint
under a final name. If the newest file is unreadable anyway (disk trouble), the previous one is used.
"""

from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Any

import torch

from ganpipe.atomic import atomic_path

log = logging.getLogger(__name__)
_NAME = re.compile(r"^step_(\d{9})\.pt$")


def checkpoint_path(ckpt_dir: str | Path, step: int) -> Path:
    return Path(ckpt_dir) / f"step_{step:09d}.pt"


def list_checkpoints(ckpt_dir: str | Path) -> list[tuple[int, Path]]:
    d = Path(ckpt_dir)
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def save(state: dict[str, Any], ckpt_dir: str | Path, step: int, keep_last: int) -> Path:
    path = checkpoint_path(ckpt_dir, step)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    for _, old in list_checkpoints(ckpt_dir)[:-keep_last]:
        old.unlink(missing_ok=True)
    # temporary files of writes that a killed job never finished (atomic_path's naming)
    for stale in Path(ckpt_dir).glob(".step_*.pt.tmp-*"):
        stale.unlink(missing_ok=True)
    return path


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=True)


def load_latest(ckpt_dir: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
    """The newest checkpoint that loads; ``None`` when there is none."""
    for step, path in reversed(list_checkpoints(ckpt_dir)):
        try:
            state = load(path, map_location)
        except Exception as exc:  # noqa: BLE001 - truncated/corrupt file: fall back to the previous one
            log.warning("checkpoint %s is unreadable (%s: %s); trying an older one", path, type(exc).__name__, exc)
            continue
        if state.get("step") == step:
            return state
        log.warning("checkpoint %s records step %s; skipping it", path, state.get("step"))
    return None


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": list(_py_state())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _py_state() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"].cpu())
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
