"""Model registry: the trained generator as a registered MLflow model, with candidate/champion aliases.

Both kinds of generator are registered: vocoders (mel -> waveform) and the unconditional variants
that make audio (``wavegan``, ``specgan``: latent -> waveform); see :mod:`ganpipe.serving` for each
one's pyfunc contract. ``mel_mlp_gan`` (single mel frames, no waveform; the evaluate stage refuses
it too) is refused with a :class:`RegistryError`.

:func:`register_generator` (the register stage, ``flows/register.py``, and the retrain flow):

1. reads ``models/generator.pt`` and ``metrics/eval.json`` (they must describe the same model:
   same variant and training step; the primary metric, below, must be one of its keys) and hashes
   the generator: the file (``generator_sha256``) and its content (``weights_sha256``:
   architecture, weights, mel configuration and statistics, label names; ``torch.save`` writes
   different bytes for the same weights each time);
2. in its turn at the registry (:mod:`ganpipe.registry_turns`: a lock file beside a local sqlite
   database; a lease in the store itself for a shared store, a tracking server, so clones on other
   machines take turns too: concurrent registrations run one after the other), looks for a
   version of the registered model with the same file or content hash: if there is one, nothing
   new is created (idempotent). A registered model holds one kind of generator: registering a
   vocoder under the name of an unconditional model (or the reverse, with an explicit
   ``registry.model_name``) is refused;
3. otherwise logs an MLflow run with the evaluation metrics and the generator as a pyfunc model
   (:mod:`ganpipe.serving`: signature, metadata, pip requirements, the ``ganpipe`` code, and an
   ONNX export when ``registry.export_onnx``: vocoders, and WaveGAN; SpecGAN's Griffin-Lim is
   not exported, recorded as ``onnx: false`` with the reason) and registers it as a new version
   with tags: ``generator_sha256``, ``weights_sha256``, ``variant``, ``kind``, ``dataset``,
   ``sample_rate``, ``training_step``, ``training_run_id``, ``git_commit``, ``git_dirty``,
   ``data_features_md5``, ``data_prepared_md5``, ``eval_<metric>`` for every metric, for an imported
   published checkpoint (:mod:`ganpipe.importing`) ``source_format``, ``source_sha256``,
   ``source_steps``, ``source_file``, and by kind:
   ``hop_length``, ``n_mels``, ``mel_config`` (JSON) for vocoders; ``latent_dim``, ``samples``,
   ``labels`` (JSON) for unconditional models;
4. decides: the version gets alias ``registry.candidate_alias``; it also gets
   ``registry.champion_alias`` when it was made on the main line (:mod:`ganpipe.promotion`: not in
   a DVC experiment, no uncommitted changes besides pipeline outputs; ``registry.promote_from:
   any`` lifts this) and there is no champion, or when its metrics are comparable with the
   champion's (same mel configuration and evaluation set, tag ``comparability``; when they differ,
   the champion is first re-scored on the new version's clips, :mod:`ganpipe.rescoring`, and the
   guards of :mod:`ganpipe.guards` apply: the floor, a fine-tune's parent, manual approval) and its primary
   metric beats the champion's by more than ``registry.margin`` (lower is better unless
   ``ganpipe.metrics.HIGHER_IS_BETTER`` says otherwise). The primary metric is
   ``registry.primary_metric``; ``auto`` (the default) means ``mcd`` for vocoders and
   ``frechet_mel`` for unconditional models (:func:`primary_metric_for`). A new version whose
   metric is null/NaN in metrics/eval.json never displaces a champion; a champion without the
   metric is displaced by any version that has it. The decision and both metric values are stored as version tags
   (``decision``, ``decision_reason``, ``source``, ``comparable``, ``primary_metric``,
   ``primary_metric_value``, ``champion_before_version``, ``champion_before_value``, ``margin``,
   ``registration=complete``) and returned as a :class:`Registration` (``metrics/register.json``)
   with the aliases the registry holds afterwards. ``promote=True`` (``ganpipe register
   --promote``) makes it the champion whatever the rule says.

Registering a generator that is already registered re-evaluates its promotion (after the changes
it was made from are committed, ``ganpipe register`` promotes it) and reports the registry's real
aliases; a registration interrupted after the version was created is completed the same way.
Consumers load ``models:/<name>@champion`` (see :mod:`ganpipe.synthesis`). The store is
``$MLFLOW_TRACKING_URI`` when set, else ``tracking.tracking_uri``; an unreachable tracking server
fails the registration within ``tracking.server_timeout_seconds`` (:mod:`ganpipe.tracking_outage`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ganpipe.config import Params
from ganpipe.guards import parent_of
from ganpipe.importing.metadata import imported_tags, version_description
from ganpipe.mlflow_store import TransientError, file_sha256, project_tracking
from ganpipe.promotion import (
    Source,
    automatic_rule,
    finite,
    higher_is_better,
    primary_metric_for,
    profile,
    promotion_source,
)
from ganpipe.provenance import data_version, weights_sha256
from ganpipe.redaction import redact
from ganpipe.registry_turns import is_shared, registry_turn
from ganpipe.rescoring import EqualData
from ganpipe.tracking_outage import bounded_http, check_server, is_outage, unavailable

log = logging.getLogger("ganpipe.model_registry")


class RegistryError(RuntimeError):
    """A registration that cannot proceed (the message says why and what to do)."""


def check_primary_metric(metric: str, configured: str, metrics: dict[str, Any], source: str) -> None:
    """Fail when ``metric`` is not a key of metrics/eval.json (a null/NaN value is accepted: such a
    version is registered but never displaces a champion)."""
    if metric in metrics:
        return
    available = sorted(k for k, v in metrics.items() if k not in _NOT_METRICS and isinstance(v, (int, float))
                       and not isinstance(v, bool))
    how = f"registry.primary_metric={configured}" + (f" (-> {metric})" if configured != metric else "")
    raise RegistryError(
        f"{how}: metric {metric!r} is not in {source}; its metrics are {available or 'none'}. Set "
        "registry.primary_metric to one of them that the registry knows, or to 'auto' (mcd for vocoders, "
        "frechet_mel for unconditional models)")


def read_eval_metrics(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    if isinstance(source, dict):
        return dict(source)
    path = Path(source)
    if not path.is_file():
        raise RegistryError(f"evaluation metrics not found: {path} (run the evaluate stage first: dvc repro)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: expected a JSON object of metrics")
    return data


# ------------------------------------------------------------------------------------------------
# the result
@dataclass
class Registration:
    """One registration's outcome (what ``metrics/register.json`` holds, plus ``created``)."""

    model_name: str
    version: str
    model_uri: str
    decision: str  # "champion" (promoted) or "candidate" (kept the previous champion)
    promoted: bool
    decision_reason: str
    aliases_assigned: list[str]
    primary_metric: str
    higher_is_better: bool
    margin: float
    new_value: float | None
    champion_before_version: str | None
    champion_before_value: float | None
    generator_sha256: str
    weights_sha256: str
    variant: str
    kind: str  # "vocoder" or "unconditional"
    run_id: str | None
    data_version: dict[str, Any]
    eval_metrics: dict[str, float]
    aliases: list[str]  # the aliases this version holds now (after the decision), from the registry
    champion_version: str | None  # the version holding the champion alias now
    source: str  # where the version was registered from (main line, DVC experiment, uncommitted changes)
    comparable: bool | None  # metrics comparable with the champion's (None: no other champion)
    created: bool = True  # False: this generator file was registered before (nothing new)

    def to_dict(self, include_created: bool = False) -> dict[str, Any]:
        d = asdict(self)
        if not include_created:
            d.pop("created")
        return d


