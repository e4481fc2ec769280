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
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from ganpipe import generator_io
from ganpipe.config import Params
from ganpipe.features import load_stats
from ganpipe.mel import MelConfig, MelSpectrogram
from ganpipe.models.outputs import DiscriminatorOutput
from ganpipe.stft_distance import MultiResolutionSTFT
from ganpipe.training import batching, checkpoint, distributed, losses, report, setup, validation
from ganpipe.training.data import Corpus, load_corpus
from ganpipe.training.loss_mel import mel_loss
from ganpipe.training.recipes import resolve
from ganpipe.training.run_identity import run_key
from ganpipe.training.setup import TrainPaths
from ganpipe.training.tracking import Tracker

log = logging.getLogger(__name__)
SUBBAND_RESOLUTIONS = ((384, 30, 150), (683, 60, 300), (171, 10, 60))


class TrainingDiverged(RuntimeError):
    """Losses stayed non-finite for too many consecutive steps."""


class Trainer:
    """One training run: built from the params (resumed or fine-tuned from where they say), then
    :meth:`run` steps it to ``train.steps``. Attributes the steps share: ``G``/``D`` (the generator and
    the discriminators), ``G_train``/``D_fwd`` (what the step calls: wrapped for DDP, compiled),
    ``opt_g``/``opt_d``, ``sched_g``/``sched_d``, ``scaler``, ``ema`` and the run's counters."""

    def __init__(self, params: Params, paths: TrainPaths = TrainPaths(), progress: bool = True):
        self.params, self.paths, self.progress = params, paths, progress
        train = params.train
        if train.threads:
            torch.set_num_threads(train.threads)
        self.dist, self.device = setup.training_device(train.device, train.dist_backend)
        self.amp_dtype = setup.autocast_dtype(train.precision, self.device)  # before any work: fails naming the key
        torch.manual_seed(train.seed + self.dist.rank)
        self._load_data()
        self._build_networks()
        self._build_optimisers()
        self._build_losses()
        self._start_counters()
        self.ckpt_dir = paths.checkpoints / run_key(params, self.mel_config, paths.features)
        self._resume_or_finetune()
        if self.bundle.description.needs_statistics(self.G):
            self._fit_spectrogram_statistics()
        self._wrap_for_training()

    # -- set-up, in the order __init__ calls it ------------------------------------------------------
    def _load_data(self) -> None:
        prepared, features = self.paths.prepared, self.paths.features
        self.mel_config = MelConfig.from_dict(json.loads((features / "mel_config.json").read_text()))
        self.stats = load_stats(features)
        self.train_corpus = load_corpus(prepared, features, "train")
        self.valid_corpus = load_corpus(prepared, features, "valid")
        self.label_names = self.train_corpus.label_names

    def _build_networks(self) -> None:
        model = self.params.model
        self.bundle = setup.build_bundle(self.params, len(self.label_names), self.mel_config)
        self.recipe = resolve(model.variant, self.params.train)
        setup.check_discriminator_weights(self.recipe, self.bundle, model.variant)
        self.conditional = model.conditioning == "labels"
        self.G = self.bundle.generator.to(self.device)
        self.D = setup.Discriminators(self.bundle).to(self.device)

    def _build_optimisers(self) -> None:
        recipe = self.recipe
        self.opt_g = setup.optimizer(self.G.parameters(), recipe.lr_generator, recipe)
        self.opt_d = setup.optimizer(self.D.parameters(), recipe.lr_discriminator, recipe)
        self.sched_g, self.sched_d = setup.scheduler(self.opt_g, recipe), setup.scheduler(self.opt_d, recipe)
        self.per_epoch_schedule = recipe.scheduler == "exponential_per_epoch"
        self.scaler = setup.grad_scaler(self.params.train.precision, self.device)
        self.ema = copy.deepcopy(self.G).eval() if self.params.train.ema_decay > 0 else None

    def _build_losses(self) -> None:
        eps = self.recipe.stft_eps
        self.mel_fn = MelSpectrogram(self.mel_config).to(self.device)  # the feature mel: validation
        self.mel_loss = mel_loss(self.mel_config, self.recipe).to(self.device)
        self.mrstft = MultiResolutionSTFT(eps=eps).to(self.device)
        self.mrstft_sub = MultiResolutionSTFT(SUBBAND_RESOLUTIONS, eps=eps).to(self.device)

    def _start_counters(self) -> None:
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
        self._pending: dict[str, list[float]] = {}  # the losses of the steps since the last logged row

    def _fit_spectrogram_statistics(self) -> None:
        dataset = self.dataset(self.train_corpus)
        n = min(len(dataset), 256)
        clips = torch.stack([dataset[i]["wav"] for i in range(n)]).to(self.device)
        self.G.spectrogram.fit_statistics(clips)

    def _wrap_for_training(self) -> None:
        """``G_train`` (sub-bands or output; DDP under torchrun) and ``D_fwd``, compiled if asked."""
        self.G_train: nn.Module = setup.TrainingForward(self.G, self.bundle.description.subbands)
        if self.dist.world > 1:
            distributed.broadcast_from_rank0(self.D)
            self.G_train = nn.parallel.DistributedDataParallel(
                self.G_train, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                find_unused_parameters=True)
        if self.params.train.compile:
            self.G_train = torch.compile(self.G_train)
            self.D_fwd: Any = torch.compile(self.D)
        else:
            self.D_fwd = self.D

    # -- data -----------------------------------------------------------------------------------------
    def dataset(self, corpus: Corpus) -> torch.utils.data.Dataset:
        return batching.training_dataset(corpus, self.bundle, self.mel_config, self.stats, self.recipe)

    def batches(self) -> Iterator[dict[str, torch.Tensor]]:
        """Endless batches on the device. The batch order depends only on (seed, epoch), so a resumed
        run continues mid-epoch exactly where it stopped (bit-identical with ``num_workers: 0``)."""
        train = self.params.train
        dataset = self.dataset(self.train_corpus)
        per_rank = max(1, self.recipe.batch_size // self.dist.world)
        plan = batching.EpochPlan()
        seed = torch.Generator().manual_seed(train.seed * 100_003 + self.epoch * 1009 + self.batch_in_epoch)
        loader = batching.epoch_loader(dataset, plan, train, self.device, seed)
        while True:
            plan.batches = batching.epoch_index_batches(len(dataset), per_rank, train.seed, self.epoch,
                                                        self.dist)[self.batch_in_epoch:]
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

    # -- checkpoints ----------------------------------------------------------------------------------
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
            "rng": checkpoint.rng_state(), "rng_ranks": rng_ranks, "history": self.history,
            "val_history": self.val_history,
            "timed": {"seconds": self.earlier_seconds + time.perf_counter() - self._t0,
                      "steps": self.earlier_steps + self.step - self._steps0},
            "mel_config": self.mel_config.to_dict(),
        }

    def save_checkpoint(self) -> None:
        """Rank 0 writes; under torchrun it also keeps every rank's RNG state (collective)."""
        rng_ranks = distributed.gather_rng_states(self.dist)
        if self.dist.main:
            checkpoint.save(self._state(rng_ranks), self.ckpt_dir, self.step, self.params.train.keep_last)
        distributed.barrier(self.dist)

    def _resume_or_finetune(self) -> None:
        state = checkpoint.load_latest(self.ckpt_dir, map_location=self.device)
        if state is not None:
            self._load_modules(state)
            self._load_counters(state)
            self._restore_rng(state)
            if self.dist.main:
                log.info("resumed from step %d (%s)", self.step, self.ckpt_dir)
        elif self.params.train.fine_tune_from:
            self._fine_tune(self.params.train.fine_tune_from)

    def _load_modules(self, state: dict[str, Any]) -> None:
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

    def _load_counters(self, state: dict[str, Any]) -> None:
        self.step, self.epoch = int(state["step"]), int(state["epoch"])
        self.batch_in_epoch = int(state.get("batch_in_epoch", 0))
        self.skipped_steps = int(state.get("skipped_steps", 0))
        self.skipped_d_updates = int(state.get("skipped_d_updates", 0))
        self.first_val, self.last_val = state.get("val_mel_l1_initial"), state.get("val_mel_l1")
        self.history = list(state.get("history", []))
        self.val_history = list(state.get("val_history", []))
        timed = state.get("timed") or {}
        self.earlier_seconds, self.earlier_steps = float(timed.get("seconds", 0.0)), int(timed.get("steps", 0))

    def _restore_rng(self, state: dict[str, Any]) -> None:
        ranks = state.get("rng_ranks")
        if self.dist.world > 1 and ranks and len(ranks) == self.dist.world:
            checkpoint.restore_rng(ranks[self.dist.rank])
            return
        checkpoint.restore_rng(state["rng"])
        if self.dist.world > 1:  # saved by another world size: keep the ranks' streams apart
            torch.manual_seed(self.params.train.seed + 7919 * self.step + self.dist.rank)

    def _fine_tune(self, source: str) -> None:
        """``train.fine_tune_from``'s generator (and EMA) weights, and its discriminators' if asked."""
        with_discriminators = self.params.train.fine_tune_discriminator
        setup.load_starting_weights(source, self.bundle, self.mel_config, self.stats, self.G, self.ema,
                                    self.D.parts if with_discriminators else None)
        if self.dist.main:
            log.info("fine-tuning from %s (%s)", source,
                     "generator and discriminators" if with_discriminators else "generator weights only")

    # -- one update -----------------------------------------------------------------------------------
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def update(self, loss: torch.Tensor, net: str, sync_grads: bool) -> bool:
        """Backward + step of ``net`` ("g" or "d") unless its loss is non-finite on any rank; clips
        its gradients at the recipe's norm and steps a per-update scheduler. Returns whether it stepped."""
        recipe = self.recipe
        opt, sched, module = (self.opt_g, self.sched_g, self.G) if net == "g" else (self.opt_d, self.sched_d, self.D)
        clip = recipe.grad_clip_generator if net == "g" else recipe.grad_clip_discriminator
        opt.zero_grad(set_to_none=True)
        if not distributed.all_finite([loss], self.dist):
            return False
        self.scaler.scale(loss).backward()
        if sync_grads:
            distributed.average_grads(module, self.dist)
        if clip > 0:
            self.scaler.unscale_(opt)
            parts = self.D.parts.values() if net == "d" and recipe.grad_clip_per_discriminator else [module]
            for part in parts:
                torch.nn.utils.clip_grad_norm_(part.parameters(), clip)
        self.scaler.step(opt)
        self.scaler.update()
        if not self.per_epoch_schedule:
            sched.step()
        return True

    def _sub_weights(self, out: DiscriminatorOutput) -> list[float] | None:
        return losses.sub_discriminator_weights(out, dict(self.recipe.discriminator_weights),
                                                self.recipe.average_by_discriminators)

    def _d_loss(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None) -> tuple[torch.Tensor, dict]:
        """The discriminators on the real batch, then (a separate pass, as both references do: each
        pass is one spectral-norm power iteration) on the detached generated one."""
        recipe, train = self.recipe, self.params.train
        with self._autocast():
            out_real = self.D_fwd(real, labels)
            out_fake = self.D_fwd(fake.detach(), labels)
            loss = losses.discriminator_loss(recipe.adversarial_loss, out_real.logits, out_fake.logits,
                                             train.label_smoothing, self._sub_weights(out_real))
        parts = {"d_adv": loss.detach()}
        if recipe.adversarial_loss == "wgan-gp":
            gp = losses.gradient_penalty(lambda x: self.D(x, labels).logits, real.float(), fake.float())
            loss = loss + train.lambda_gp * gp
            parts["d_gp"] = gp.detach()
        if self.params.model.ac_gan:
            ac = (losses.classification_loss(out_real.class_logits, labels)
                  + losses.classification_loss(out_fake.class_logits, labels))
            loss = loss + train.lambda_ac * ac
            parts["d_ac"] = ac.detach()
        return loss, parts

    def _d_update(self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None,
                  logs: dict[str, torch.Tensor]) -> None:
        loss_d, parts = self._d_loss(real, fake, labels)
        logs.update(parts)
        if self.update(loss_d, "d", sync_grads=True):
            logs["d_loss"] = loss_d.detach()
        else:
            self.skipped_d_updates += 1
            log.warning("non-finite discriminator loss at step %d: discriminator update skipped (%d in all)",
                        self.step + 1, self.skipped_d_updates)

    def _g_adv_terms(self, real: torch.Tensor | None, fake: torch.Tensor, labels: torch.Tensor | None
                     ) -> dict[str, torch.Tensor]:
        """The generator's adversarial terms, unweighted: ``adv``, ``fm`` (feature matching, when
        the recipe has it) and ``ac`` (AC-GAN). The real batch's pass needs no gradient; it runs
        before or after the generated one as the recipe's reference does (``g_step_real_first``)."""
        recipe = self.recipe
        zero = fake.new_zeros(())
        with self._autocast():
            out_real = None
            fm_wanted = real is not None and recipe.lambda_fm > 0
            if fm_wanted and recipe.g_step_real_first:
                with torch.no_grad():
                    out_real = self.D_fwd(real, labels)
            out_fake = self.D_fwd(fake, labels)
            if fm_wanted and not recipe.g_step_real_first:
                with torch.no_grad():
                    out_real = self.D_fwd(real, labels)
            adv = losses.generator_loss(recipe.adversarial_loss, out_fake.logits, self._sub_weights(out_fake))
        fm = zero
        if out_real is not None:
            compared = losses.feature_maps(out_real, out_fake, recipe.fm_include_final)
            fm = losses.feature_matching(*compared, self._sub_weights(out_fake))
        ac = losses.classification_loss(out_fake.class_logits, labels) if self.params.model.ac_gan else zero
        return {"adv": adv, "fm": fm, "ac": ac}

    # -- one training step ----------------------------------------------------------------------------
    def train_step(self, batch: dict[str, torch.Tensor], batches: Iterator[dict[str, torch.Tensor]]
                   ) -> dict[str, torch.Tensor]:
        """One step of the recipe (a latent model's critic steps take more batches from ``batches``);
        the losses, or ``nonfinite`` when the generator's loss was not finite."""
        if self.bundle.kind == "vocoder":
            return self.vocoder_step(batch)
        return self.latent_step(batch, batches)

    def _generate(self, mel: torch.Tensor, speaker: dict[str, torch.Tensor], length: int
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(waveform, MB-MelGAN's sub-bands or None) of the training forward, float32."""
        with self._autocast():
            out = self.G_train(mel, **speaker)
        if not self.bundle.description.subbands:
            return out[..., :length].float(), None
        sub = out.float()
        return self.G.pqmf.synthesis(sub)[..., :length].float(), sub

    def _stft_loss(self, fake: torch.Tensor, sub: torch.Tensor | None, wav: torch.Tensor) -> torch.Tensor:
        """Multi-resolution STFT loss; MB-MelGAN: 0.5 x full band + 0.5 x its PQMF sub-bands."""
        full = self.mrstft(fake, wav).total
        if not self.recipe.subband_stft:
            return full
        real_sub = self.G.pqmf.analysis(wav)
        b, k, n = real_sub.shape
        return 0.5 * (full + self.mrstft_sub(sub.reshape(b * k, n), real_sub.reshape(b * k, n)).total)

    def vocoder_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """One iteration of the recipe: the discriminators first (jik876) or after the generator,
        on the updated generator's prediction of the same input and noise (the toolkit)."""
        recipe = self.recipe
        mel, wav = batch["mel"], batch["wav"]
        labels = batch["label"] if self.conditional else None
        speaker = {"speaker": labels} if self.conditional else {}
        # the generator's noise (PWG), drawn again for the toolkit's D pass
        rng = distributed.device_rng_state(self.device)
        fake, sub = self._generate(mel, speaker, wav.shape[-1])
        logs: dict[str, torch.Tensor] = {}
        d_active = self.step >= recipe.discriminator_start_step
        if d_active and recipe.update_order == "d_first":
            self._d_updates(wav, fake, labels, logs)
        loss_gen_all = self._vocoder_generator_loss(wav, fake, sub, labels, d_active, logs)
        if not self.update(loss_gen_all, "g", sync_grads=False):
            logs["nonfinite"] = torch.tensor(1.0)
            return logs
        logs["g_loss"] = loss_gen_all.detach()
        if d_active and recipe.update_order == "g_first":
            with torch.no_grad(), distributed.rng_restored(self.device, rng):
                fake, _ = self._generate(mel, speaker, wav.shape[-1])
            self._d_updates(wav, fake, labels, logs)
        return logs

    def _d_updates(self, wav: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None,
                   logs: dict[str, torch.Tensor]) -> None:
        for _ in range(self.recipe.critic_steps):
            self._d_update(wav, fake, labels, logs)

    def _vocoder_generator_loss(self, wav: torch.Tensor, fake: torch.Tensor, sub: torch.Tensor | None,
                                labels: torch.Tensor | None, d_active: bool, logs: dict[str, torch.Tensor]
                                ) -> torch.Tensor:
        """The recipe's weighted sum of the mel L1, STFT and adversarial terms; the active ones logged."""
        recipe = self.recipe
        zero = fake.new_zeros(())
        mel_l1 = self.mel_loss(fake.squeeze(1), wav.squeeze(1)) if recipe.lambda_mel > 0 else zero
        stft = self._stft_loss(fake, sub, wav) if recipe.lambda_stft > 0 else zero
        adv = self._g_adv_terms(wav, fake, labels) if d_active else {"adv": zero, "fm": zero, "ac": zero}
        loss_gen_all = (recipe.lambda_mel * mel_l1 + recipe.lambda_stft * stft + recipe.lambda_adv * adv["adv"]
                        + recipe.lambda_fm * adv["fm"] + self.params.train.lambda_ac * adv["ac"])
        active = {"g_mel_l1": recipe.lambda_mel > 0, "g_stft": recipe.lambda_stft > 0, "g_adv": d_active,
                  "g_fm": d_active and recipe.lambda_fm > 0, "g_ac": d_active and self.params.model.ac_gan}
        terms = (mel_l1, stft, adv["adv"], adv["fm"], adv["ac"])
        logs.update({k: v.detach() for k, v in zip(active, terms) if active[k]})
        return loss_gen_all

    def _latent_fake(self, n: int, labels: torch.Tensor | None) -> torch.Tensor:
        z = self.G.sample_latent(n, device=self.device)
        with self._autocast():
            return self.G_train(z, labels=labels) if self.conditional else self.G_train(z)

    def latent_step(self, batch: dict[str, torch.Tensor], batches: Iterator[dict[str, torch.Tensor]]
                    ) -> dict[str, torch.Tensor]:
        """``critic_steps`` discriminator updates (each on its own batch), then one generator update."""
        logs: dict[str, torch.Tensor] = {}
        for i in range(self.recipe.critic_steps):
            if i:
                batch = next(batches)
            real = self.bundle.description.real_example(self.G, batch)
            labels = batch["label"] if self.conditional else None
            with torch.no_grad():
                fake = self._latent_fake(real.shape[0], labels)
            self._d_update(real, fake.float(), labels, logs)
        labels = batch["label"] if self.conditional else None
        fake = self._latent_fake(real.shape[0], labels).float()
        adv = self._g_adv_terms(None, fake, labels)
        loss_g = self.recipe.lambda_adv * adv["adv"] + self.params.train.lambda_ac * adv["ac"]
        logs["g_adv"] = adv["adv"].detach()
        if self.params.model.ac_gan:
            logs["g_ac"] = adv["ac"].detach()
        if self.update(loss_g, "g", sync_grads=False):
            logs["g_loss"] = loss_g.detach()
        else:
            logs["nonfinite"] = torch.tensor(1.0)
        return logs

    @torch.no_grad()
    def ema_update(self) -> None:
        if self.ema is None:
            return
        decay = self.params.train.ema_decay
        for averaged, param in zip(self.ema.parameters(), self.G.parameters()):
            averaged.lerp_(param.detach(), 1.0 - decay)
        for averaged, buffer in zip(self.ema.buffers(), self.G.buffers()):
            averaged.copy_(buffer)

    # -- validation -----------------------------------------------------------------------------------
    @torch.no_grad()
    def validate(self, max_items: int = 4, max_seconds: float = 4.0) -> dict[str, Any]:
        """Mel L1 of copy-synthesis on held-out utterances (vocoders); generated samples."""
        generator = self.ema if self.ema is not None else self.G
        was_training = generator.training
        generator.eval()
        try:
            if self.bundle.kind != "vocoder":
                return validation.generated_samples(generator, self.bundle, max(1, self.params.train.samples_to_log),
                                                    len(self.label_names), self.conditional, self.device)
            corpus = self.valid_corpus if len(self.valid_corpus) else self.train_corpus
            return validation.copy_synthesis(generator, corpus, self.dataset(corpus), self.mel_fn, self.mel_config,
                                             self.device, conditional=self.conditional,
                                             min_frames=self.bundle.min_frames or 1, max_items=max_items,
                                             max_seconds=max_seconds)
        finally:
            generator.train(was_training)

    def _validate_and_log(self, tracker: Tracker) -> dict[str, Any]:
        """A validation; its mel L1 (vocoders) kept in ``val_history``, logged and tracked."""
        val = self.validate()
        if "val_mel_l1" in val:
            value = val["val_mel_l1"]
            self.val_history.append({"step": self.step, "val_mel_l1": value})
            tracker.metric("val_mel_l1", value, self.step)
            log.info("step %d/%d: val_mel_l1=%.4g%s", self.step, self.params.train.steps, value,
                     " (before training)" if self.step == 0 else "")
        return val

    # -- the loop -------------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        tracker = Tracker(self.params, enabled=self.dist.main and self.params.tracking.enabled,
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
        train = self.params.train
        if self.dist.main and self.step == 0:
            self.first_val = self._validate_and_log(tracker).get("val_mel_l1", self.first_val)
        batches = self.batches()
        draw_bar = self.progress and self.dist.main and report.is_terminal(sys.stderr)
        progress = report.Progress(train.steps, self.step, f"train {self.bundle.variant}", draw_bar)
        started, steps_before = time.perf_counter(), self.step
        self._t0, self._steps0 = started, steps_before
        with progress:
            while self.step < train.steps:
                logs = self.train_step(next(batches), batches)
                if "nonfinite" in logs:
                    self._skip_step()
                    continue
                self.bad_streak = 0
                self.ema_update()
                self.step += 1
                progress.advance()
                self._after_step(logs, tracker, progress)
        elapsed = time.perf_counter() - started
        result = self._finish(tracker, elapsed, self.step - steps_before) if self.dist.main else {}
        # every node's torchrun ends after rank 0's outputs exist: a node whose `dvc repro` records them may
        # not host rank 0 (the c10d rendezvous numbers the nodes)
        distributed.barrier(self.dist)
        return result

    def _skip_step(self) -> None:
        self.skipped_steps += 1
        self.bad_streak += 1
        log.warning("non-finite loss at step %d: update skipped (%d in a row, %d in all)",
                    self.step + 1, self.bad_streak, self.skipped_steps)
        if self.bad_streak >= self.params.train.max_nonfinite_steps:
            raise TrainingDiverged(
                f"losses were non-finite for {self.bad_streak} consecutive steps (at step {self.step}); "
                "try a lower learning rate, train.precision: fp32 or train.grad_clip")

    def _after_step(self, logs: dict[str, torch.Tensor], tracker: Tracker, progress: report.Progress) -> None:
        """The step's losses kept; every ``log_every`` steps logged, every ``validate_every`` a
        validation, every ``checkpoint_every`` a checkpoint (and all three after the last step)."""
        train = self.params.train
        last = self.step == train.steps
        for key, value in logs.items():
            self._pending.setdefault(key, []).append(float(value))
        if self.step % train.log_every == 0 or last:
            self._log_losses(tracker, progress)
        if self.dist.main and (self.step % train.validate_every == 0 or last):
            val = self._validate_and_log(tracker)
            self.last_val = val.get("val_mel_l1", self.last_val)
            vocoder = self.bundle.kind == "vocoder"
            tracker.samples(val, self.step, self.mel_config.sample_rate if vocoder else self.bundle.sample_rate)
        if self.step % train.checkpoint_every == 0 or last:
            self.save_checkpoint()

    def _log_losses(self, tracker: Tracker, progress: report.Progress) -> None:
        """The mean losses since the last row (+ the learning rate, fp16's loss scale): into the history,
        MLflow and one plain log line, the totals first."""
        row = {key: float(np.mean(values)) for key, values in self._pending.items()}
        self._pending.clear()
        row["lr_g"] = self.opt_g.param_groups[0]["lr"]
        if self.scaler.is_enabled():  # fp16: a falling scale = steps the scaler skipped
            row["amp_scale"] = self.scaler.get_scale()
        if not self.dist.main:
            return
        self.history.append({"step": self.step, **row})
        tracker.metrics(row, self.step)
        steps_per_second = progress.row_logged(row, self.step)
        first = [k for k in ("g_loss", "d_loss") if k in row]
        values = " ".join(f"{k}={row[k]:.4g}" for k in first + [k for k in row if k not in first])
        log.info("step %d/%d: %s (%.3g steps/s)", self.step, self.params.train.steps, values, steps_per_second)

    def _finish(self, tracker: Tracker, elapsed: float, steps_done: int) -> dict[str, Any]:
        """The generator file, metrics/train.json, the curves and figures; the metrics."""
        generator = self.ema if self.ema is not None else self.G
        generator_io.save_generator(self.paths.generator, self.bundle, generator, self.mel_config, self.stats,
                                    self.label_names, step=self.step, run_id=tracker.run_id)
        steps_done, elapsed = steps_done + self.earlier_steps, elapsed + self.earlier_seconds
        counts = {"steps": self.step, "skipped_steps": self.skipped_steps, "skipped_d_updates": self.skipped_d_updates}
        audio_per_step = (self.recipe.batch_size * self.recipe.segment_samples / self.mel_config.sample_rate
                          if self.bundle.kind == "vocoder" else None)
        metrics = report.train_metrics(
            counts, steps_done / elapsed if elapsed > 0 and steps_done else 0.0,
            sum(p.numel() for p in self.G.parameters()), self.history[-1] if self.history else {},
            audio_per_step, self.first_val, self.last_val)
        report.write_outputs(self.paths, metrics, self.history, self.val_history)
        tracker.final(metrics, self.paths)
        return metrics


def train(params: Params, paths: TrainPaths = TrainPaths(), progress: bool = True) -> dict[str, Any]:
    try:
        return Trainer(params, paths, progress).run()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
