"""The model a training run starts from (``train.fine_tune_from``): read once, checked against the run.

A source is a ganpipe generator file (``models/generator.pt`` of an earlier run, or a published
checkpoint imported by ``ganpipe import-model``), a training checkpoint (``checkpoints/.../step_*.pt``)
or a registered model (``models:/NAME@alias``, ``models:/NAME/3``: its generator file, downloaded from
the MLflow store of $MLFLOW_TRACKING_URI, else of ./params.yaml).

Before any step the trainer asks :meth:`StartingModel.mismatches`: the variant and every setting of
the architecture params.yaml builds must equal the model's, and the features' mel (and, for a
mean/variance-normalised mel, their statistics) the model's; each difference is named. With
``train.fine_tune_discriminator`` the discriminators start from the model's too
(:meth:`StartingModel.discriminator_weights`). ``mel.preset: from_model`` makes the features with the
model's mel and statistics (:meth:`StartingModel.feature_mel`, resolved by the validate stage).
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganpipe.config import Params
from ganpipe.features import FeatureMel
from ganpipe.generator_io import FORMAT
from ganpipe.mel import MelConfig
from ganpipe.models import ModelBundle

# checkpoints keep the trainer's Discriminators module, whose ModuleDict is its ``parts``
_CHECKPOINT_D_PREFIX = "parts."


class StartingModelError(ValueError):
    """train.fine_tune_from cannot start this run (the message names the file and each problem)."""


@dataclass(frozen=True)
class StartingModel:
    source: str  # as given in train.fine_tune_from
    kind: str  # "generator file" | "training checkpoint"
    variant: str | None
    config: dict[str, Any] | None  # the architecture (build options); None: a training checkpoint
    generator: dict[str, torch.Tensor]
    discriminators: dict[str, torch.Tensor] | None  # the bundle's ``discriminators`` ModuleDict state
    mel: MelConfig | None
    stats: dict[str, np.ndarray] | None  # mel statistics (mean, std): generator files only

    # -- checks -----------------------------------------------------------------------------------
    def architecture_mismatches(self, bundle: ModelBundle, skip: tuple[str, ...] = ()) -> list[str]:
        """``variant`` and each build option (but ``skip``) whose value differs from ``bundle``'s."""
        out = []
        if self.variant is not None and self.variant != bundle.variant:
            out.append(f"model.variant: {bundle.variant!r} here, {self.variant!r} in the model")
            return out  # the other options are another variant's
        if self.config is None:
            return out
        ours, theirs = _plain(bundle.config), _plain(self.config)
        for key in ours:
            if key in theirs and key not in skip and ours[key] != theirs[key]:
                out.append(f"{key}: {ours[key]!r} here, {theirs[key]!r} in the model")
        return out

    def mel_mismatches(self, mel: MelConfig, stats: dict[str, np.ndarray] | None) -> list[str]:
        """Each mel parameter of the features (``mel``) that differs from the model's, and, for a
        mean/variance-normalised mel, each statistic (``mean``, ``std``) that differs."""
        if self.mel is None:
            return []
        out = [f"mel {key}: {ours!r} in the features, {theirs!r} in the model"
               for key, (ours, theirs) in mel.diff(self.mel).items()]
        if not out and mel.normalize == "meanvar" and self.stats is not None and stats is not None:
            for key in ("mean", "std"):
                a, b = np.asarray(stats[key], dtype=np.float64), np.asarray(self.stats[key], dtype=np.float64)
                if a.shape != b.shape:
                    out.append(f"mel statistics {key}: shape {a.shape} in the features, {b.shape} in the model")
                elif not np.allclose(a, b, rtol=1e-5, atol=1e-6):
                    out.append(f"mel statistics {key}: differ by up to {np.abs(a - b).max():.4g} "
                               "(features/stats.npz vs the model's)")
        return out

    def weight_mismatches(self, bundle: ModelBundle, discriminators: bool = False) -> list[str]:
        """The generator's (and with ``discriminators`` the discriminators') weights whose names or shapes
        differ from ``bundle``'s (built on the meta device by the validate stage: shapes only)."""
        parts = [("generator", self.generator, bundle.generator.state_dict())]
        if discriminators and self.discriminators:
            parts.append(("discriminators", self.discriminators, bundle.discriminators.state_dict()))
        out = []
        for what, theirs, ours in parts:
            missing, extra = sorted(set(ours) - set(theirs)), sorted(set(theirs) - set(ours))
            shapes = [k for k in ours if k in theirs and tuple(ours[k].shape) != tuple(theirs[k].shape)]
            if missing or extra or shapes:
                detail = [f"{len(missing)} missing (e.g. {missing[0]})" if missing else "",
                          f"{len(extra)} unexpected (e.g. {extra[0]})" if extra else "",
                          f"{len(shapes)} of another shape (e.g. {shapes[0]}: {tuple(ours[shapes[0]].shape)} here, "
                          f"{tuple(theirs[shapes[0]].shape)} in the model)" if shapes else ""]
                out.append(f"{what} weights: " + ", ".join(d for d in detail if d))
        return out

    def feature_mel_mismatches(self, mel: MelConfig) -> list[str]:
        """The validate stage's check of the features' mel (params.yaml's, not ``from_model``) against the
        model's: each differing parameter, and for a model that normalises with its own statistics, that
        the features' would be the train split's instead."""
        if self.mel is None:
            return []
        out = self.mel_mismatches(mel, None)
        if not out and mel.normalize == "meanvar" and self.stats is not None:
            out.append("mel statistics: the model normalises with its own mean/std, the features would use the "
                       "train split's")
        return out

    def mismatches(self, bundle: ModelBundle, mel: MelConfig, stats: dict[str, np.ndarray] | None) -> list[str]:
        return self.architecture_mismatches(bundle) + self.mel_mismatches(mel, stats)

    def explain(self, problems: list[str]) -> str:
        hints = []
        if any(not p.startswith("mel ") for p in problems):
            hints.append("set model.variant / model.overrides to build the model's architecture")
        if any(p.startswith("mel ") for p in problems):
            hints.append("compute the features with the model's mel and statistics (mel.preset: from_model)")
        return (f"train.fine_tune_from={self.source}: the starting model and this run do not fit "
                "(nothing was trained):\n  - " + "\n  - ".join(problems)
                + ("\n" + "; ".join(hints) if hints else ""))

    def check(self, bundle: ModelBundle, mel: MelConfig, stats: dict[str, np.ndarray] | None) -> None:
        problems = self.mismatches(bundle, mel, stats)
        if problems:
            raise StartingModelError(self.explain(problems))

    # -- what the run takes from it ---------------------------------------------------------------
    def discriminator_weights(self) -> dict[str, torch.Tensor]:
        """The discriminators' weights (train.fine_tune_discriminator); an error naming the file without."""
        if not self.discriminators:
            raise StartingModelError(
                f"train.fine_tune_discriminator: {self.source} holds no discriminator weights (a generator "
                "file has them only when it was imported with its discriminators, e.g. `ganpipe import-model "
                "--discriminator DO_FILE`); set train.fine_tune_discriminator: false to train fresh ones")
        return self.discriminators

    def feature_mel(self, sample_rate: int) -> FeatureMel:
        """``mel.preset: from_model``: the model's mel and statistics, for audio at ``sample_rate``."""
        if self.kind != "generator file" or self.mel is None or self.stats is None:
            raise StartingModelError(
                f"mel.preset: from_model: train.fine_tune_from={self.source} is a {self.kind}, which holds no "
                "mel statistics; give a generator file (models/generator.pt, an imported model, models:/...)")
        if self.mel.sample_rate != sample_rate:
            raise StartingModelError(
                f"mel.preset: from_model: the model of train.fine_tune_from={self.source} works at "
                f"{self.mel.sample_rate} Hz, but audio.sample_rate is {sample_rate}: set audio.sample_rate: "
                f"{self.mel.sample_rate} (the prepare stage resamples the corpus to it)")
        return FeatureMel(self.mel, self.stats, "train.fine_tune_from")