def _tag_value(value: str | None) -> Any:
    if value in (None, "", "none"):
        return None
    return {"true": True, "false": False}.get(value, value)


def _registration_from_version(mv: Any, created: bool, champion_alias: str, champion_version: str | None
                               ) -> Registration:
    """The outcome as the registry holds it now: ``promoted`` and ``aliases`` are the version's
    real aliases (not what an earlier decision recorded)."""
    t = dict(mv.tags)
    before = t.get("champion_before_version") or None
    held = sorted(getattr(mv, "aliases", None) or [])
    return Registration(
        model_name=mv.name, version=str(mv.version), model_uri=f"models:/{mv.name}/{mv.version}",
        decision=t.get("decision", "candidate"), promoted=champion_alias in held,
        decision_reason=t.get("decision_reason", ""),
        aliases_assigned=[a for a in t.get("aliases_assigned", "").split(",") if a],
        primary_metric=t.get("primary_metric", ""), higher_is_better=t.get("higher_is_better") == "true",
        margin=float(t.get("margin", "0") or 0), new_value=finite(t.get("primary_metric_value")),
        champion_before_version=None if before in (None, "none") else before,
        champion_before_value=finite(t.get("champion_before_value")),
        generator_sha256=t.get("generator_sha256", ""), weights_sha256=t.get("weights_sha256", ""),
        variant=t.get("variant", ""), kind=t.get("kind", "vocoder"), run_id=mv.run_id,
        data_version={k: _tag_value(t.get(k)) for k in ("git_commit", "git_dirty", "data_features_md5",
                                                         "data_prepared_md5")},
        eval_metrics={k[len("eval_"):]: float(v) for k, v in sorted(t.items())
                      if k.startswith("eval_") and finite(v) is not None},
        aliases=held, champion_version=champion_version, source=t.get("source", ""),
        comparable={"true": True, "false": False}.get(t.get("comparable", "")),
        created=created,
    )


