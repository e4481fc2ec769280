"""The training loop for every variant (plain Python; the train flow and torchrun call it).

One call of :func:`train` trains ``model.variant`` on the prepared corpus and its features:

* resumes from the newest valid checkpoint in ``ckpt_dir`` (optimisers, schedulers, scaler, EMA,
  RNG and step restored), so a killed job loses at most ``train.checkpoint_every`` steps;
* runs on CUDA when available, else on the CPU; on either, ``train.precision`` bf16/fp16 autocasts
  the generator and discriminator forwards (fp16 with a GradScaler, whose state is checkpointed)
  and ``train.compile`` compiles them (checkpoints keep the plain modules' parameter names);
* under ``torchrun`` each process trains on its share of every batch (DDP for the generator, one
  flattened all-reduce of the discriminator gradients) and only rank 0 writes;
* skips and counts steps with non-finite losses and stops with a clear error if they persist;
* logs losses, validation mel L1, audio samples and mel plots to MLflow (rank 0), and the losses,
  learning rate and speed every ``train.log_every`` steps as plain log lines (the progress bar is
  drawn only when stderr is a terminal);
* writes the final generator (:mod:`ganpipe.generator_io`), ``metrics/train.json``, the curves as
  a CSV and one PNG per quantity (``plots/train/``: DVC image plots, see :mod:`ganpipe.plots`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from ganpipe import generator_io
from ganpipe.atomic import atomic_path, write_json
from ganpipe.config import Params
from ganpipe.features import load_stats
from ganpipe.mel import MelConfig, MelSpectrogram
from ganpipe.models import ModelBundle, build, describe
from ganpipe.models.outputs import DiscriminatorOutput, merge_outputs
from ganpipe.plots import plot_training_curves
from ganpipe.stft_distance import MultiResolutionSTFT
from ganpipe.training import checkpoint as ckpt
from ganpipe.training import losses as L
from ganpipe.training import starting_model
from ganpipe.training.data import Corpus, MelFrames, VocoderSegments, WaveClips, load_corpus
from ganpipe.training.recipes import Recipe, resolve
from ganpipe.training.tracking import Tracker

log = logging.getLogger(__name__)
SUBBAND_RESOLUTIONS = ((384, 30, 150), (683, 60, 300), (171, 10, 60))


class TrainingDiverged(RuntimeError):
    """Losses stayed non-finite for too many consecutive steps."""


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


# ------------------------------------------------------------------------------------------------
# distributed helpers
@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str) -> Dist:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if device_kind == "cuda":  # before the NCCL group exists, so its collectives use this GPU
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device_kind == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def _all_finite(values: list[torch.Tensor], d: Dist) -> bool:
    # on the values' device: NCCL reduces CUDA tensors only
    ok = torch.tensor(float(all(bool(torch.isfinite(v).all()) for v in values)), device=values[0].device)
    if d.world > 1:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item() > 0.5)


def _average_grads(module: nn.Module, d: Dist) -> None:
    """One flattened all-reduce of a module's gradients (the discriminator under torchrun)."""
    if d.world <= 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= d.world
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def _rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


@contextlib.contextmanager
def _rng_restored(device: torch.device, state: tuple[torch.Tensor, torch.Tensor | None]) -> Iterator[None]:
    """Inside: the random streams as in ``state`` (the same noise drawn again); after: as before."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], device)
        yield


# ------------------------------------------------------------------------------------------------
class Discriminators(nn.Module):
    """All adversaries of a bundle as one module returning merged outputs."""

    def __init__(self, bundle: ModelBundle):
        super().__init__()
        self.parts = bundle.discriminators
        self.uses_labels = bundle.discriminator_uses_labels

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> DiscriminatorOutput:
        lab = labels if self.uses_labels else None
        outs = {name: d(x, labels=lab) for name, d in self.parts.items()}
        merged = merge_outputs(list(outs.values()))
        return merged._replace(groups=[name for name, out in outs.items() for _ in out.logits])


class _EpochPlan:
    """A batch sampler whose batches are set before each epoch (lets one loader serve them all)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(list(self.batches))

    def __len__(self) -> int:
        return len(self.batches)


class _TrainingForward(nn.Module):
    """What the training step calls (and DDP wraps): MB-MelGAN's sub-bands, else the output."""

    def __init__(self, generator: nn.Module, subbands: bool):
        super().__init__()
        self.generator = generator
        self.subbands = subbands

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.subbands:
            return self.generator.forward_subbands(*args, **kwargs)
        return self.generator(*args, **kwargs)


# train.* keys that do not change what is trained: how long (raising steps continues the run),
# how often it checkpoints / logs / validates, how fast and where it runs, when it gives up.
RUN_NEUTRAL_TRAIN_KEYS = frozenset({"steps", "checkpoint_every", "keep_last", "log_every", "validate_every",
                                    "samples_to_log", "num_workers", "threads", "device",
                                    "max_nonfinite_steps",
                                    # the same arithmetic, compiled (equal to eager: test_training_precision):
                                    # a compiled run resumes an eager one and the reverse
                                    "compile"})


def run_key(params: Params, mel: MelConfig, features_dir: Path | None = None) -> str:
    """Checkpoint sub-folder: the variant plus a hash of everything that decides what is trained —
    architecture, conditioning, mel, every ``train.*`` setting but :data:`RUN_NEUTRAL_TRAIN_KEYS`
    (with the recipe they resolve to, so a changed published default is a new run too), the
    starting weights (``train.fine_tune_from``) and the training data (the features index and
    statistics) — so a killed run resumes and ``train.steps`` raised continues it, while a new
    learning rate, data version or fine-tune source starts its own run instead of 'resuming' one."""
    import hashlib

    train = {k: v for k, v in params.train.model_dump(mode="json").items() if k not in RUN_NEUTRAL_TRAIN_KEYS}
    recipe = resolve(params.model.variant, params.train).as_dict()
    h = hashlib.sha256(json.dumps({"model": params.model.model_dump(mode="json"), "mel": mel.to_dict(),
                                   "train": train, "recipe": recipe}, sort_keys=True, default=str).encode())
    if features_dir is not None:
        for name in ("index.csv", "stats.npz"):
            path = Path(features_dir) / name
            if path.is_file():
                h.update(path.read_bytes())
    return f"{params.model.variant}-{h.hexdigest()[:10]}"


