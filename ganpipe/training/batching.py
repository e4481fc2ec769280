"""What the trainer feeds on: the training dataset of a bundle, each epoch's batches of dataset
indices (a pure function of the seed and the epoch, so a run resumed mid-epoch continues with the
same batches), and the one DataLoader that serves every epoch (:class:`EpochPlan`)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from ganpipe.config import TrainParams
from ganpipe.mel import MelConfig
from ganpipe.models import ModelBundle
from ganpipe.training.data import Corpus, MelFrames, VocoderSegments, WaveClips
from ganpipe.training.distributed import Dist
from ganpipe.training.recipes import Recipe


def training_dataset(corpus: Corpus, bundle: ModelBundle, mel: MelConfig, stats: dict[str, np.ndarray],
                     recipe: Recipe) -> Dataset:
    """Vocoders: segments of waveform and mel; mel-frame models: frames; the rest: waveform clips."""
    normalise = mel.normalize == "meanvar"
    if bundle.kind == "vocoder":
        segment = max(recipe.segment_samples // mel.hop_length, bundle.min_frames or 1) * mel.hop_length
        return VocoderSegments(corpus, segment, mel.hop_length, stats["mean"] if normalise else None,
                               stats["std"] if normalise else None)
    if bundle.description.discriminates == "mel_frame":
        return MelFrames(corpus, stats["mean"], stats["std"])
    return WaveClips(corpus, bundle.description.clip_samples, bundle.sample_rate, mel.sample_rate)


def epoch_index_batches(n: int, per_rank: int, seed: int, epoch: int, ranks: Dist) -> list[list[int]]:
    """This rank's batches of dataset indices for ``epoch``."""
    if ranks.world > 1:
        sampler: Any = DistributedSampler(range(n), num_replicas=ranks.world, rank=ranks.rank,
                                          shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
    else:
        generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
        small = n < per_rank
        sampler = RandomSampler(range(n), replacement=small, num_samples=per_rank if small else None,
                                generator=generator)
    indices = [int(i) for i in sampler]
    batches = [indices[i:i + per_rank] for i in range(0, len(indices), per_rank)]
    if len(batches) > 1 and len(batches[-1]) < per_rank:
        batches.pop()  # drop_last, but never down to no batch at all
    return batches


class EpochPlan:
    """A batch sampler whose batches are set before each epoch (lets one loader serve them all)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(list(self.batches))

    def __len__(self) -> int:
        return len(self.batches)


def epoch_loader(dataset: Dataset, plan: EpochPlan, train: TrainParams, device: torch.device,
                 generator: torch.Generator) -> DataLoader:
    """One DataLoader for every epoch. With ``num_workers > 0`` its workers are persistent and
    *spawned*: the process runs Prefect/MLflow threads, and forking a threaded process kills workers
    at random (seen as "DataLoader worker exited unexpectedly")."""
    return DataLoader(dataset, batch_sampler=plan, num_workers=train.num_workers,
                      pin_memory=device.type == "cuda", generator=generator,
                      persistent_workers=train.num_workers > 0,
                      multiprocessing_context="spawn" if train.num_workers > 0 else None)
