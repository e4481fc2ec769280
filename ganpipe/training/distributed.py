"""What training under ``torchrun`` needs beyond DDP: the process group, a finite check all ranks
agree on, one flattened all-reduce of the discriminator gradients, rank 0's discriminators on every
rank, every rank's RNG state for the checkpoint, and the random streams replayed (see
:func:`rng_restored`). With one process each is a no-op or a plain local call.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from ganpipe.training import checkpoint


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def init_distributed(device_kind: str, backend: str = "auto") -> Dist:
    """Join torchrun's process group (``train.dist_backend``; auto: nccl on CUDA, gloo on the CPU)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if device_kind == "cuda":  # before the NCCL group exists, so its collectives use this GPU
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if backend == "auto":
        backend = "nccl" if device_kind == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def all_finite(values: list[torch.Tensor], ranks: Dist) -> bool:
    """Whether every value is finite on every rank."""
    # on the values' device: NCCL reduces CUDA tensors only
    ok = torch.tensor(float(all(bool(torch.isfinite(v).all()) for v in values)), device=values[0].device)
    if ranks.world > 1:
        dist.all_reduce(ok, op=dist.ReduceOp.MIN)
    return bool(ok.item() > 0.5)


def average_grads(module: nn.Module, ranks: Dist) -> None:
    """One flattened all-reduce of a module's gradients (the discriminator under torchrun)."""
    if ranks.world <= 1:
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([grad.reshape(-1) for grad in grads])
    dist.all_reduce(flat)
    flat /= ranks.world
    offset = 0
    for grad in grads:
        grad.copy_(flat[offset:offset + grad.numel()].view_as(grad))
        offset += grad.numel()


def broadcast_from_rank0(module: nn.Module) -> None:
    """Every rank starts from rank 0's module: parameters and buffers (e.g. the spectral-norm
    power-iteration vectors, which would otherwise differ per rank)."""
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


def gather_rng_states(ranks: Dist) -> list[Any] | None:
    """Every rank's RNG state, in rank order (collective); ``None`` with one process."""
    if ranks.world <= 1:
        return None
    states: list[Any] = [None] * ranks.world
    dist.all_gather_object(states, checkpoint.rng_state())
    return states


def barrier(ranks: Dist) -> None:
    if ranks.world > 1:
        dist.barrier()


def device_rng_state(device: torch.device) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The CPU stream and, on CUDA, ``device``'s stream (what :func:`rng_restored` replays)."""
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


@contextlib.contextmanager
def rng_restored(device: torch.device, state: tuple[torch.Tensor, torch.Tensor | None]) -> Iterator[None]:
    """Inside: the random streams as in ``state`` (the same noise drawn again); after: as before."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], device)
        yield
