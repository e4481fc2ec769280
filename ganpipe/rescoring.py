"""Re-scoring a registered version on another evaluation set, so that promotion compares equal data.

A new version is evaluated on the project's current evaluation clips (the evaluate stage,
``metrics/eval.json``); the champion was evaluated on the clips of its own time. When the two
evaluation sets differ (the corpus grew, the split changed) or the mel configurations differ (the
metrics are measured on audio, so a model with another mel is scored with its own), the register
step scores the champion's generator on the new version's clips with the evaluate stage's code
(:func:`score_generator`: copy-synthesis, each model with its own mel and statistics) and decides
on those numbers.

The result is cached on the scored version as one tag per evaluation set,
``rescored.<fingerprint>`` (``:`` of :func:`ganpipe.promotion.eval_set_fingerprint` written ``_``),
whose JSON value holds the metrics, the seconds the scoring took and when: a second cycle on the
same set reads the tag and scores nothing.

Nothing can make the numbers comparable when the sample rates differ (the clips would have to be
resampled for one model; unconditional models: another clip length too): then the versions stay
"not comparable" with that reason. A project without ``data/prepared`` (registration outside the
pipeline) cannot re-score either; the comparability check decides as before.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ganpipe.config import EvaluationParams

log = logging.getLogger("ganpipe.rescoring")

TAG_PREFIX = "rescored."
# Profile fields re-scoring makes equal (what the clips are, and how each model turns audio into its input).
RESCORABLE = frozenset({"eval_set", "eval_split", "mel_config", "generated_clips", "ndb_bins"})


@dataclass(frozen=True)
class Rescored:
    """The metrics of one version on one evaluation set."""

    metrics: dict[str, float]
    seconds: float  # what the scoring took when it was done (a cached result keeps its first time)
    cached: bool  # read from the version's tag, nothing scored now


def tag_key(eval_set: str) -> str:
    """The tag holding a version's metrics on ``eval_set`` (MLflow tag keys take no ``:``)."""
    return TAG_PREFIX + eval_set.replace(":", "_")


def cached(tags: Mapping[str, str], eval_set: str) -> Rescored | None:
    raw = tags.get(tag_key(eval_set))
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return Rescored({k: float(v) for k, v in data["metrics"].items()}, float(data["seconds"]), True)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def sample_rate(profile: Mapping[str, Any]) -> int | None:
    mel = profile.get("mel_config")
    if isinstance(mel, dict) and mel.get("sample_rate"):
        return int(mel["sample_rate"])
    return int(profile["sample_rate"]) if profile.get("sample_rate") else None


def obstacle(new: Mapping[str, Any], old: Mapping[str, Any]) -> str | None:
    """Why re-scoring cannot make ``old``'s numbers comparable with ``new``'s (None: it can)."""
    a, b = sample_rate(new), sample_rate(old)
    if a is not None and b is not None and a != b:
        return f"different sample rates ({a} Hz vs {b} Hz)"
    if new.get("samples") is not None and old.get("samples") is not None and new["samples"] != old["samples"]:
        return f"different clip lengths ({new['samples']} vs {old['samples']} samples)"
    return None


def needs_rescoring(new: Mapping[str, Any], old: Mapping[str, Any]) -> bool:
    """Whether the profiles differ in a field re-scoring makes equal (both recorded)."""
    return any(new.get(k) is not None and old.get(k) is not None and new[k] != old[k] for k in RESCORABLE)


def _device(choice: str) -> str:
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return choice


