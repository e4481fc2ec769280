"""What the trainer builds before its first step: where its files are (:class:`TrainPaths`), the device
and process group, the model bundle, the discriminators as one module, the optimisers, schedulers and
GradScaler of a recipe, and the autocast dtype of ``train.precision`` (probed, so an unsupported
precision fails at start-up naming the setting)."""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganpipe.config import Params
from ganpipe.devices import resolve_device
from ganpipe.mel import MelConfig
from ganpipe.models import ModelBundle, build, describe
from ganpipe.models.outputs import DiscriminatorOutput, merge_outputs
from ganpipe.training import starting_model
from ganpipe.training.distributed import Dist, init_distributed
from ganpipe.training.recipes import Recipe

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class TrainPaths:
    prepared: Path = Path("data/prepared")
    features: Path = Path("data/features")
    checkpoints: Path = Path("checkpoints")
    generator: Path = Path("models/generator.pt")
    metrics: Path = Path("metrics/train.json")
    curve: Path = Path("plots/train_loss.csv")
    figures: Path | None = None  # one PNG per curve; None: the folder "train" beside ``curve``

    @property
    def figure_dir(self) -> Path:
        return self.figures if self.figures is not None else self.curve.parent / "train"


# -- device and process group ----------------------------------------------------------------------
def training_device(choice: str, backend: str = "auto") -> tuple[Dist, torch.device]:
    """``train.device`` resolved, the process group joined (under torchrun, ``train.dist_backend``) and
    this rank's device: ``cuda:LOCAL_RANK`` on CUDA (made the current device), else the CPU."""
    kind = resolve_device(choice, "train.device").type
    ranks = init_distributed(kind, backend)
    if kind != "cuda":
        return ranks, torch.device("cpu")
    device = torch.device(f"cuda:{ranks.local_rank}")
    torch.cuda.set_device(device)
    return ranks, device


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.precision`` on ``device`` (``None`` for fp32).

    Fails at start-up, naming ``train.precision``, when this torch/device cannot autocast to it
    (instead of a crash, or a silent fallback to fp32, deep inside training): the probe runs a
    linear layer and a 1-D convolution under autocast and checks the dtype they produce."""
    dtype = AMP_DTYPES.get(precision)
    if dtype is None:
        return None
    problem = _autocast_problem(dtype, device)
    if problem:
        raise ValueError(f"train.precision: {precision} is not supported on this device ({problem}); "
                         "use train.precision: fp32" + (" or bf16" if precision == "fp16" else ""))
    return dtype


def _autocast_problem(dtype: torch.dtype, device: torch.device) -> str | None:
    """Why ``device`` cannot autocast to ``dtype`` (``None``: it can)."""
    kind = device.type
    if not torch.amp.is_autocast_available(kind):
        return f"torch {torch.__version__} has no autocast for device type {kind!r}"
    if kind == "cuda" and dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        return f"the GPU {torch.cuda.get_device_name(device)!r} has no bf16 support"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an unsupported dtype only warns and disables autocast
            with torch.autocast(kind, dtype=dtype):
                x = torch.ones(1, 2, 4, device=device)
                outs = [torch.nn.functional.linear(x, torch.ones(3, 4, device=device)),
                        torch.nn.functional.conv1d(x, torch.ones(3, 2, 3, device=device))]
    except (RuntimeError, NotImplementedError) as exc:
        return f"autocast to {dtype} on {kind} failed: {exc}"
    produced = {out.dtype for out in outs}
    if produced != {dtype}:
        return f"autocast on {kind} produced {sorted(map(str, produced))} instead of {dtype}"
    return None


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """fp16 only (bf16 has fp32's range): the loss is scaled, steps with inf/NaN gradients are
    skipped by the scaler and the scale backs off; clipping unscales first (Trainer.update)."""
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    if precision == "fp16" and not scaler.is_enabled():
        raise ValueError(f"train.precision: fp16 needs a GradScaler, which torch {torch.__version__} does "
                         f"not provide on {device.type}; use train.precision: fp32 or bf16")
    return scaler


# -- the networks ----------------------------------------------------------------------------------
def build_bundle(params: Params, n_labels: int, mel: MelConfig) -> ModelBundle:
    """``model.*``'s bundle, the mel section filling the build options it provides by default."""
    model = params.model
    overrides = dict(model.overrides)
    described = describe(model.variant)  # unknown variant: ValueError naming the allowed ones
    for key in described.mel_params:
        overrides.setdefault(key, getattr(mel, key))
    if model.conditioning == "labels":
        overrides[described.label_option] = n_labels
        overrides["discriminator_projection"] = True
        overrides["discriminator_aux_classifier"] = model.ac_gan
    try:
        return build(model.variant, **overrides)
    except TypeError as exc:
        raise ValueError(f"model.overrides: {exc}") from None


def check_discriminator_weights(recipe: Recipe, bundle: ModelBundle, variant: str) -> None:
    """``train.discriminator_weights`` names only discriminators the bundle has."""
    unknown = sorted(set(dict(recipe.discriminator_weights)) - set(bundle.discriminators))
    if unknown:
        raise ValueError(f"train.discriminator_weights: {', '.join(unknown)} not among model.variant "
                         f"{variant!r}'s discriminators; allowed: {', '.join(bundle.discriminators)}")


class Discriminators(nn.Module):
    """All adversaries of a bundle as one module returning merged outputs."""

    def __init__(self, bundle: ModelBundle):
        super().__init__()
        self.parts = bundle.discriminators
        self.uses_labels = bundle.discriminator_uses_labels

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> DiscriminatorOutput:
        passed = labels if self.uses_labels else None
        outs = {name: part(x, labels=passed) for name, part in self.parts.items()}
        merged = merge_outputs(list(outs.values()))
        return merged._replace(groups=[name for name, out in outs.items() for _ in out.logits])


class TrainingForward(nn.Module):
    """What the training step calls (and DDP wraps): MB-MelGAN's sub-bands, else the output."""

    def __init__(self, generator: nn.Module, subbands: bool):
        super().__init__()
        self.generator = generator
        self.subbands = subbands

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.subbands:
            return self.generator.forward_subbands(*args, **kwargs)
        return self.generator(*args, **kwargs)


def load_starting_weights(source: str, bundle: ModelBundle, mel: MelConfig, stats: dict[str, np.ndarray],
                          generator: nn.Module, ema: nn.Module | None, discriminators: nn.Module | None) -> None:
    """``train.fine_tune_from``'s weights, checked against the bundle, mel and statistics first:
    the generator's into ``generator`` (and ``ema``), the discriminators' into ``discriminators``
    (the bundle's ModuleDict; ``None``: not asked for)."""
    start = starting_model.load(source)
    start.check(bundle, mel, stats)  # before any step, naming each difference
    settings = f"model.variant {bundle.variant!r} with these model settings"
    try:
        generator.load_state_dict(start.generator, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"train.fine_tune_from={source}: its generator weights do not fit {settings} "
                         f"(variant, overrides, conditioning and mel must match): {exc}") from None
    if ema is not None:
        ema.load_state_dict(start.generator)
    if discriminators is not None:
        try:
            discriminators.load_state_dict(start.discriminator_weights(), strict=True)
        except RuntimeError as exc:
            raise ValueError(f"train.fine_tune_from={source}: its discriminator weights do not fit the "
                             f"discriminators of {settings}: {exc}") from None


# -- optimisers and schedulers ---------------------------------------------------------------------
def optimizer(parameters: Iterator[nn.Parameter], lr: float, recipe: Recipe) -> torch.optim.Optimizer:
    kw = {"lr": lr, "betas": recipe.adam_betas, "eps": recipe.adam_eps, "weight_decay": recipe.weight_decay}
    if recipe.optimizer == "radam":
        return torch.optim.RAdam(parameters, **kw)
    kind = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return kind(parameters, amsgrad=recipe.amsgrad, **kw)


def cosine_with_warmup(update: int, warmup: int, total: int) -> float:
    """The learning-rate factor after ``update`` updates: linear from 0 over ``warmup`` updates, then
    half a cosine down to 0 at ``total`` (transformers' ``get_cosine_schedule_with_warmup``, which
    Vocos uses, as written: past ``total`` the cosine rises again, so set ``train.lr_total_steps``
    to at least ``train.steps``)."""
    if update < warmup:
        return update / max(1, warmup)
    progress = (update - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def scheduler(opt: torch.optim.Optimizer, recipe: Recipe) -> torch.optim.lr_scheduler.LRScheduler:
    """ExponentialLR (stepped per epoch) or StepLR / MultiStepLR / cosine with warm-up (stepped per
    update of its network)."""
    schedulers = torch.optim.lr_scheduler
    if recipe.scheduler == "cosine_warmup":
        return schedulers.LambdaLR(opt, functools.partial(
            cosine_with_warmup, warmup=recipe.lr_warmup_steps, total=recipe.lr_total_steps))
    if recipe.scheduler == "step":
        return schedulers.StepLR(opt, step_size=recipe.lr_step_size, gamma=recipe.lr_gamma)
    if recipe.scheduler == "multistep":
        return schedulers.MultiStepLR(opt, milestones=list(recipe.lr_milestones), gamma=recipe.lr_gamma)
    return schedulers.ExponentialLR(opt, gamma=recipe.lr_gamma)