# ------------------------------------------------------------------------------------------------
# logging the model
def _version_tags(loaded: Any, core: Any, sha: str, content: str, dataset: str, data: dict[str, Any],
                  metrics: dict[str, Any], comparability: dict[str, Any]) -> dict[str, str]:
    tags = {
        "generator_sha256": sha, "weights_sha256": content, "variant": loaded.bundle.variant,
        "kind": loaded.bundle.kind, "dataset": dataset, "training_step": str(loaded.meta.get("step")),
        "training_run_id": str(loaded.meta.get("run_id") or "none"),
        "comparability": json.dumps(comparability, sort_keys=True),
    }
    source = loaded.meta.get("source")
    if source:  # an imported published checkpoint (ganpipe import-model)
        tags.update({"source_format": str(source.get("format")), "source_sha256": str(source.get("sha256")),
                     "source_steps": str(source.get("steps")), "source_file": Path(str(source.get("file"))).name})
    if loaded.bundle.kind == "vocoder":
        tags.update({"sample_rate": str(loaded.mel_config.sample_rate), "hop_length": str(loaded.mel_config.hop_length),
                     "n_mels": str(loaded.mel_config.n_mels), "mel_config": loaded.mel_config.to_json()})
    else:
        tags.update({"sample_rate": str(core.sample_rate), "latent_dim": str(core.latent_dim),
                     "samples": str(core.samples), "labels": json.dumps(core.labels)})
    tags.update({k: "none" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
                 for k, v in data.items()})
    tags.update(imported_tags(source))  # an imported model: its source, not the project's corpus
    for k, v in _numeric_metrics(metrics).items():
        tags[f"eval_{k}"] = repr(v)
    return tags


def _core(loaded: Any) -> Any:
    """The serving core of ``loaded`` (:mod:`ganpipe.serving.cores`: checks that it can be served, e.g.
    that an unconditional variant makes audio); RegistryError otherwise."""
    from ganpipe.serving.contract import InputError
    from ganpipe.serving.cores import make_core

    try:
        return make_core(loaded)
    except InputError as exc:
        raise RegistryError(f"{loaded.bundle.variant} cannot be registered as a model: {exc}") from None


