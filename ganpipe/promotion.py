"""Promotion policy of the registry: where a model may become champion from, and what it may be compared with.

Two questions, answered before any metric is compared (:mod:`ganpipe.model_registry` applies them):

* **Source** (:func:`promotion_source`): a version may displace the champion only when it was made
  on the project's main line, that is

  - not inside a DVC experiment. ``dvc exp run`` (in the workspace, ``--temp``, or a queued run)
    gives every stage command ``DVC_EXP_NAME`` and ``DVC_EXP_BASELINE_REV`` in its environment
    (``dvc/repo/experiments/queue/base.py``: ``run_env``); temporary and queued runs also execute
    under ``<repo>/.dvc/tmp/exps/``;
  - not from uncommitted changes: files tracked by git that differ from ``HEAD`` (staged or not),
    except what the pipeline itself writes during ``dvc repro`` (``dvc.lock``, the ``outs``,
    ``metrics`` and ``plots`` of every stage of ``dvc.yaml``, top-level ``plots``/``metrics`` paths,
    and the ``.gitignore`` files DVC maintains). Changed code, ``params.yaml`` or ``dvc.yaml``
    count; untracked files do not (the pipeline never reads a file git does not know, unless a
    tracked one was changed to import it).

  A folder that is not in a git repository has no main line to check: treated as the main line.
  ``registry.promote_from: any`` lifts this rule (experiments and dirty trees compete too).

* **Comparability** (:func:`profile` / :func:`differences`): metrics are compared only between
  versions evaluated the same way. Vocoders: the same mel configuration (every field, including
  the sample rate, fmin/fmax, log base and normalisation), evaluation split and utterance set.
  Unconditional models: sample rate, clip length, evaluation split and utterance set, number of
  generated clips and NDB bins. The utterance set is a fingerprint of the evaluated rows of
  ``data/prepared/manifest.csv`` (id, sample rate and length of each; :func:`eval_set_fingerprint`).
  A field that one side does not record (a version registered before it was recorded, a project
  without a manifest) is not compared.

  When only the evaluation set (or split, or mel configuration) differs, the register step first
  scores the champion on the new version's clips (:mod:`ganpipe.rescoring`, cached on the
  champion's version) and compares those numbers: only different sample rates (or clip lengths)
  remain "not comparable".

* **The rule** (:func:`automatic_rule`): then the primary metric (:func:`primary_metric_for`:
  ``registry.primary_metric``, ``auto`` = ``mcd`` for vocoders, ``frechet_mel`` for unconditional
  models) must beat the champion's by more than ``registry.margin``, in its direction
  (:func:`higher_is_better`). A version without a finite value never displaces a champion; a
  champion without one is displaced by any version that has it.

An explicit request (``ganpipe register --promote``) overrides all of it; the reason says what the
automatic rule would have decided.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Environment variables DVC sets for the stage commands of `dvc exp run` (dvc.env).
EXPERIMENT_ENV = ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV")
# Where DVC runs temporary (--temp) and queued experiments: <repo>/.dvc/tmp/exps/...
EXPERIMENT_DIR_PARTS = (".dvc", "tmp", "exps")
# Listed at most in a reason.
_MAX_LISTED = 5


@dataclass(frozen=True)
class Source:
    """Where the version being registered comes from."""

    main_line: bool  # may displace the champion under registry.promote_from: main
    description: str  # e.g. "main line (commit 1a2b3c4)", "DVC experiment 'bushy-lamb' (baseline 1a2b3c4)"
    changed: tuple[str, ...] = field(default_factory=tuple)  # uncommitted files that count


def _git(root: Path, *args: str) -> subprocess.CompletedProcess | None:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None


def experiment(environ: Mapping[str, str], root: Path) -> str | None:
    """A description of the DVC experiment this process runs in, or None."""
    name = environ.get("DVC_EXP_NAME")
    baseline = environ.get("DVC_EXP_BASELINE_REV")
    if name or baseline:
        where = f" (baseline {baseline[:7]})" if baseline else ""
        return f"DVC experiment {name!r}{where}" if name else f"DVC experiment{where}"
    parts = Path(root).resolve().parts
    n = len(EXPERIMENT_DIR_PARTS)
    if any(parts[i:i + n] == EXPERIMENT_DIR_PARTS for i in range(len(parts) - n + 1)):
        return f"DVC experiment workspace {root}"
    return None


def _path_entries(entries: Any) -> list[str]:
    """Paths of a dvc.yaml ``outs``/``metrics``/``plots`` list (strings or one-key mappings)."""
    out: list[str] = []
    for entry in entries or []:
        if isinstance(entry, str):
            out.append(entry)
        elif isinstance(entry, dict):
            out.extend(str(k) for k in entry)
    return out


def pipeline_outputs(root: Path) -> list[str]:
    """What ``dvc repro`` writes, relative to ``root``: dvc.lock and every declared output."""
    import yaml

    paths = ["dvc.lock"]
    dvc_yaml = root / "dvc.yaml"
    try:
        spec = yaml.safe_load(dvc_yaml.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return paths
    for stage in (spec.get("stages") or {}).values():
        if isinstance(stage, dict):
            for key in ("outs", "metrics", "plots"):
                paths += _path_entries(stage.get(key))
    for key in ("metrics", "plots"):
        paths += _path_entries(spec.get(key))
    return [p.strip("/").removeprefix("./") for p in paths if p and "${" not in p]


def _is_output(rel: str, outputs: list[str]) -> bool:
    if rel == ".gitignore" or rel.endswith("/.gitignore"):
        return True  # DVC adds its outputs to the .gitignore beside them
    return any(rel == o or rel.startswith(o + "/") for o in outputs)


def uncommitted_changes(root: str | Path) -> list[str] | None:
    """Tracked files (relative to ``root``) that differ from HEAD, pipeline outputs left out; None
    when ``root`` is not in a git repository with a commit."""
    root = Path(root).resolve()
    prefix = _git(root, "rev-parse", "--show-prefix")
    status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=no")
    head = _git(root, "rev-parse", "--verify", "-q", "HEAD")
    if any(p is None or p.returncode for p in (prefix, status, head)):
        return None  # not a git work tree, or no commit yet
    assert prefix is not None and status is not None
    base = prefix.stdout.strip()
    outputs = pipeline_outputs(root)
    fields = status.stdout.split("\0")
    changed: list[str] = []
    i = 0
    while i < len(fields):
        item = fields[i]
        i += 1
        if len(item) < 4:
            continue
        code, path = item[:2], item[3:]
        if "R" in code or "C" in code:
            i += 1  # the original path of a rename/copy follows
        rel = path[len(base):] if base and path.startswith(base) else ("../" + path if base else path)
        if not _is_output(rel, outputs):
            changed.append(rel)
    return sorted(set(changed))


def promotion_source(root: str | Path, environ: Mapping[str, str] | None = None) -> Source:
    """Whether the model registered from ``root`` now comes from the main line (module doc)."""
    root = Path(root).resolve()
    environ = os.environ if environ is None else environ
    exp = experiment(environ, root)
    if exp:
        return Source(False, exp)
    changed = uncommitted_changes(root)
    if changed is None:
        return Source(True, "not a git repository (no main line to check)")
    if changed:
        listed = ", ".join(changed[:_MAX_LISTED]) + (f" (+{len(changed) - _MAX_LISTED} more)"
                                                     if len(changed) > _MAX_LISTED else "")
        return Source(False, f"uncommitted changes: {listed}", tuple(changed))
    head = _git(root, "rev-parse", "--short=7", "HEAD")
    return Source(True, f"main line (commit {head.stdout.strip() if head else '?'})")


# ------------------------------------------------------------------------------------------------
# comparability
def eval_set_fingerprint(manifest: str | Path, split: str, max_utterances: int | None) -> str | None:
    """A fingerprint of the utterances the evaluate stage scores: the rows of ``split`` in
    ``manifest`` (the first ``max_utterances``, as flows/evaluate.py selects them), by id, sample
    rate and length. None when the manifest is missing or unreadable."""
    from ganpipe.prepare import read_manifest

    path = Path(manifest)
    if not path.is_file():
        return None
    try:
        rows = read_manifest(path)
        rows = rows[rows["split"] == split]
        if max_utterances:
            rows = rows.head(max_utterances)
        items = [[str(r.utt_id), int(r.sample_rate), int(r.num_samples)] for r in rows.itertuples()]
    except (OSError, ValueError, KeyError, AttributeError):
        return None
    digest = hashlib.sha256(json.dumps(items, separators=(",", ":")).encode()).hexdigest()[:16]
    return f"{len(items)}:{digest}"


def folder_fingerprint(items: list[tuple[str, str, str]]) -> str:
    """:func:`eval_set_fingerprint` of a folder of reference wavs (``evaluation.folder_items``): by
    file name, sample rate and length."""
    import soundfile as sf

    rows = []
    for name, path, _ in items:
        try:
            info = sf.info(path)
            rows.append([name, int(info.samplerate), int(info.frames)])
        except RuntimeError:
            rows.append([name, 0, 0])
    digest = hashlib.sha256(json.dumps(rows, separators=(",", ":")).encode()).hexdigest()[:16]
    return f"{len(rows)}:{digest}"


def profile(kind: str, *, mel_config: dict[str, Any] | None = None, sample_rate: int | None = None,
            samples: int | None = None, eval_split: str | None = None, eval_set: str | None = None,
            metrics: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What must be equal for two versions' metrics to be comparable (module doc)."""
    metrics = metrics or {}
    out: dict[str, Any] = {"eval_split": eval_split, "eval_set": eval_set}
    if kind == "vocoder":
        out["mel_config"] = mel_config
    else:
        out.update(sample_rate=sample_rate, samples=samples, generated_clips=metrics.get("generated_clips"),
                   ndb_bins=metrics.get("ndb_bins"))
    return out