def _plain(value: Any) -> Any:
    """Tuples as lists, so a config read back from a file compares equal to a built one."""
    return json.loads(json.dumps(value, default=str))


def read(path: str | Path, source: str | None = None) -> StartingModel:
    """A local generator file or training checkpoint (``source``: how train.fine_tune_from named it)."""
    path = Path(path)
    source = source or str(path)
    if not path.is_file():
        raise FileNotFoundError(f"train.fine_tune_from: file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, not a torch file, needs code to unpickle
        raise StartingModelError(f"train.fine_tune_from={source}: {path} cannot be read as a checkpoint "
                                 f"({type(exc).__name__}: {exc})") from None
    if isinstance(obj, dict) and obj.get("format") == FORMAT and "state_dict" in obj:
        return StartingModel(
            source, "generator file", obj.get("variant"), obj.get("config"), obj["state_dict"],
            obj.get("discriminators_state_dict"),
            MelConfig.from_dict(obj["mel_config"]) if "mel_config" in obj else None,
            {k: np.asarray(v, dtype=np.float32) for k, v in obj["mel_stats"].items()} if "mel_stats" in obj else None)
    if isinstance(obj, dict) and "generator" in obj:
        d = obj.get("discriminators")
        if d is not None:
            d = {k[len(_CHECKPOINT_D_PREFIX):] if k.startswith(_CHECKPOINT_D_PREFIX) else k: v for k, v in d.items()}
        return StartingModel(source, "training checkpoint", obj.get("variant"), None, obj["generator"], d,
                             MelConfig.from_dict(obj["mel_config"]) if obj.get("mel_config") else None, None)
    raise StartingModelError(f"train.fine_tune_from={source}: {path} is neither a ganpipe generator file nor a "
                             "training checkpoint (import a published checkpoint with `ganpipe import-model`)")


def load(source: str | Path) -> StartingModel:
    """``train.fine_tune_from``: a local file, or a registered model fetched from the MLflow store."""
    if not str(source).startswith("models:/"):
        return read(source)
    from ganpipe.mlflow_store import download_generator

    with tempfile.TemporaryDirectory(prefix="ganpipe-fine-tune-") as tmp:
        try:
            path = download_generator(str(source), tmp)
        except Exception as exc:  # noqa: BLE001 - name the parameter and the URI
            raise StartingModelError(f"train.fine_tune_from={source}: cannot fetch the registered generator "
                                     f"({type(exc).__name__}: {exc})") from None
        return read(path, str(source))


def resolve_feature_mel(params: Params) -> FeatureMel:
    """The features' mel and statistics: params.yaml's (statistics: the train split's), or with
    ``mel.preset: from_model`` the starting model's."""
    if params.mel.preset != "from_model":
        return FeatureMel(params.mel_config())
    return load(params.train.fine_tune_from).feature_mel(params.audio.sample_rate)