def mel_loss_fn(mel: MelConfig, recipe: Recipe) -> nn.Module:
    """The recipe's loss mel: the feature mel's framing (jik876), the toolkit's centred STFT or
    Vocos' torchaudio mel (``mel_loss_framing``: torchaudio)."""
    config = mel_loss_config(mel, recipe)
    if recipe.mel_loss_framing == "torchaudio":
        return L.VocosLogMel(config)
    return MelSpectrogram(config) if recipe.mel_loss_framing == "jik876" else L.CentredLogMel(config)


def mel_loss(mel: MelConfig, recipe: Recipe) -> nn.Module:
    """The recipe's mel L1 loss, called as ``loss(fake, real)`` on waveforms ``(B, samples)``: one loss
    mel (:func:`mel_loss_fn`) or the multi-scale mel loss over the recipe's band."""
    if recipe.mel_loss_framing == "multiscale":
        return L.MultiScaleMelLoss(mel.sample_rate, recipe.mel_loss_scales, recipe.mel_loss_fmax)
    return L.MelL1(mel_loss_fn(mel, recipe))


def mel_loss_config(mel: MelConfig, recipe: Recipe) -> MelConfig:
    """The mel of the L1 loss: the feature mel over the recipe's band (``None``: up to Nyquist),
    unnormalised, with the recipe's own sizes where it fixes them (``mel_loss_size``)."""
    import dataclasses

    fmax = recipe.mel_loss_fmax if recipe.mel_loss_fmax is not None else mel.sample_rate / 2
    sizes = {}
    if recipe.mel_loss_size is not None:
        n_fft, hop, n_mels = recipe.mel_loss_size
        sizes = {"n_fft": n_fft, "win_length": n_fft, "hop_length": hop, "n_mels": n_mels}
    return dataclasses.replace(mel, fmax=float(fmax), normalize="none", **sizes)


def feature_maps(real: DiscriminatorOutput, fake: DiscriminatorOutput, include_final: bool
                 ) -> tuple[list[list[torch.Tensor]], list[list[torch.Tensor]]]:
    """The per-discriminator feature maps that feature matching compares (with the outputs, if asked,
    of the sub-discriminators whose output is matched: ``DiscriminatorOutput.final_matched``)."""
    if not include_final:
        return real.features, fake.features
    matched = fake.final_matched or [True] * len(fake.logits)
    return ([f + [o] if m else f for f, o, m in zip(real.features, real.logits, matched)],
            [f + [o] if m else f for f, o, m in zip(fake.features, fake.logits, matched)])


def fine_tune_weights(source: str | Path) -> dict[str, torch.Tensor]:
    """``train.fine_tune_from``'s generator weights: a generator file (ours or an imported one), a
    training checkpoint, or a registered model (``models:/NAME@champion``, ``models:/NAME/3``: its
    generator file is downloaded from the MLflow store of $MLFLOW_TRACKING_URI, else of ./params.yaml)."""
    return starting_model.load(source).generator


def build_bundle(params: Params, n_labels: int, mel: MelConfig) -> ModelBundle:
    m = params.model
    overrides = dict(m.overrides)
    variant = m.variant
    described = describe(variant)  # unknown variant: ValueError naming the allowed ones
    for key in described.mel_params:  # the build options the mel section provides by default
        overrides.setdefault(key, getattr(mel, key))
    if m.conditioning == "labels":
        overrides[described.label_option] = n_labels
        overrides["discriminator_projection"] = True
        overrides["discriminator_aux_classifier"] = m.ac_gan
    try:
        return build(variant, **overrides)
    except TypeError as exc:
        raise ValueError(f"model.overrides: {exc}") from None


def _optimizer(params: Any, lr: float, recipe: Recipe) -> torch.optim.Optimizer:
    kw = {"lr": lr, "betas": recipe.adam_betas, "eps": recipe.adam_eps, "weight_decay": recipe.weight_decay}
    if recipe.optimizer == "radam":
        return torch.optim.RAdam(params, **kw)
    kind = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    return kind(params, amsgrad=recipe.amsgrad, **kw)


def cosine_with_warmup(update: int, warmup: int, total: int) -> float:
    """The learning-rate factor after ``update`` updates: linear from 0 over ``warmup`` updates, then
    half a cosine down to 0 at ``total`` (transformers' ``get_cosine_schedule_with_warmup``, which
    Vocos uses, as written: past ``total`` the cosine rises again, so set ``train.lr_total_steps``
    to at least ``train.steps``)."""
    if update < warmup:
        return update / max(1, warmup)
    progress = (update - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def _scheduler(opt: torch.optim.Optimizer, recipe: Recipe) -> torch.optim.lr_scheduler.LRScheduler:
    """ExponentialLR (stepped per epoch) or StepLR / MultiStepLR / cosine with warm-up (stepped per
    update of its network)."""
    if recipe.scheduler == "cosine_warmup":
        import functools

        return torch.optim.lr_scheduler.LambdaLR(opt, functools.partial(
            cosine_with_warmup, warmup=recipe.lr_warmup_steps, total=recipe.lr_total_steps))
    if recipe.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=recipe.lr_step_size, gamma=recipe.lr_gamma)
    if recipe.scheduler == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(recipe.lr_milestones), gamma=recipe.lr_gamma)
    return torch.optim.lr_scheduler.ExponentialLR(opt, gamma=recipe.lr_gamma)