# Numbers of metrics/eval.json that are counts or bookkeeping, not quality metrics.
_NOT_METRICS = frozenset({"step", "utterances", "skipped", "real_clips", "generated_clips", "ndb_bins"})


def _numeric_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The finite metric values of metrics/eval.json (counts and the training step left out)."""
    return {k: float(v) for k, v in metrics.items() if k not in _NOT_METRICS and isinstance(v, (int, float))
            and not isinstance(v, bool) and finite(v) is not None}


def _log_model(client: Any, exp_id: str, name: str, gen_path: Path, loaded: Any, core: Any,
               metrics: dict[str, Any], tags: dict[str, str], params: Params, metric: str,
               project_dir: Path | str = ".") -> Any:
    import mlflow

    from ganpipe.serving.packaging import package_model

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    rp = params.registry
    with tempfile.TemporaryDirectory(prefix="ganpipe-register-") as tmp_dir:
        package = package_model(Path(tmp_dir), gen_path, loaded, core, rp.export_onnx,
                                with_int8=rp.export_int8, project_dir=project_dir)
        eval_numeric = _numeric_metrics(metrics)
        metadata = {
            **package.metadata,
            "generator_sha256": tags["generator_sha256"], "weights_sha256": tags["weights_sha256"],
            "training_step": loaded.meta.get("step"),
            "training_run_id": loaded.meta.get("run_id"), "dataset": tags["dataset"],
            "data_version": {k: tags.get(k) for k in ("git_commit", "git_dirty", "data_features_md5",
                                                      "data_prepared_md5")},
            "eval_metrics": eval_numeric,
            "primary_metric": metric,
        }
        run_tags = {"ganpipe.stage": "register", "generator_sha256": tags["generator_sha256"],
                    "training_run_id": tags["training_run_id"]}
        training_run = loaded.meta.get("run_id")
        if training_run:
            try:
                client.get_run(training_run)
                run_tags["mlflow.parentRunId"] = training_run  # shown under the training run
            except Exception:  # noqa: BLE001 - trained against another store: no link
                pass
        with mlflow.start_run(experiment_id=exp_id, run_name=f"register-{name}-{tags['generator_sha256'][:8]}",
                              tags=run_tags) as run:
            mlflow.log_params({"registered_model": name, "primary_metric": metric,
                               "margin": rp.margin, "variant": loaded.bundle.variant,
                               "generator_sha256": tags["generator_sha256"]})
            if eval_numeric:
                mlflow.log_metrics({f"eval_{k}": v for k, v in eval_numeric.items()})
            info = mlflow.pyfunc.log_model(
                name=package.artifact_name, python_model=str(package.loader), artifacts=package.artifacts,
                code_paths=[str(package.code)], signature=package.signature,
                pip_requirements=package.pip_requirements, metadata=metadata,
                input_example=package.example)  # documents the request (serving_input_example.json)
        if not _registered_model_exists(client, name):
            client.create_registered_model(
                name, description=(f"{package.description} Aliases: {rp.candidate_alias} = newest version, "
                                   f"{rp.champion_alias} = best on {metric}."))
        return client.create_model_version(
            name, source=info.model_uri, run_id=run.info.run_id, tags=tags, model_id=info.model_id,
            description=version_description(loaded, tags["generator_sha256"]))


def _registered_model_exists(client: Any, name: str) -> bool:
    from mlflow.exceptions import MlflowException

    try:
        client.get_registered_model(name)
        return True
    except MlflowException:
        return False


def _find_version(client: Any, name: str, sha: str, content: str) -> Any | None:
    """The (first) version registered from the same file or from the same weights."""
    if not _registered_model_exists(client, name):
        return None
    found = [*client.search_model_versions(f"name = '{name}' and tag.generator_sha256 = '{sha}'"),
             *client.search_model_versions(f"name = '{name}' and tag.weights_sha256 = '{content}'")]
    return min(found, key=lambda v: int(v.version)) if found else None


def _check_same_kind(client: Any, name: str, loaded: Any) -> None:
    """A registered model holds one kind of generator (its consumers rely on one contract)."""
    if not _registered_model_exists(client, name):
        return
    kind = loaded.bundle.kind
    other = [v for v in client.search_model_versions(f"name = '{name}'") if v.tags.get("kind", "vocoder") != kind]
    if other:
        v = min(other, key=lambda v: int(v.version))
        raise RegistryError(
            f"registered model {name!r} holds {v.tags.get('kind', 'vocoder')} models (version {v.version}: "
            f"{v.tags.get('variant')}); {loaded.bundle.variant} is {kind}: register it under another name "
            "(registry.model_name)")


def alias_version(client: Any, name: str, alias: str) -> Any | None:
    """The model version holding ``alias``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def _guarded(client: Any, mv: Any, params: Params, metric: str, promote: bool, reason: str,
             equal: EqualData | None, root: Path | None) -> tuple[bool, str]:
    """The rule's decision after the guards (ganpipe.guards): the floor, and a fine-tune's parent."""
    from ganpipe import guards

    hib = higher_is_better(metric)
    new = finite(mv.tags.get(f"eval_{metric}"))
    veto = guards.below_floor(new, metric, params.registry.min_quality, hib) if promote else None
    ref = guards.parent_ref(mv.tags, root) if root is not None else {}
    if promote and veto is None and ref and params.registry.fine_tune_must_beat_parent and equal is not None:
        try:
            parent, label = equal.parent_value(client, ref, metric)
        except Exception as exc:  # noqa: BLE001 - a parent that cannot be scored does not block
            log.warning("could not score the parent %s: %s", ref, exc)
            parent, label = None, ""
        veto = guards.worse_than_parent(new, parent, label, metric, str(equal.eval_set), hib)
    return (False, f"{veto} ({reason})") if veto else (promote, reason)


