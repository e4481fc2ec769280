"""Where a registered generator came from: a content hash of its file (the same weights give the
same hash whatever bytes ``torch.save`` wrote) and the version of the code and data it was made from
(git commit, uncommitted changes, the dvc.lock hashes of the prepared audio and the features).
Recorded as tags of every registered version (:mod:`ganpipe.model_registry`)."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

from ganpipe.promotion import uncommitted_changes


def weights_sha256(path: str | Path) -> str:
    """Content hash of a generator file: variant, architecture config, weights (names, dtypes,
    shapes, bytes), mel configuration + statistics and label names; not the step or run id."""
    import torch

    obj = torch.load(path, map_location="cpu", weights_only=True)
    h = hashlib.sha256()
    h.update(json.dumps({k: obj.get(k) for k in ("format", "variant", "config", "mel_config", "label_names")},
                        sort_keys=True, default=str).encode())

    def add(name: str, t: Any) -> None:
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())

    for name in sorted(obj["state_dict"]):
        add(name, obj["state_dict"][name])
    for name in sorted(obj.get("mel_stats", {})):
        add(f"mel_stats.{name}", obj["mel_stats"][name])
    return h.hexdigest()


def _git(root: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def data_version(project_dir: str | Path = ".") -> dict[str, Any]:
    """Git commit (+ whether tracked files other than pipeline outputs differ from it:
    :func:`ganpipe.promotion.uncommitted_changes`) and the dvc.lock hashes of the data."""
    import yaml

    root = Path(project_dir).resolve()
    commit = _git(root, "rev-parse", "HEAD")
    changed = uncommitted_changes(root) if commit else None  # what dvc repro writes does not count
    out: dict[str, Any] = {"git_commit": commit, "git_dirty": bool(changed) if changed is not None else None,
                           "data_features_md5": None, "data_prepared_md5": None}
    lock = root / "dvc.lock"
    if lock.is_file():
        try:
            stages = (yaml.safe_load(lock.read_text()) or {}).get("stages", {})
        except yaml.YAMLError:
            stages = {}
        for stage, path, key in (("features", "data/features", "data_features_md5"),
                                 ("prepare", "data/prepared", "data_prepared_md5")):
            for o in (stages.get(stage) or {}).get("outs", []) or []:
                if o.get("path") == path:
                    out[key] = o.get("md5")
    return out
