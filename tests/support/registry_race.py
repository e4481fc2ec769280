"""Two clones registering at once against one tracking server (tests/team_mlflow/test_team_registry_race.py).

Each clone is a process of its own with a project folder of its own (no file both could lock); before
each try both wait at a barrier, then register their own generator under the try's model name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.support.registry_project import eval_json, make_generator


def make_clone(root: Path, tries: int, seed: int, mcd: float) -> Path:
    """A project folder with one tiny generator (and its metrics) per try."""
    from tests.conftest import write_params

    root.mkdir(parents=True)
    write_params(root / "params.yaml", {"registry": {"export_onnx": False, "lock_timeout_seconds": 300}})
    for i in range(tries):
        make_generator(root / "gens" / f"g{i}.pt", seed=seed * 1000 + i)
        eval_json(root / "gens" / f"e{i}.json", mcd=mcd)
    return root


def register_tries(project: str, url: str, tries: int, barrier: Any, results: Any) -> None:
    """Process target: ``tries`` registrations, each started with the other clone's."""
    os.environ["MLFLOW_TRACKING_URI"] = url
    from ganpipe.config import load_params
    from ganpipe.model_registry import register_generator
    from ganpipe.promotion import Source

    root = Path(project)
    params = load_params(root / "params.yaml")
    for i in range(tries):
        barrier.wait(timeout=600)
        try:
            reg = register_generator(root / "gens" / f"g{i}.pt", root / "gens" / f"e{i}.json", params, root,
                                     source=Source(True, "main line (test)"), model_name=model_name(i))
            results.put((project, i, reg.version, reg.decision, None))
        except Exception as exc:  # noqa: BLE001 - reported to the test
            results.put((project, i, None, None, repr(exc)))


def model_name(i: int) -> str:
    return f"team-race-{i}"
