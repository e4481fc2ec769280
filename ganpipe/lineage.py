"""What a retrain cycle leaves in git: nothing modified, and (``retrain.commit``) a tagged commit.

* ``params.yaml`` is restored to its bytes from before the cycle (``dvc exp run -S
  train.fine_tune_from=...`` writes the starting model into it), so the next cycle starts from the
  same committed tree and its model can be promoted.
* With ``retrain.commit`` (``auto``: when the tree was clean at the start) the cycle commits, on
  the current branch, what the pipeline wrote that git tracks or may track (``dvc.lock``, the
  ``metrics``/``plots`` of dvc.yaml, the ``.gitignore`` files DVC maintains) and tags that commit
  ``<registered model>-v<version>``: ``git checkout <tag> && dvc pull && dvc repro`` reproduces the
  version. A fine-tune's commit also holds ``params.yaml`` with its ``train.fine_tune_from`` (the
  tag reproduces it exactly); a second commit puts ``params.yaml`` back, so the tree ends clean.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ganpipe.promotion import pipeline_outputs

IDENTITY = ["-c", "user.name=ganpipe retrain", "-c", "user.email=ganpipe-retrain@localhost"]


class LineageError(RuntimeError):
    """A git command of the cycle's commit failed."""


def _git(root: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=120)
    if check and proc.returncode:
        raise LineageError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")
    return proc


def _identity(root: Path) -> list[str]:
    """No user.email configured (a service account): commit as ``ganpipe retrain``."""
    return [] if _git(root, "config", "user.email", check=False).stdout.strip() else IDENTITY


def tag_name(model_name: str, version: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "-", f"{model_name}-v{version}")


def restore(path: Path, before: bytes | None) -> bool:
    """Put ``path`` back to ``before`` (its bytes at the start); True when it had changed."""
    if before is None or not path.exists() or path.read_bytes() == before:
        return False
    path.write_bytes(before)
    return True


def _committable(root: Path) -> list[str]:
    """The pipeline's outputs that git tracks or would track (not ignored), and changed .gitignore files."""
    out = []
    for rel in pipeline_outputs(root):
        if (root / rel).exists() and _git(root, "check-ignore", "-q", rel, check=False).returncode != 0:
            out.append(rel)
    changed = _git(root, "ls-files", "-m", "-o", "--exclude-standard", "--", ".gitignore",
                   "*/.gitignore").stdout.split()
    return sorted(set(out) | set(changed))


def commit_cycle(root: Path, model_name: str, version: str, message: str, params_before: bytes | None,
                 params_file: str = "params.yaml") -> dict[str, str]:
    """Commit the cycle's outputs (and a fine-tune's params.yaml), tag it, then put params.yaml back
    (second commit). Returns ``{"commit": sha, "tag": name}`` (``tag`` empty when it exists already)."""
    ident = _identity(root)
    paths = _committable(root)
    params_changed = params_before is not None and (root / params_file).read_bytes() != params_before
    if params_changed:
        paths.append(params_file)
    if paths:
        _git(root, "add", "-A", "--", *paths)
    if _git(root, "diff", "--cached", "--quiet", check=False).returncode:
        _git(root, *ident, "commit", "-q", "-m", message)
    sha = _git(root, "rev-parse", "HEAD").stdout.strip()
    tag = tag_name(model_name, version)
    if _git(root, "rev-parse", "-q", "--verify", f"refs/tags/{tag}", check=False).returncode:
        _git(root, *ident, "tag", "-a", tag, "-m", message)
    else:
        tag = ""
    if params_changed:
        restore(root / params_file, params_before)
        _git(root, "add", "--", params_file)
        _git(root, *ident, "commit", "-q", "-m",
             f"retrain: {params_file} as before the cycle (the fine-tune's settings stay in {tag or sha[:7]})")
    return {"commit": sha, "tag": tag}


def tree_clean(root: Path) -> bool:
    """No tracked file differs from HEAD (``git status`` without untracked files is empty)."""
    proc = _git(root, "status", "--porcelain", "--untracked-files=no", check=False)
    return proc.returncode == 0 and not proc.stdout.strip()