def _rule(client: Any, mv: Any, champ: Any | None, params: Params, metric: str, source: Source,
          promote_request: bool, equal: EqualData | None, root: Path | None
          ) -> tuple[bool, bool, str, Any, str, str]:
    """A new decision for ``mv`` against the champion, on equal data (the champion re-scored when
    the evaluation sets differ), after the guards: (promote, challenger, reason, comparable,
    champion version before, its value)."""
    rp = params.registry
    champ_tags = champ.tags if champ is not None else None
    if champ is not None and equal is not None and rp.rescore:
        champ_tags = equal.champion_tags(client, champ)
    promote, reason, comparable = automatic_rule(
        mv.tags, champ_tags, str(champ.version) if champ is not None else None,
        metric, rp.margin, source, rp.promote_from)
    if champ is not None and equal is not None and equal.blocked and reason.startswith("not comparable"):
        reason = (f"not comparable with champion v{champ.version}: {equal.blocked}, which re-scoring cannot "
                  f"equalise: champion kept (`ganpipe register --promote` to replace it)")
    promote, reason = _guarded(client, mv, params, metric, promote, reason, equal, root)
    challenger = False
    if promote_request and not promote:
        reason = f"promoted on request (--promote); the automatic rule would keep it a candidate: {reason}"
        promote = True
    elif promote and rp.approval == "manual" and not promote_request:
        promote, challenger = False, True
        reason = (f"{reason}; awaiting approval (registry.approval: manual): "
                  f"`ganpipe promote {mv.name} {mv.version} --reason ...`")
    old = finite(champ_tags.get(f"eval_{metric}")) if champ_tags is not None else None
    return (promote, challenger, reason, comparable, str(champ.version) if champ is not None else "none",
            repr(old) if old is not None else "none")