def score_generator(loaded: Any, prepared: str | Path, ev: EvaluationParams, device: str,
                    keep_samples: int | None = None, griffin_lim_iterations: int | None = None) -> Any:
    """The evaluate stage's scoring of ``loaded`` on ``ev.split`` of ``prepared`` (an
    :class:`ganpipe.evaluation.EvalResult`): copy-synthesis for vocoders, the Fréchet distance and
    NDB for unconditional models."""
    import numpy as np

    from ganpipe import evaluation as E

    keep = ev.samples_to_save if keep_samples is None else keep_samples
    if loaded.bundle.kind == "vocoder":
        items = E.split_items(prepared, ev.split, ev.max_utterances)
        gl = ev.griffin_lim_iterations if griffin_lim_iterations is None else griffin_lim_iterations
        return E.evaluate_vocoder(loaded, items, device, keep, gl)
    rows = E.split_rows(prepared, ev.split, ev.max_utterances)
    described = loaded.bundle.description
    if not described.makes_audio:
        raise ValueError(f"{loaded.bundle.variant} generates single mel frames; evaluate it through a vocoder "
                         "(its frames have no waveform to score here)")
    length = described.clip_samples
    real = np.stack([E.read_clip(str(Path(prepared) / p), length, loaded.bundle.sample_rate) for p in rows["path"]])
    return E.evaluate_unconditional(loaded, real, ev.generated_clips, ev.ndb_bins, device, keep)


def _float(value: Any) -> float | None:
    from ganpipe.promotion import finite

    return finite(value)


def _numbers(summary: Mapping[str, Any]) -> dict[str, float]:
    from ganpipe.promotion import finite

    skip = {"utterances", "skipped", "rtf", "real_clips", "generated_clips", "ndb_bins", "step"}
    return {k: float(v) for k, v in summary.items() if k not in skip and not isinstance(v, bool)
            and isinstance(v, (int, float)) and finite(v) is not None}


def score_file(path: str | Path, prepared: str | Path, ev: EvaluationParams) -> tuple[dict[str, float], float]:
    """The metrics of the generator file ``path`` on the evaluation clips, and the seconds it took."""
    from ganpipe.generator_io import load_generator

    t0 = time.perf_counter()
    device = _device(ev.device)
    result = score_generator(load_generator(path, device), prepared, ev, device, keep_samples=0,
                             griffin_lim_iterations=0)
    return _numbers(result.summary), time.perf_counter() - t0


def rescore_version(client: Any, mv: Any, eval_set: str, prepared: str | Path, ev: EvaluationParams,
                    tracking_uri: str) -> Rescored:
    """``mv``'s metrics on ``eval_set`` (the clips of ``prepared``): from its tag when it was scored
    on this set before, else scored now (its generator downloaded from the registry) and cached."""
    hit = cached(mv.tags, eval_set)
    if hit is not None:
        log.info("%s v%s on eval set %s: cached (%s)", mv.name, mv.version, eval_set, tag_key(eval_set))
        return hit
    from ganpipe.mlflow_store import download_generator

    with tempfile.TemporaryDirectory(prefix="ganpipe-rescore-") as tmp:
        t0 = time.perf_counter()
        path = download_generator(f"models:/{mv.name}/{mv.version}", tmp, tracking_uri)
        metrics, _ = score_file(path, prepared, ev)
        seconds = time.perf_counter() - t0
    value = {"metrics": metrics, "seconds": round(seconds, 3),
             "at": datetime.now(UTC).isoformat(timespec="seconds")}
    client.set_model_version_tag(mv.name, mv.version, tag_key(eval_set), json.dumps(value, sort_keys=True))
    log.info("re-scored %s v%s on eval set %s in %.1f s", mv.name, mv.version, eval_set, seconds)
    return Rescored(metrics, round(seconds, 3), False)


def equalised_tags(old_tags: Mapping[str, str], new_profile: Mapping[str, Any], rescored: Rescored) -> dict[str, str]:
    """``old_tags`` as if the version had been evaluated like the new one: its ``eval_<metric>``
    tags are the re-scored values and its comparability profile the new version's."""
    tags = {k: v for k, v in old_tags.items() if not k.startswith("eval_")}
    tags.update({f"eval_{k}": repr(v) for k, v in rescored.metrics.items()})
    tags["comparability"] = json.dumps(dict(new_profile), sort_keys=True)
    return tags