def profile_from_tags(tags: Mapping[str, str]) -> dict[str, Any]:
    """The comparability profile recorded on a version (``comparability`` tag), else what its older
    tags tell (the mel configuration; sample rate and clip length)."""
    if tags.get("comparability"):
        try:
            return json.loads(tags["comparability"])
        except json.JSONDecodeError:
            pass
    old: dict[str, Any] = {}
    if tags.get("mel_config"):
        try:
            old["mel_config"] = json.loads(tags["mel_config"])
        except json.JSONDecodeError:
            pass
    for key in ("sample_rate", "samples"):
        if tags.get(key, "").isdigit() and tags.get("kind", "vocoder") != "vocoder":
            old[key] = int(tags[key])
    return old


def _short(value: Any) -> str:
    return json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)


def differences(new: Mapping[str, Any], old: Mapping[str, Any]) -> list[str]:
    """What makes ``new`` and ``old`` incomparable (fields recorded on both sides that differ)."""
    out: list[str] = []
    for key in sorted(set(new) & set(old)):
        a, b = new[key], old[key]
        if a is None or b is None or a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            fields = [f"{k} {_short(a.get(k))} vs {_short(b.get(k))}" for k in sorted(set(a) | set(b))
                      if a.get(k) != b.get(k)]
            out.append(f"{key} ({', '.join(fields)})")
        else:
            out.append(f"{key} ({_short(a)} vs {_short(b)})")
    return out