def _decide(client: Any, mv: Any, params: Params, metric: str, source: Source, promote_request: bool,
            equal: EqualData | None = None, root: Path | None = None) -> Any:
    """Decide (or re-evaluate) whether ``mv`` is the champion, set the aliases and record the
    decision in the version's tags; returns the version as the registry holds it afterwards.
    ``equal``: the evaluation data to re-score the champion (and a fine-tune's parent) on."""
    rp = params.registry
    hib = higher_is_better(metric)
    new = finite(mv.tags.get(f"eval_{metric}"))
    champ = alias_version(client, mv.name, rp.champion_alias)
    already = champ is not None and str(champ.version) == str(mv.version)
    challenger = False
    if already:  # a re-run for the champion, or completing its interrupted registration
        promote, comparable = True, _tag_value(mv.tags.get("comparable"))
        reason = mv.tags.get("decision_reason") or "already the champion"
        before_version = mv.tags.get("champion_before_version", "none")
        before_value = mv.tags.get("champion_before_value", "none")
        source_text = mv.tags.get("source") or source.description
    else:
        promote, challenger, reason, comparable, before_version, before_value = _rule(
            client, mv, champ, params, metric, source, promote_request, equal, root)
        source_text = source.description
    # candidate = the newest version (an older one completed or re-evaluated late does not take it back)
    newest = max(int(v.version) for v in client.search_model_versions(f"name = '{mv.name}'"))
    candidate = int(mv.version) >= newest
    aliases = ([rp.candidate_alias] if candidate else []) + ([rp.champion_alias] if promote else []) + \
        ([rp.challenger_alias] if challenger else [])
    decision = {
        "decision": "champion" if promote else "challenger" if challenger else "candidate",
        "decision_reason": reason,
        "primary_metric": metric, "primary_metric_value": repr(new) if new is not None else "none",
        "higher_is_better": str(hib).lower(), "margin": repr(float(rp.margin)),
        "champion_before_version": before_version, "champion_before_value": before_value,
        "aliases_assigned": ",".join(aliases), "source": source_text,
        "comparable": "none" if comparable is None else str(comparable).lower(),
    }
    now = datetime.now(UTC).isoformat(timespec="seconds")
    if any(mv.tags.get(k) != v for k, v in decision.items()):  # a first decision, or a changed one
        if "registered_at" not in mv.tags:
            decision["registered_at"] = now
        decision["decided_at"] = now
        for key, value in decision.items():
            client.set_model_version_tag(mv.name, mv.version, key, value)
    if candidate and rp.candidate_alias not in (mv.aliases or []):
        client.set_registered_model_alias(mv.name, rp.candidate_alias, mv.version)
    if promote and not already:
        client.set_registered_model_alias(mv.name, rp.champion_alias, mv.version)
        _check_alias(client, mv, rp.champion_alias)
    if challenger and rp.challenger_alias not in (mv.aliases or []):
        client.set_registered_model_alias(mv.name, rp.challenger_alias, mv.version)
    if equal is not None and equal.notes and mv.tags.get("rescoring") != "; ".join(equal.notes):
        client.set_model_version_tag(mv.name, mv.version, "rescoring", "; ".join(equal.notes)[:5000])
    if mv.tags.get("registration") != "complete":
        client.set_model_version_tag(mv.name, mv.version, "registration", "complete")
    return client.get_model_version(mv.name, mv.version)


def _check_alias(client: Any, mv: Any, alias: str) -> None:
    """Read the alias back: a writer outside the registry turn (a person in the MLflow UI) that
    moved it meanwhile makes this registration transient: its retry decides again."""
    now = alias_version(client, mv.name, alias)
    if now is None or str(now.version) != str(mv.version):
        raise TransientError(f"{mv.name}@{alias} moved to version {now.version if now else 'none'} while version "
                             f"{mv.version} was being promoted: registration to be re-run")