# ------------------------------------------------------------------------------------------------
# what the register step compares, on equal data
@dataclass
class EqualData:
    """The register step's view of the evaluation data: the new version's clips and profile, and
    how to score another version (or a file) on them."""

    prepared: Path  # data/prepared of the project
    evaluation: EvaluationParams
    new_profile: dict[str, Any]  # the new version's comparability profile (ganpipe.promotion.profile)
    tracking_uri: str
    notes: list[str]  # what was re-scored or read from the cache (logged, and in the decision tags)
    blocked: str | None = None  # why nothing can make the champion's numbers comparable (sample rates)

    @property
    def eval_set(self) -> str | None:
        return self.new_profile.get("eval_set")

    def usable(self) -> bool:
        return bool(self.eval_set) and (self.prepared / "manifest.csv").is_file()

    def champion_tags(self, client: Any, champ: Any) -> Mapping[str, str]:
        """The champion's tags to compare with: its own when it was evaluated like the new version
        (or when nothing can make it so), else with its metrics on the new version's clips."""
        from ganpipe.promotion import profile_from_tags

        old = profile_from_tags(champ.tags)
        self.blocked = obstacle(self.new_profile, old)
        if not needs_rescoring(self.new_profile, old) or self.blocked:
            return champ.tags
        differing = {k for k in RESCORABLE if self.new_profile.get(k) is not None and old.get(k) is not None
                     and self.new_profile[k] != old[k]}
        same_clips = bool(self.eval_set) and old.get("eval_set") == self.eval_set
        if differing == {"mel_config"} and same_clips:  # each model with its own mel: its own numbers are it
            own = {k[len("eval_"):]: float(v) for k, v in champ.tags.items() if k.startswith("eval_")
                   and _float(v) is not None}
            return equalised_tags(champ.tags, self.new_profile, Rescored(own, 0.0, True))
        if not self.usable():
            return champ.tags
        try:
            got = rescore_version(client, champ, str(self.eval_set), self.prepared, self.evaluation, self.tracking_uri)
        except Exception as exc:  # noqa: BLE001 - no re-score: the comparability check decides as before
            log.warning("could not re-score %s v%s on eval set %s: %s", champ.name, champ.version, self.eval_set, exc)
            self.notes.append(f"champion v{champ.version}: re-scoring failed ({type(exc).__name__}: {exc})"[:300])
            return champ.tags
        self.notes.append(f"champion v{champ.version} on eval set {self.eval_set}: "
                          f"{'cached' if got.cached else 're-scored'} ({got.seconds:.1f} s)")
        return equalised_tags(champ.tags, self.new_profile, got)

    def parent_value(self, client: Any, parent: Mapping[str, str], metric: str) -> tuple[float | None, str]:
        """The parent's ``metric`` on the new version's clips, and how the parent is named."""
        from ganpipe.promotion import finite

        if parent.get("version") and parent.get("model"):
            from ganpipe.promotion import differences, profile_from_tags

            mv = client.get_model_version(parent["model"], parent["version"])
            label = f"parent {parent['model']} v{parent['version']}"
            if not differences(self.new_profile, profile_from_tags(mv.tags)):  # evaluated like the new one
                return finite(mv.tags.get(f"eval_{metric}")), label
            if not self.usable():
                return None, label
            got = rescore_version(client, mv, str(self.eval_set), self.prepared, self.evaluation, self.tracking_uri)
            self.notes.append(f"{label} on eval set {self.eval_set}: {'cached' if got.cached else 're-scored'} "
                              f"({got.seconds:.1f} s)")
            return finite(got.metrics.get(metric)), label
        path = parent.get("path")
        label = f"parent {parent.get('label') or path}"
        if not path or not Path(path).is_file() or not self.usable():
            return None, label
        metrics, seconds = score_file(path, self.prepared, self.evaluation)
        self.notes.append(f"{label} on eval set {self.eval_set}: scored ({seconds:.1f} s)")
        return finite(metrics.get(metric)), label