_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of ``train.precision`` on ``device`` (``None`` for fp32).

    Fails at start-up, naming ``train.precision``, when this torch/device cannot autocast to it
    (instead of a crash, or a silent fallback to fp32, deep inside training): the probe runs a
    linear layer and a 1-D convolution under autocast and checks the dtype they produce."""
    import warnings

    dtype = _AMP_DTYPES.get(precision)
    if dtype is None:
        return None
    kind = device.type
    problem = None
    if not torch.amp.is_autocast_available(kind):
        problem = f"torch {torch.__version__} has no autocast for device type {kind!r}"
    elif kind == "cuda" and dtype is torch.bfloat16 and not torch.cuda.is_bf16_supported():
        problem = f"the GPU {torch.cuda.get_device_name(device)!r} has no bf16 support"
    else:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # an unsupported dtype only warns and disables autocast
                with torch.autocast(kind, dtype=dtype):
                    x = torch.ones(1, 2, 4, device=device)
                    outs = [torch.nn.functional.linear(x, torch.ones(3, 4, device=device)),
                            torch.nn.functional.conv1d(x, torch.ones(3, 2, 3, device=device))]
            got = {o.dtype for o in outs}
            if got != {dtype}:
                problem = f"autocast on {kind} produced {sorted(map(str, got))} instead of {dtype}"
        except (RuntimeError, NotImplementedError) as exc:
            problem = f"autocast to {dtype} on {kind} failed: {exc}"
    if problem:
        raise ValueError(f"train.precision: {precision} is not supported on this device ({problem}); "
                         "use train.precision: fp32" + (" or bf16" if precision == "fp16" else ""))
    return dtype


def _device(choice: str) -> torch.device:
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("train.device is 'cuda' but no CUDA device is available")
    if choice == "auto":
        choice = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(choice)


# ------------------------------------------------------------------------------------------------
class Trainer:
    def __init__(self, params: Params, paths: TrainPaths = TrainPaths(), progress: bool = True):
        self.params, self.paths, self.progress = params, paths, progress
        t = params.train
        if t.threads:
            torch.set_num_threads(t.threads)
        kind = _device(t.device).type
        self.dist = init_distributed(kind)
        self.device = torch.device(f"cuda:{self.dist.local_rank}") if kind == "cuda" else torch.device("cpu")
        if kind == "cuda":
            torch.cuda.set_device(self.device)
        self.amp_dtype = autocast_dtype(t.precision, self.device)  # before any work: fails naming the key
        torch.manual_seed(t.seed + self.dist.rank)
        self.mel_config = MelConfig.from_dict(json.loads((paths.features / "mel_config.json").read_text()))
        self.stats = load_stats(paths.features)
        self.train_corpus = load_corpus(paths.prepared, paths.features, "train")
        self.valid_corpus = load_corpus(paths.prepared, paths.features, "valid")
        self.label_names = self.train_corpus.label_names
        self.bundle = build_bundle(params, len(self.label_names), self.mel_config)
        self.recipe = resolve(params.model.variant, t)
        unknown = sorted(set(dict(self.recipe.discriminator_weights)) - set(self.bundle.discriminators))
        if unknown:
            raise ValueError(f"train.discriminator_weights: {', '.join(unknown)} not among model.variant "
                             f"{params.model.variant!r}'s discriminators; allowed: "
                             f"{', '.join(self.bundle.discriminators)}")
        self.conditional = params.model.conditioning == "labels"
        self.G = self.bundle.generator.to(self.device)
        self.D = Discriminators(self.bundle).to(self.device)
        self.opt_g = _optimizer(self.G.parameters(), self.recipe.lr_generator, self.recipe)
        self.opt_d = _optimizer(self.D.parameters(), self.recipe.lr_discriminator, self.recipe)
        self.sched_g, self.sched_d = _scheduler(self.opt_g, self.recipe), _scheduler(self.opt_d, self.recipe)
        self.per_epoch_schedule = self.recipe.scheduler == "exponential_per_epoch"
        cuda = self.device.type == "cuda"
        # fp16 only (bf16 has fp32's range): the loss is scaled, steps with inf/NaN gradients are
        # skipped by the scaler and the scale backs off; clipping unscales first (see _update)
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=t.precision == "fp16")
        if t.precision == "fp16" and not self.scaler.is_enabled():
            raise ValueError(f"train.precision: fp16 needs a GradScaler, which torch {torch.__version__} does "
                             f"not provide on {self.device.type}; use train.precision: fp32 or bf16")
        self.ema = copy.deepcopy(self.G).eval() if t.ema_decay > 0 else None
        self.mel_fn = MelSpectrogram(self.mel_config).to(self.device)  # the feature mel: validation
        self.mel_loss = mel_loss(self.mel_config, self.recipe).to(self.device)
        self.mrstft = MultiResolutionSTFT(eps=self.recipe.stft_eps).to(self.device)
        self.mrstft_sub = MultiResolutionSTFT(SUBBAND_RESOLUTIONS, eps=self.recipe.stft_eps).to(self.device)
        self.step, self.epoch, self.skipped_steps, self.bad_streak = 0, 0, 0, 0
        self.skipped_d_updates = 0
        self.batch_in_epoch = 0  # batches of the current epoch already consumed (resumed mid-epoch)
        self.first_val: float | None = None  # validation mel L1 before training (kept over resumes)
        self.last_val: float | None = None
        self.history: list[dict[str, float]] = []
        self.val_history: list[dict[str, float]] = []  # {"step", "val_mel_l1"} of every validation
        # training wall time and steps of earlier runs of this checkpoint folder (a resumed run's
        # metrics/train.json reports the throughput of all the training, not of its last piece)
        self.earlier_seconds, self.earlier_steps = 0.0, 0
        self._t0, self._steps0 = time.perf_counter(), 0
        self.ckpt_dir = paths.checkpoints / run_key(params, self.mel_config, paths.features)
        self._resume_or_finetune()
        if self.bundle.description.needs_statistics(self.G):
            self._fit_spectrogram_statistics()
        self.G_train: nn.Module = _TrainingForward(self.G, self.bundle.description.subbands)
        if self.dist.world > 1:
            # every rank starts from rank 0's discriminators: parameters and buffers (e.g. the
            # spectral-norm power-iteration vectors, which would otherwise differ per rank)
            for tensor in [*self.D.parameters(), *self.D.buffers()]:
                dist.broadcast(tensor.data, src=0)
            self.G_train = nn.parallel.DistributedDataParallel(
                self.G_train, device_ids=[self.device.index] if cuda else None, find_unused_parameters=True)
        if t.compile:
            self.G_train = torch.compile(self.G_train)
            self.D_fwd: Any = torch.compile(self.D)
        else:
            self.D_fwd = self.D

    # -- data ---------------------------------------------------------------------------------
    def _dataset(self, corpus: Corpus) -> torch.utils.data.Dataset:
        b, c = self.bundle, self.mel_config
        normalise = c.normalize == "meanvar"
        if b.kind == "vocoder":
            seg = self.recipe.segment_samples
            seg = max(seg // c.hop_length, b.min_frames or 1) * c.hop_length
            return VocoderSegments(corpus, seg, c.hop_length, self.stats["mean"] if normalise else None,
                                   self.stats["std"] if normalise else None)
        if b.description.discriminates == "mel_frame":
            return MelFrames(corpus, self.stats["mean"], self.stats["std"])
        return WaveClips(corpus, b.description.clip_samples, b.sample_rate, c.sample_rate)

    def _epoch_index_batches(self, n: int, per_rank: int) -> list[list[int]]:
        """This rank's batches of dataset indices for epoch ``self.epoch`` (a pure function of the
        seed and the epoch, so a run resumed mid-epoch continues with the same batches)."""
        t = self.params.train
        if self.dist.world > 1:
            sampler: Any = DistributedSampler(range(n), num_replicas=self.dist.world, rank=self.dist.rank,
                                              shuffle=True, seed=t.seed)
            sampler.set_epoch(self.epoch)
        else:
            g = torch.Generator().manual_seed(t.seed * 100_003 + self.epoch)
            small = n < per_rank
            sampler = RandomSampler(range(n), replacement=small, num_samples=per_rank if small else None,
                                    generator=g)
        indices = [int(i) for i in sampler]
        batches = [indices[i:i + per_rank] for i in range(0, len(indices), per_rank)]
        if len(batches) > 1 and len(batches[-1]) < per_rank:
            batches.pop()  # drop_last, but never down to no batch at all
        return batches

    def _batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """Endless batches. The batch order depends only on (seed, epoch), so a resumed run
        continues mid-epoch exactly where it stopped (bit-identical with ``num_workers: 0``).

        With ``num_workers > 0`` one DataLoader with persistent, *spawned* workers serves every
        epoch: the process runs Prefect/MLflow threads, and forking a threaded process kills
        workers at random (seen as "DataLoader worker exited unexpectedly").
        """
        t = self.params.train
        ds = self._dataset(self.train_corpus)
        per_rank = max(1, self.recipe.batch_size // self.dist.world)
        plan = _EpochPlan()
        g = torch.Generator().manual_seed(t.seed * 100_003 + self.epoch * 1009 + self.batch_in_epoch)
        loader = DataLoader(ds, batch_sampler=plan, num_workers=t.num_workers,
                            pin_memory=self.device.type == "cuda", generator=g,
                            persistent_workers=t.num_workers > 0,
                            multiprocessing_context="spawn" if t.num_workers > 0 else None)
        while True:
            plan.batches = self._epoch_index_batches(len(ds), per_rank)[self.batch_in_epoch:]
            if plan.batches:
                for batch in loader:
                    self.batch_in_epoch += 1
                    yield {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
            self.epoch += 1
            self.batch_in_epoch = 0
            # a tiny corpus can end an epoch inside the first WGAN critic loop
            if self.step > 0 and self.per_epoch_schedule:
                self.sched_g.step()
                self.sched_d.step()

    def _fit_spectrogram_statistics(self) -> None:
        ds = self._dataset(self.train_corpus)
        n = min(len(ds), 256)
        clips = torch.stack([ds[i]["wav"] for i in range(n)]).to(self.device)
        self.G.spectrogram.fit_statistics(clips)

    # -- checkpoints ----------------------------------------------------------------------------
    def _state(self, rng_ranks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        return {
            "step": self.step, "epoch": self.epoch, "batch_in_epoch": self.batch_in_epoch,
            "skipped_steps": self.skipped_steps, "skipped_d_updates": self.skipped_d_updates,
            "val_mel_l1_initial": self.first_val, "val_mel_l1": self.last_val,
            "variant": self.bundle.variant,
            "generator": self.G.state_dict(), "discriminators": self.D.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "sched_g": self.sched_g.state_dict(), "sched_d": self.sched_d.state_dict(),
            "scaler": self.scaler.state_dict(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "rng": ckpt.rng_state(), "rng_ranks": rng_ranks, "history": self.history,
            "val_history": self.val_history,
            "timed": {"seconds": self.earlier_seconds + time.perf_counter() - self._t0,
                      "steps": self.earlier_steps + self.step - self._steps0},
            "mel_config": self.mel_config.to_dict(),
        }

    def _resume_or_finetune(self) -> None:
        state = ckpt.load_latest(self.ckpt_dir, map_location=self.device)
        if state is not None:
            self.G.load_state_dict(state["generator"])
            self.D.load_state_dict(state["discriminators"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])
            self.sched_g.load_state_dict(state["sched_g"])
            self.sched_d.load_state_dict(state["sched_d"])
            if self.scaler.is_enabled() and not state.get("scaler"):  # saved by an fp32/bf16 run
                log.info("the checkpoint has no GradScaler state (it was not trained in fp16): initial scale")
            else:  # (a no-op when the scaler is off)
                self.scaler.load_state_dict(state["scaler"])
            if self.ema is not None and state.get("ema") is not None:
                self.ema.load_state_dict(state["ema"])
            self.step, self.epoch = int(state["step"]), int(state["epoch"])
            self.batch_in_epoch = int(state.get("batch_in_epoch", 0))
            self.skipped_steps = int(state.get("skipped_steps", 0))
            self.skipped_d_updates = int(state.get("skipped_d_updates", 0))
            self.first_val, self.last_val = state.get("val_mel_l1_initial"), state.get("val_mel_l1")
            self.history = list(state.get("history", []))
            self.val_history = list(state.get("val_history", []))
            timed = state.get("timed") or {}
            self.earlier_seconds, self.earlier_steps = float(timed.get("seconds", 0.0)), int(timed.get("steps", 0))
            ranks = state.get("rng_ranks")
            if self.dist.world > 1 and ranks and len(ranks) == self.dist.world:
                ckpt.restore_rng(ranks[self.dist.rank])
            else:
                ckpt.restore_rng(state["rng"])
                if self.dist.world > 1:  # saved by another world size: keep the ranks' streams apart
                    torch.manual_seed(self.params.train.seed + 7919 * self.step + self.dist.rank)
            if self.dist.main:
                log.info("resumed from step %d (%s)", self.step, self.ckpt_dir)
            return
        t = self.params.train
        source = t.fine_tune_from
        if source:
            start = starting_model.load(source)
            start.check(self.bundle, self.mel_config, self.stats)  # before any step, naming each difference
            weights = start.generator
            try:
                self.G.load_state_dict(weights, strict=True)
            except RuntimeError as exc:
                raise ValueError(f"train.fine_tune_from={source}: its generator weights do not fit "
                                 f"model.variant {self.bundle.variant!r} with these model settings "
                                 f"(variant, overrides, conditioning and mel must match): {exc}") from None
            if self.ema is not None:
                self.ema.load_state_dict(weights)
            if t.fine_tune_discriminator:
                try:
                    self.D.parts.load_state_dict(start.discriminator_weights(), strict=True)
                except RuntimeError as exc:
                    raise ValueError(f"train.fine_tune_from={source}: its discriminator weights do not fit the "
                                     f"discriminators of model.variant {self.bundle.variant!r} with these model "
                                     f"settings: {exc}") from None
            if self.dist.main:
                log.info("fine-tuning from %s (%s)", source,
                         "generator and discriminators" if t.fine_tune_discriminator else "generator weights only")

    # -- steps ----------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _update(self, loss: torch.Tensor, net: str, sync_grads: bool) -> bool:
        """Backward + step of ``net`` ("g" or "d") unless its loss is non-finite on any rank; clips
        its gradients at the recipe's norm and steps a per-update scheduler. Returns whether it stepped."""
        r = self.recipe
        opt, sched, module = (self.opt_g, self.sched_g, self.G) if net == "g" else (self.opt_d, self.sched_d, self.D)
        clip = r.grad_clip_generator if net == "g" else r.grad_clip_discriminator
        opt.zero_grad(set_to_none=True)
        if not _all_finite([loss], self.dist):
            return False
        self.scaler.scale(loss).backward()
        if sync_grads:
            _average_grads(module, self.dist)
        if clip > 0:
            self.scaler.unscale_(opt)
            parts = self.D.parts.values() if net == "d" and r.grad_clip_per_discriminator else [module]
            for part in parts:
                torch.nn.utils.clip_grad_norm_(part.parameters(), clip)
        self.scaler.step(opt)
        self.scaler.update()
        if not self.per_epoch_schedule:
            sched.step()
        return True

    def _sub_weights(self, out: DiscriminatorOutput) -> list[float] | None:
        """Per sub-discriminator, its weight in the adversarial and feature-matching sums: its
        discriminator's ``discriminator_weights`` entry (default 1), divided by that discriminator's
        number of sub-discriminators with ``average_by_discriminators`` (None: all 1)."""
        r = self.recipe
        if not r.average_by_discriminators and not r.discriminator_weights:
            return None
        groups = out.groups or [""] * len(out.logits)
        weights = dict(r.discriminator_weights)
        return [weights.get(g, 1.0) / (groups.count(g) if r.average_by_discriminators else 1) for g in groups]

    def _d_loss(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
        """The discriminators on the real batch, then (a separate pass, as both references do: each
        pass is one spectral-norm power iteration) on the detached generated one."""
        r, t = self.recipe, self.params.train
        with self._autocast():
            out_r = self.D_fwd(real, labels)
            out_f = self.D_fwd(fake.detach(), labels)
            loss = L.discriminator_loss(r.adversarial_loss, out_r.logits, out_f.logits, t.label_smoothing,
                                        self._sub_weights(out_r))
        parts = {"d_adv": loss.detach()}
        if r.adversarial_loss == "wgan-gp":
            gp = L.gradient_penalty(lambda x: self.D(x, labels).logits, real.float(), fake.float())
            loss = loss + t.lambda_gp * gp
            parts["d_gp"] = gp.detach()
        if self.params.model.ac_gan:
            ac = L.classification_loss(out_r.class_logits, labels) + L.classification_loss(out_f.class_logits, labels)
            loss = loss + t.lambda_ac * ac
            parts["d_ac"] = ac.detach()
        return loss, parts

    def _g_adv_terms(self, real: torch.Tensor | None, fake: torch.Tensor, labels: torch.Tensor | None
                     ) -> dict[str, torch.Tensor]:
        """The generator's adversarial terms, unweighted: ``adv``, ``fm`` (feature matching, when
        the recipe has it) and ``ac`` (AC-GAN). The real batch's pass needs no gradient; it runs
        before or after the generated one as the recipe's reference does (``g_step_real_first``)."""
        r = self.recipe
        zero = fake.new_zeros(())
        with self._autocast():
            out_r = None
            fm_wanted = real is not None and r.lambda_fm > 0
            if fm_wanted and r.g_step_real_first:
                with torch.no_grad():
                    out_r = self.D_fwd(real, labels)
            out_f = self.D_fwd(fake, labels)
            if fm_wanted and not r.g_step_real_first:
                with torch.no_grad():
                    out_r = self.D_fwd(real, labels)
            adv = L.generator_loss(r.adversarial_loss, out_f.logits, self._sub_weights(out_f))
        fm = (L.feature_matching(*feature_maps(out_r, out_f, r.fm_include_final), self._sub_weights(out_f))
              if out_r is not None else zero)
        ac = L.classification_loss(out_f.class_logits, labels) if self.params.model.ac_gan else zero
        return {"adv": adv, "fm": fm, "ac": ac}

    def _generate(self, mel: torch.Tensor, spk: dict[str, torch.Tensor], length: int
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(waveform, MB-MelGAN's sub-bands or None) of the training forward, float32."""
        with self._autocast():
            out = self.G_train(mel, **spk)
        if not self.bundle.description.subbands:
            return out[..., :length].float(), None
        sub = out.float()
        return self.G.pqmf.synthesis(sub)[..., :length].float(), sub

    def _d_updates(self, wav: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None,
                   logs: dict[str, torch.Tensor]) -> None:
        for _ in range(self.recipe.critic_steps):
            loss_d, parts = self._d_loss(wav, fake, labels)
            logs.update(parts)
            if self._update(loss_d, "d", sync_grads=True):
                logs["d_loss"] = loss_d.detach()
            else:
                self._skip_d()

    def _vocoder_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One iteration of the recipe: the discriminators first (jik876) or after the generator,
        on the updated generator's prediction of the same input and noise (the toolkit)."""
        r, t = self.recipe, self.params.train
        mel, wav = batch["mel"], batch["wav"]
        labels = batch["label"] if self.conditional else None
        spk = {"speaker": labels} if self.conditional else {}
        rng = _rng_state(self.device)  # the generator's noise (PWG), drawn again for the toolkit's D pass
        fake, sub = self._generate(mel, spk, wav.shape[-1])
        logs: dict[str, torch.Tensor] = {}
        d_active = self.step >= r.discriminator_start_step
        if d_active and r.update_order == "d_first":
            self._d_updates(wav, fake, labels, logs)
        zero = fake.new_zeros(())
        mel_l1 = self.mel_loss(fake.squeeze(1), wav.squeeze(1)) if r.lambda_mel > 0 else zero
        stft = self._stft_loss(fake, sub, wav) if r.lambda_stft > 0 else zero
        g = self._g_adv_terms(wav, fake, labels) if d_active else {"adv": zero, "fm": zero, "ac": zero}
        loss_gen_all = (r.lambda_mel * mel_l1 + r.lambda_stft * stft + r.lambda_adv * g["adv"]
                        + r.lambda_fm * g["fm"] + t.lambda_ac * g["ac"])
        active = {"g_mel_l1": r.lambda_mel > 0, "g_stft": r.lambda_stft > 0, "g_adv": d_active,
                  "g_fm": d_active and r.lambda_fm > 0, "g_ac": d_active and self.params.model.ac_gan}
        terms = (mel_l1, stft, g["adv"], g["fm"], g["ac"])
        logs.update({k: v.detach() for k, v in zip(active, terms) if active[k]})
        if not self._update(loss_gen_all, "g", sync_grads=False):
            logs["nonfinite"] = torch.tensor(1.0)
            return logs
        logs["g_loss"] = loss_gen_all.detach()
        if d_active and r.update_order == "g_first":
            with torch.no_grad(), _rng_restored(self.device, rng):
                fake, _ = self._generate(mel, spk, wav.shape[-1])
            self._d_updates(wav, fake, labels, logs)
        return logs

    def _stft_loss(self, fake: torch.Tensor, sub: torch.Tensor | None, wav: torch.Tensor) -> torch.Tensor:
        """Multi-resolution STFT loss; MB-MelGAN: 0.5 x full band + 0.5 x its PQMF sub-bands."""
        full = self.mrstft(fake, wav).total
        if not self.recipe.subband_stft:
            return full
        real_sub = self.G.pqmf.analysis(wav)
        b, k, n = real_sub.shape
        return 0.5 * (full + self.mrstft_sub(sub.reshape(b * k, n), real_sub.reshape(b * k, n)).total)

    def _real_input(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.bundle.description.real_example(self.G, batch)

    def _latent_step(self, batch: dict[str, torch.Tensor], batches: Iterator[dict[str, torch.Tensor]]
                     ) -> dict[str, torch.Tensor]:
        r = self.recipe
        logs: dict[str, torch.Tensor] = {}
        G = self.G_train
        for i in range(r.critic_steps):
            if i:
                batch = next(batches)
            real = self._real_input(batch)
            labels = batch["label"] if self.conditional else None
            z = self.G.sample_latent(real.shape[0], device=self.device)
            with torch.no_grad(), self._autocast():
                fake = G(z, labels=labels) if self.conditional else G(z)
            loss_d, parts = self._d_loss(real, fake.float(), labels)
            logs.update(parts)
            if self._update(loss_d, "d", sync_grads=True):
                logs["d_loss"] = loss_d.detach()
            else:
                self._skip_d()
        labels = batch["label"] if self.conditional else None
        z = self.G.sample_latent(real.shape[0], device=self.device)
        with self._autocast():
            fake = (G(z, labels=labels) if self.conditional else G(z)).float()
        g = self._g_adv_terms(None, fake, labels)
        loss_g = self.recipe.lambda_adv * g["adv"] + self.params.train.lambda_ac * g["ac"]
        logs["g_adv"] = g["adv"].detach()
        if self.params.model.ac_gan:
            logs["g_ac"] = g["ac"].detach()
        if self._update(loss_g, "g", sync_grads=False):
            logs["g_loss"] = loss_g.detach()
        else:
            logs["nonfinite"] = torch.tensor(1.0)
        return logs

    def _skip_d(self) -> None:
        self.skipped_d_updates += 1
        log.warning("non-finite discriminator loss at step %d: discriminator update skipped (%d in all)",
                    self.step + 1, self.skipped_d_updates)

    @torch.no_grad()
    def _ema_update(self) -> None:
        if self.ema is None:
            return
        decay = self.params.train.ema_decay
        for e, p in zip(self.ema.parameters(), self.G.parameters()):
            e.lerp_(p.detach(), 1.0 - decay)
        for e, b in zip(self.ema.buffers(), self.G.buffers()):
            e.copy_(b)

    # -- validation -----------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, max_items: int = 4, max_seconds: float = 4.0) -> dict[str, Any]:
        """Mel L1 of copy-synthesis on held-out utterances (vocoders); generated samples."""
        G = self.ema if self.ema is not None else self.G
        was_training = G.training
        G.eval()
        out: dict[str, Any] = {"audio": [], "mels": []}
        try:
            if self.bundle.kind == "vocoder":
                corpus = self.valid_corpus if len(self.valid_corpus) else self.train_corpus
                ds = self._dataset(corpus)
                hop = self.mel_config.hop_length
                errs = []
                import soundfile as sf

                for i in range(min(max_items, len(corpus))):
                    wav, _ = sf.read(corpus.wavs[i], dtype="float32")
                    n = min(len(wav), int(max_seconds * self.mel_config.sample_rate)) // hop * hop
                    n = max(n, (self.bundle.min_frames or 1) * hop)
                    wav_t = torch.from_numpy(np.pad(wav, (0, max(0, n - len(wav))))[:n]).to(self.device)
                    ref = self.mel_fn(wav_t)
                    inp = ref if self.mel_config.normalize != "meanvar" else torch.from_numpy(
                        ds.normalise(ref.cpu().numpy())).to(self.device)
                    kw = {"speaker": torch.tensor([corpus.labels[i]], device=self.device)} if self.conditional else {}
                    gen = G(inp.unsqueeze(0), **kw).float()[0, 0, :n]
                    errs.append(torch.mean(torch.abs(self.mel_fn(gen) - ref)).item())
                    out["audio"].append((corpus.utt_ids[i], gen.cpu().numpy(), wav_t.cpu().numpy()))
                    out["mels"].append((corpus.utt_ids[i], ref.cpu().numpy(), self.mel_fn(gen).cpu().numpy()))
                out["val_mel_l1"] = float(np.mean(errs)) if errs else float("nan")
            else:
                n = max(1, self.params.train.samples_to_log)
                z = self.G.sample_latent(n, device=self.device)
                labels = torch.arange(n, device=self.device) % max(1, len(self.label_names))
                fake = G(z, labels=labels) if self.conditional else G(z)
                if self.bundle.description.makes_audio:
                    fake = self.bundle.description.to_audio(self.G, fake)
                if fake.dim() == 3:
                    for j in range(n):
                        out["audio"].append((f"sample_{j}", fake[j, 0].float().cpu().numpy(), None))
        finally:
            G.train(was_training)
        return out

    # -- main loop ------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        d = self.dist
        tracker = Tracker(self.params, enabled=d.main and self.params.tracking.enabled,
                          run_file=self.ckpt_dir / "mlflow_run.json")
        tracker.start(self.bundle, self.recipe, resumed_step=self.step, mel=self.mel_config)
        try:
            result = self._loop(tracker)
        except BaseException:
            tracker.end(status="FAILED")
            raise
        tracker.end()
        return result

    def _loop(self, tracker: Tracker) -> dict[str, Any]:
        t = self.params.train
        d = self.dist
        if d.main and self.step == 0:
            initial = self.validate()
            if "val_mel_l1" in initial:
                self.first_val = initial["val_mel_l1"]
                self._log_validation(tracker, self.first_val)
        batches = self._batches()
        # the bar only on a terminal: in a log file (Prefect, CI, nohup) its redraws are one
        # endless line of carriage returns; the log lines below carry the same numbers there
        draw_bar = self.progress and d.main and _is_terminal(sys.stderr)
        bar = tqdm(total=t.steps, initial=self.step, desc=f"train {self.bundle.variant}", unit="step",
                   disable=not draw_bar, dynamic_ncols=True)
        t0, steps0 = time.perf_counter(), self.step
        self._t0, self._steps0 = t0, steps0
        t_logged, step_logged = t0, self.step
        seg = self.recipe.segment_samples
        acc: dict[str, list[float]] = {}
        redirect = contextlib.ExitStack()  # on a terminal, log lines print above the bar, not through it
        if draw_bar:
            redirect.enter_context(logging_redirect_tqdm())
        try:
            while self.step < t.steps:
                batch = next(batches)
                logs = (self._vocoder_step(batch) if self.bundle.kind == "vocoder"
                        else self._latent_step(batch, batches))
                if "nonfinite" in logs:
                    self.skipped_steps += 1
                    self.bad_streak += 1
                    log.warning("non-finite loss at step %d: update skipped (%d in a row, %d in all)",
                                self.step + 1, self.bad_streak, self.skipped_steps)
                    if self.bad_streak >= t.max_nonfinite_steps:
                        raise TrainingDiverged(
                            f"losses were non-finite for {self.bad_streak} consecutive steps (at step {self.step}); "
                            "try a lower learning rate, train.precision: fp32 or train.grad_clip")
                    continue
                self.bad_streak = 0
                self._ema_update()
                self.step += 1
                bar.update(1)
                for k, v in logs.items():
                    acc.setdefault(k, []).append(float(v))
                if self.step % t.log_every == 0 or self.step == t.steps:
                    row = {k: float(np.mean(v)) for k, v in acc.items()}
                    acc.clear()
                    row["lr_g"] = self.opt_g.param_groups[0]["lr"]
                    if self.scaler.is_enabled():  # fp16: a falling scale = steps the scaler skipped
                        row["amp_scale"] = self.scaler.get_scale()
                    if d.main:
                        self.history.append({"step": self.step, **row})
                        tracker.metrics(row, self.step)
                        shown = ("g_loss", "d_loss", "g_mel_l1")
                        bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k in shown})
                        now = time.perf_counter()
                        self._log_row(row, (self.step - step_logged) / max(now - t_logged, 1e-9))
                        t_logged, step_logged = now, self.step
                if d.main and (self.step % t.validate_every == 0 or self.step == t.steps):
                    val = self.validate()
                    if "val_mel_l1" in val:
                        self.last_val = val["val_mel_l1"]
                        self._log_validation(tracker, self.last_val)
                    tracker.samples(val, self.step, self.mel_config.sample_rate if self.bundle.kind == "vocoder"
                                    else self.bundle.sample_rate)
                if self.step % t.checkpoint_every == 0 or self.step == t.steps:
                    self._checkpoint()
        finally:
            bar.close()
            redirect.close()
        elapsed = time.perf_counter() - t0
        if not d.main:
            return {}
        return self._finish(tracker, elapsed, self.step - steps0, seg, self.first_val, self.last_val)

    def _log_validation(self, tracker: Tracker, value: float) -> None:
        self.val_history.append({"step": self.step, "val_mel_l1": value})
        tracker.metric("val_mel_l1", value, self.step)
        log.info("step %d/%d: val_mel_l1=%.4g%s", self.step, self.params.train.steps, value,
                 " (before training)" if self.step == 0 else "")

    def _log_row(self, row: dict[str, float], steps_per_second: float) -> None:
        """One plain line per ``train.log_every`` steps: the totals first, then the terms."""
        first = [k for k in ("g_loss", "d_loss") if k in row]
        values = " ".join(f"{k}={row[k]:.4g}" for k in first + [k for k in row if k not in first])
        log.info("step %d/%d: %s (%.3g steps/s)", self.step, self.params.train.steps, values, steps_per_second)

    def _checkpoint(self) -> None:
        """Rank 0 writes; under torchrun it also keeps every rank's RNG state (collective)."""
        t, d = self.params.train, self.dist
        rng_ranks: list[Any] | None = None
        if d.world > 1:
            rng_ranks = [None] * d.world
            dist.all_gather_object(rng_ranks, ckpt.rng_state())
        if d.main:
            ckpt.save(self._state(rng_ranks), self.ckpt_dir, self.step, t.keep_last)
        if d.world > 1:
            dist.barrier()

    def _finish(self, tracker: Tracker, elapsed: float, steps_done: int, seg: int,
                first_val: float | None, last_val: float | None) -> dict[str, Any]:
        G = self.ema if self.ema is not None else self.G
        generator_io.save_generator(self.paths.generator, self.bundle, G, self.mel_config, self.stats,
                                    self.label_names, step=self.step, run_id=tracker.run_id)
        steps_done, elapsed = steps_done + self.earlier_steps, elapsed + self.earlier_seconds
        sps = steps_done / elapsed if elapsed > 0 and steps_done else 0.0
        last = self.history[-1] if self.history else {}
        metrics = {
            "steps": self.step, "skipped_steps": self.skipped_steps, "skipped_d_updates": self.skipped_d_updates,
            "steps_per_second": round(sps, 4),
            "generator_parameters": sum(p.numel() for p in self.G.parameters()),
            **{k: round(v, 6) for k, v in last.items() if k not in ("step",) and math.isfinite(v)},
        }
        if self.bundle.kind == "vocoder":
            audio_per_step = self.recipe.batch_size * seg / self.mel_config.sample_rate
            metrics["audio_seconds_per_second"] = round(sps * audio_per_step, 3)
        if first_val is not None:
            metrics["val_mel_l1_initial"] = round(first_val, 6)
        if last_val is not None:
            metrics["val_mel_l1"] = round(last_val, 6)
        write_json(self.paths.metrics, metrics)
        curve = pd.DataFrame(self.history)
        with atomic_path(self.paths.curve) as tmp:
            curve.to_csv(tmp, index=False)
        figures = pd.DataFrame(self.history or {"step": []})
        if self.val_history:  # validations (from step 0 on) as one more quantity
            figures = figures.merge(pd.DataFrame(self.val_history), on="step", how="outer")
        plot_training_curves(self.paths.figure_dir, figures.sort_values("step"))
        tracker.final(metrics, self.paths)
        return metrics


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def train(params: Params, paths: TrainPaths = TrainPaths(), progress: bool = True) -> dict[str, Any]:
    try:
        return Trainer(params, paths, progress).run()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