# ------------------------------------------------------------------------------------------------
# the entry point
def _read_inputs(root: Path, generator: str | Path,
                 eval_metrics: str | Path | dict[str, Any]) -> tuple[Path, Any, dict[str, Any]]:
    """The generator file (path, loaded) and its evaluation metrics, checked to describe the same model."""
    from ganpipe.generator_io import load_generator

    gen_path = Path(generator) if Path(generator).is_absolute() else root / generator
    if not gen_path.is_file():
        raise RegistryError(f"generator file not found: {gen_path} (run the train stage first: dvc repro)")
    if not isinstance(eval_metrics, dict) and not Path(eval_metrics).is_absolute():
        eval_metrics = root / eval_metrics
    metrics = read_eval_metrics(eval_metrics)
    loaded = load_generator(gen_path)
    for key, ours in (("variant", loaded.bundle.variant), ("step", loaded.meta.get("step"))):
        if key in metrics and ours is not None and metrics[key] != ours:
            raise RegistryError(
                f"the evaluation metrics ({key}={metrics[key]!r}) do not describe {gen_path.name} ({key}={ours!r}): "
                "run the evaluate stage for this generator first (dvc repro)")
    return gen_path, loaded, metrics


def register_generator(generator: str | Path, eval_metrics: str | Path | dict[str, Any], params: Params,
                       project_dir: str | Path = ".", promote: bool = False,
                       source: Source | None = None, model_name: str | None = None,
                       parent: str | None = None) -> Registration:
    """Register ``generator`` (a ganpipe generator file) with its evaluation metrics; see module doc.

    Relative paths (``generator``, ``eval_metrics``, a relative sqlite tracking database and
    artifact folder) are taken relative to ``project_dir``. ``promote``: make it the champion
    whatever the rule says (``ganpipe register --promote``). ``source``: where the model comes from
    (default: :func:`ganpipe.promotion.promotion_source` of ``project_dir`` and this process's
    environment). A generator registered before is not registered again: its promotion is
    re-evaluated (e.g. after the changes it was made from were committed). ``model_name``: the
    registered model's name (default: ``registry.model_name``'s rule). ``parent``: the model it was
    fine-tuned from (default: ``train.fine_tune_from``; ganpipe.guards).
    """
    root = Path(project_dir).resolve()
    gen_path, loaded, metrics = _read_inputs(root, generator, eval_metrics)
    kind = loaded.bundle.kind
    core = _core(loaded)  # can it be served? (mel_mlp_gan makes no audio)
    metric = primary_metric_for(params.registry.primary_metric, kind)
    check_primary_metric(metric, params.registry.primary_metric, metrics,
                         "the evaluation metrics" if isinstance(eval_metrics, dict) else str(eval_metrics))
    sha, content = file_sha256(gen_path), weights_sha256(gen_path)
    name = model_name or params.registry.registered_name(params.dataset.name, loaded.bundle.variant)
    data = data_version(root)
    source = source or promotion_source(root)
    comparability = comparability_profile(loaded, core, metrics, params, root)
    tp = project_tracking(params.tracking, root)
    budget = params.tracking.server_timeout_seconds
    with bounded_http(budget):
        check_server(tp.tracking_uri, budget)
        started = time.monotonic()
        try:
            with registry_turn(params, root, name):
                return _register_in_turn(tp, params, root, name, gen_path, loaded, core, metrics, sha, content,
                                         data, source, comparability, metric, promote, parent)
        except Exception as exc:
            if is_outage(exc):
                raise unavailable(tp.tracking_uri, exc, time.monotonic() - started, budget) from None
            if redact(str(exc)) != str(exc):  # MLflow's messages name the request's URL
                raise RegistryError(f"{type(exc).__name__}: {redact(exc)}") from None
            raise


