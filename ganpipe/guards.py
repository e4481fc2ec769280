"""Guards on promotion a team wants besides "better than the champion" (applied by the register step).

* **A floor** (``registry.min_quality``): a version whose primary metric is worse than the floor is
  never promoted, champion or not.
* **The parent** (``registry.fine_tune_must_beat_parent``): a model fine-tuned from another
  (``train.fine_tune_from``: a registered version, or a file such as an imported published
  checkpoint) records its parent on its version (tags ``parent``, ``parent_model``,
  ``parent_version``, ``parent_sha256``, ``parent_source_sha256``) and is compared with it on the
  same evaluation clips (:mod:`ganpipe.rescoring`); a fine-tune worse than its parent is not
  promoted, whatever name it is registered under, and the reason names both numbers.
* **A person** (``registry.approval: manual``): the version the rule would promote gets
  ``registry.challenger_alias`` instead of the champion alias; :func:`promote_by_hand`
  (``ganpipe promote NAME VERSION --reason ...``) makes a version champion and logs who/why as
  tags (``decision=champion``, ``decision_reason``, ``approved_at``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ganpipe.config import Params


def parent_of(fine_tune_from: str | None, client: Any, root: Path) -> dict[str, str]:
    """What a model fine-tuned from ``fine_tune_from`` records as its parent (empty: trained from
    scratch). A registered model's alias is resolved to its version now (the alias moves later)."""
    if not fine_tune_from:
        return {}
    source = str(fine_tune_from)
    if source.startswith("models:/"):
        rest = source[len("models:/"):]
        name, version = rest, None
        if "@" in rest:
            name, alias = rest.split("@", 1)
            try:
                version = str(client.get_model_version_by_alias(name, alias).version)
            except Exception:  # noqa: BLE001 - an alias of another store: recorded as given
                version = None
        elif "/" in rest:
            name, version = rest.split("/", 1)
        out = {"parent": source, "parent_model": name}
        if version:
            out["parent_version"] = version
            out["parent"] = f"models:/{name}/{version}"
        return out
    from ganpipe.mlflow_store import file_sha256

    path = Path(source) if Path(source).is_absolute() else root / source
    out = {"parent": source}
    if path.is_file():
        out["parent_sha256"] = file_sha256(path)
        try:
            import torch

            meta = torch.load(path, map_location="cpu", weights_only=True)
            src = meta.get("source") if isinstance(meta, dict) else None
            if isinstance(src, dict) and src.get("sha256"):
                out["parent_source_sha256"] = str(src["sha256"])  # an imported published checkpoint
        except Exception:  # noqa: BLE001 - a checkpoint without a source record
            pass
    return out


def parent_ref(tags: dict[str, str], root: Path) -> dict[str, str]:
    """How :class:`ganpipe.rescoring.EqualData` finds the parent: a registered version or a file."""
    if tags.get("parent_model") and tags.get("parent_version"):
        return {"model": tags["parent_model"], "version": tags["parent_version"]}
    source = tags.get("parent", "")
    if source and not source.startswith("models:/"):
        path = Path(source) if Path(source).is_absolute() else root / source
        return {"path": str(path), "label": source}
    return {}


def _worse(new: float, old: float, higher_is_better: bool) -> bool:
    return new < old if higher_is_better else new > old


def below_floor(new: float | None, metric: str, floor: float | None, higher_is_better: bool) -> str | None:
    """The veto of ``registry.min_quality`` (None: no veto)."""
    if floor is None:
        return None
    if new is None or _worse(new, floor, higher_is_better):
        shown = "missing" if new is None else f"{new:.4g}"
        return f"{metric} {shown} worse than registry.min_quality {floor:g}: not promoted"
    return None


def worse_than_parent(new: float | None, parent: float | None, label: str, metric: str, eval_set: str,
                      higher_is_better: bool) -> str | None:
    """The veto of ``registry.fine_tune_must_beat_parent`` (None: no veto, or no parent value)."""
    if parent is None or new is None or not _worse(new, parent, higher_is_better):
        return None
    return (f"fine-tune worse than its {label}: {metric} {new:.4g} vs {parent:.4g} on eval set {eval_set}: "
            "not promoted")


def _alias(client: Any, name: str, alias: str) -> Any | None:
    """The version holding ``alias`` (None: no such alias)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def promote_by_hand(params: Params, project_dir: str | Path, name: str, version: str, reason: str,
                    who: str | None = None) -> dict[str, str]:
    """Make ``version`` of ``name`` the champion (``ganpipe promote``): the champion alias moves,
    the challenger alias leaves it, and the decision is logged as tags. Returns the tags set."""
    from mlflow import MlflowClient

    from ganpipe.mlflow_store import project_tracking
    from ganpipe.registry_turns import registry_turn

    rp = params.registry
    tp = project_tracking(params.tracking, project_dir)
    with registry_turn(params, project_dir, name):
        client = MlflowClient(tracking_uri=tp.tracking_uri, registry_uri=tp.tracking_uri)
        mv = client.get_model_version(name, str(version))  # MlflowException when there is none
        before = _alias(client, name, rp.champion_alias)
        now = datetime.now(UTC).isoformat(timespec="seconds")
        tags = {"decision": "champion", "decision_reason": f"promoted by hand: {reason}",
                "approved_at": now, "decided_at": now,
                "champion_before_version": str(before.version) if before is not None else "none"}
        if who:
            tags["approved_by"] = who
        for k, v in tags.items():
            client.set_model_version_tag(name, mv.version, k, v)
        client.set_registered_model_alias(name, rp.champion_alias, mv.version)
        challenger = _alias(client, name, rp.challenger_alias)
        if challenger is not None and str(challenger.version) == str(mv.version):
            client.delete_registered_model_alias(name, rp.challenger_alias)
        return tags