# ------------------------------------------------------------------------------------------------
# the metric that decides, and its direction
class PromotionError(ValueError):
    """A promotion question without an answer (a metric with no known direction, a kind with no default)."""


# Directions of the metrics that ganpipe.metrics.HIGHER_IS_BETTER does not list (unconditional).
_EXTRA_HIGHER_IS_BETTER = {"frechet_mel": False, "ndb_fraction": False, "ndb": False}
# registry.primary_metric: auto -> this metric of the generator's kind
AUTO_PRIMARY_METRIC = {"vocoder": "mcd", "unconditional": "frechet_mel"}


def primary_metric_for(configured: str, kind: str) -> str:
    """The metric that decides promotion: ``configured`` (``registry.primary_metric``), or for
    ``auto`` the usual one of the generator's ``kind`` (``mcd`` / ``frechet_mel``)."""
    if configured != "auto":
        return configured
    if kind not in AUTO_PRIMARY_METRIC:
        raise PromotionError(f"registry.primary_metric=auto: no default metric for generators of kind {kind!r}")
    return AUTO_PRIMARY_METRIC[kind]


def higher_is_better(metric: str) -> bool:
    from ganpipe.metrics import HIGHER_IS_BETTER

    if metric in HIGHER_IS_BETTER:
        return HIGHER_IS_BETTER[metric]
    if metric in _EXTRA_HIGHER_IS_BETTER:
        return _EXTRA_HIGHER_IS_BETTER[metric]
    raise PromotionError(f"unknown metric {metric!r}: no direction (higher or lower is better) known")


def finite(value: Any) -> float | None:
    """``value`` as a float if it is a finite number, else None."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def automatic_rule(new_tags: Mapping[str, str], champion_tags: Mapping[str, str] | None, champion_version: str | None,
                   metric: str, margin: float, source: Source, promote_from: str) -> tuple[bool, str, bool | None]:
    """(promote, reason, comparable) for a new version with ``new_tags`` against the champion (its
    tags and version; None when there is none), by the rules of this module."""
    hib = higher_is_better(metric)
    new = finite(new_tags.get(f"eval_{metric}"))
    comparable: bool | None = None
    diff: list[str] = []
    if champion_tags is not None:
        diff = differences(profile_from_tags(new_tags), profile_from_tags(champion_tags))
        comparable = not diff
    if not source.main_line and promote_from == "main":
        how = ("apply the experiment (dvc exp apply), commit it, then run `ganpipe register`"
               if "experiment" in source.description else "commit, then run `ganpipe register`")
        return False, (f"{source.description}: not promoted (registry.promote_from: main; {how}, or "
                       "`ganpipe register --promote`)"), comparable
    if champion_tags is None:
        return True, "no champion yet", comparable
    if not comparable:
        return False, (f"not comparable with champion v{champion_version}: different "
                       f"{'; '.join(diff)}: champion kept (`ganpipe register --promote` to replace it)"), False
    old = finite(champion_tags.get(f"eval_{metric}"))
    if new is None:
        return False, f"{metric} of the new version is missing (not finite): champion kept", comparable
    if old is None:
        return True, f"champion v{champion_version} has no {metric}", comparable
    delta = (new - old) if hib else (old - new)
    promote = delta > margin
    word = "higher" if hib else "lower"
    eval_set = profile_from_tags(new_tags).get("eval_set")
    where = f" on eval set {short_eval_set(eval_set)}" if eval_set else ""
    return promote, (f"{metric} {new:.4g} vs champion v{champion_version} {old:.4g}{where}: "
                     f"{'promoted' if promote else 'champion kept'} ({word} is better; improvement "
                     f"{delta:.6g} {'>' if promote else '<='} margin {margin:g})"), comparable


def short_eval_set(eval_set: str) -> str:
    """``3:62337434c361b59b`` -> ``3:62337434…`` (for reasons)."""
    n, _, digest = str(eval_set).partition(":")
    return f"{n}:{digest[:8]}…" if digest else str(eval_set)