def _register_in_turn(tp: Any, params: Params, root: Path, name: str, gen_path: Path, loaded: Any, core: Any,
                      metrics: dict[str, Any], sha: str, content: str, data: dict[str, Any], source: Source,
                      comparability: dict[str, Any], metric: str, promote: bool, parent: str | None
                      ) -> Registration:
    """register_generator's steps 2-4 (module doc), in this process's turn at the registry."""
    from mlflow import MlflowClient

    from ganpipe.training.tracking import setup_mlflow

    exp_id = setup_mlflow(tp, root)  # in the turn: a new sqlite database is created once
    client = MlflowClient(tracking_uri=tp.tracking_uri, registry_uri=tp.tracking_uri)
    mv = _find_version(client, name, sha, content)
    created = mv is None
    if created:
        _check_same_kind(client, name, loaded)
        tags = _version_tags(loaded, core, sha, content, params.dataset.name, data, metrics, comparability)
        tags.update(parent_of(parent or params.train.fine_tune_from, client, root))
        mv = _log_model(client, exp_id, name, gen_path, loaded, core, metrics, tags, params, metric,
                        project_dir=root)  # the int8 export calibrates on the project's mels
        log.info("registered %s version %s", name, mv.version)
    else:
        log.info("%s (or the same weights) is already registered as %s version %s: no new version; "
                 "re-evaluating its promotion", gen_path.name, name, mv.version)
    equal = EqualData(root / "data" / "prepared", params.evaluation, comparability, tp.tracking_uri, [])
    mv = _decide(client, mv, params, metric, source, promote, equal, root)
    for note in equal.notes:
        log.info("%s", note)
    champ = alias_version(client, name, params.registry.champion_alias)
    return _registration_from_version(mv, created, params.registry.champion_alias,
                                      str(champ.version) if champ is not None else None)


def comparability_profile(loaded: Any, core: Any, metrics: dict[str, Any], params: Params,
                          root: Path) -> dict[str, Any]:
    """What another version's metrics must share to be compared with these (ganpipe.promotion)."""
    from ganpipe.promotion import eval_set_fingerprint

    ev = params.evaluation
    split = metrics.get("split") if isinstance(metrics.get("split"), str) else ev.split
    eval_set = metrics.get("eval_set") if isinstance(metrics.get("eval_set"), str) else \
        eval_set_fingerprint(root / "data" / "prepared" / "manifest.csv", split, ev.max_utterances)
    if loaded.bundle.kind == "vocoder":
        return profile("vocoder", mel_config=loaded.mel_config.to_dict(), eval_split=split, eval_set=eval_set)
    return profile(loaded.bundle.kind, sample_rate=core.sample_rate, samples=core.samples, eval_split=split,
                   eval_set=eval_set, metrics=metrics)


def champion(params: Params, project_dir: str | Path = ".", model_name: str | None = None) -> Any | None:
    """The current champion ModelVersion of the project's registered model (None if none)."""
    from mlflow import MlflowClient

    tp = project_tracking(params.tracking, project_dir)
    if tp.tracking_uri.startswith("sqlite:///") and not Path(tp.tracking_uri[len("sqlite:///"):]).is_file():
        return None  # no store yet (and do not create one outside the lock)
    name = model_name or params.registry.registered_name(params.dataset.name, params.model.variant)
    # a read: a local sqlite store is read between writers' turns; a server answers reads at any time
    turn = nullcontext() if is_shared(tp.tracking_uri) else registry_turn(params, project_dir, name)
    with turn:
        client = MlflowClient(tracking_uri=tp.tracking_uri, registry_uri=tp.tracking_uri)
        if not _registered_model_exists(client, name):
            return None
        return alias_version(client, name, params.registry.champion_alias)


def write_register_json(path: str | Path, registration: Registration | dict[str, Any]) -> None:
    from ganpipe.atomic import write_json

    data = registration.to_dict() if isinstance(registration, Registration) else registration
    write_json(path, data)
