"""Streamed vocoding: a long mel cut into overlapping blocks whose stitched output equals the
whole-utterance output.

Every vocoder here is a stack of convolutions (plus, for Vocos, an inverse STFT): output sample ``t``
depends only on the mel frames within a fixed window around ``t // hop``, its *receptive field*.
:func:`receptive_field` measures that window on the generator itself: it runs a short random mel
forward, back-propagates from the samples of the centre frame and reads which input frames got a
non-zero gradient (for Parallel WaveGAN also which noise samples). The measurement is of the model
actually served (its depth, kernels, dilations and upsampling), so it cannot go out of date with a
variant's configuration. Measured on the published configurations (frames each side, hop 256):

=====================  ============  =====================================================
variant                left / right  where it comes from
=====================  ============  =====================================================
vocos                  29 / 29       embed conv 7 + 8 ConvNeXt depthwise convs 7 (27), ISTFT window 1024 (2)
hifigan_v1, v2         13 / 13       MRF kernels 3/7/11, dilations 1/3/5 after each of 4 upsamplings
hifigan_v3             11 / 11       MRF kernels 3/5/7, dilations 1/2 after each of 3 upsamplings
melgan                 6 / 6         7-tap input conv + dilated residual stacks (1/3/9) per upsampling
multiband_melgan       17 / 17       as MelGAN at sub-band rate, + the PQMF synthesis filter
parallel_wavegan       16 / 16       aux conv (5 frames) and the 30-layer WaveNet on the noise (~3000 samples)
bigvgan_base           17 / 17       anti-aliased activations (up/down-sampling filters) widen every block
bigvgan_v2             33 / 33       as bigvgan_base, 6 upsamplings
=====================  ============  =====================================================

(``tests/serving/test_streaming.py`` measures them on the tiny test configurations and checks the
stitching equality per family.) A block of frames ``[a, b)`` is computed over ``[a - left - margin,
b + right + margin)`` (clipped at the utterance's ends, where block and whole see the same padding)
and only its ``[a, b)`` samples are kept. The first block is short (time to first audio), the
others long (throughput). Parallel WaveGAN draws noise: the whole utterance's noise is drawn once
(seeded) and each block gets its slice, so that the stitched output is the same as the whole.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

MARGIN_FRAMES = 2  # beyond the measured field: float rounding of the measurement is never relied upon
_PROBE_FRAMES = 16  # half-width of the first probe; doubled until the field fits inside (a full HiFi-GAN V1: ~5 s)


@dataclass(frozen=True)
class ReceptiveField:
    """Mel frames each side of a frame that its output samples depend on."""

    left: int
    right: int

    @property
    def overlap(self) -> int:
        return max(self.left, self.right) + MARGIN_FRAMES


@dataclass(frozen=True)
class Block:
    """Keep frames ``[start, stop)``, computed over the frames ``[lo, hi)``."""

    start: int
    stop: int
    lo: int
    hi: int


def draws_noise(module: nn.Module) -> bool:
    try:
        return "noise" in inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False


def _support(grad: torch.Tensor) -> tuple[int, int]:
    """First and last index (last axis) with a non-zero gradient anywhere else."""
    nonzero = grad.abs().flatten(0, -2).sum(0).nonzero().flatten()
    if nonzero.numel() == 0:
        raise ValueError("the generator's output does not depend on its input here (saturated?): its receptive "
                         "field cannot be measured")
    return int(nonzero.min()), int(nonzero.max())


def _probe(module: nn.Module, n_mels: int, hop: int, half: int, speaker: int | None) -> tuple[int, int, int]:
    """(left, right, frames of the probe) of the centre frame of a ``2 * half + 1`` frame mel."""
    frames = 2 * half + 1
    gen = torch.Generator().manual_seed(0)
    # small values: no output saturates (a clamped sample has no gradient); the field is structural anyway
    mel = (0.5 * torch.randn(1, n_mels, frames, generator=gen)).requires_grad_(True)
    kwargs: dict = {} if speaker is None else {"speaker": torch.tensor([speaker])}
    noise = None
    if draws_noise(module):
        noise = torch.randn(1, 1, frames * hop, generator=gen).requires_grad_(True)
        kwargs["noise"] = noise
    with torch.enable_grad():
        out = module(mel, **kwargs)
        out[..., half * hop:(half + 1) * hop].sum().backward()
    first, last = _support(mel.grad)
    left, right = half - first, last - half
    if noise is not None:
        n_first, n_last = _support(noise.grad)
        left = max(left, -(-(half * hop - n_first) // hop))
        right = max(right, -(-(n_last - (half + 1) * hop + 1) // hop))
    return left, right, frames


def receptive_field(module: nn.Module, n_mels: int, hop: int, speaker: int | None = None) -> ReceptiveField:
    """The measured receptive field of ``module`` (a vocoder ``(B, n_mels, F) -> (B, 1, F * hop)``);
    see the module doc."""
    half = _PROBE_FRAMES
    while True:
        left, right, frames = _probe(module, n_mels, hop, half, speaker)
        if max(left, right) < half - MARGIN_FRAMES:
            return ReceptiveField(left, right)
        if half > 4096:
            raise ValueError(f"receptive field wider than {half} frames: this generator cannot be streamed")
        half *= 2


def plan_blocks(frames: int, field: ReceptiveField, first: int, size: int, min_frames: int = 1) -> list[Block]:
    """The blocks of a ``frames``-frame mel: one of ``first`` frames, then ``size`` each; each
    computed over at least ``min_frames`` frames (the generator's fewest) when the mel has them."""
    blocks, start = [], 0
    while start < frames:
        stop = min(frames, start + (first if start == 0 else size))
        lo = max(0, start - field.left - MARGIN_FRAMES)
        hi = min(frames, stop + field.right + MARGIN_FRAMES)
        if hi - lo < min_frames:  # more context never changes the kept samples
            lo = max(0, hi - min_frames)
            hi = min(frames, lo + min_frames)
        blocks.append(Block(start, stop, lo, hi))
        start = stop
    return blocks


BlockRunner = Callable[[np.ndarray, int, int], np.ndarray]  # (mel[:, lo:hi], lo, hi) -> samples of [lo, hi)


def stream_blocks(mel: np.ndarray, hop: int, blocks: list[Block], run: BlockRunner) -> Iterator[np.ndarray]:
    """Samples of each block of ``mel`` ``(n_mels, frames)``, in order; their concatenation is the
    whole utterance's output (``frames * hop`` samples)."""
    for block in blocks:
        out = np.asarray(run(mel[:, block.lo:block.hi], block.lo, block.hi), dtype=np.float32).reshape(-1)
        expected = (block.hi - block.lo) * hop
        if out.shape[0] != expected:
            raise ValueError(f"the generator gave {out.shape[0]} samples for {block.hi - block.lo} frames, not "
                             f"{expected}: it cannot be streamed")
        yield out[(block.start - block.lo) * hop:(block.stop - block.lo) * hop]


def module_runner(module: nn.Module, hop: int, frames: int, speaker: int | None = None,
                  seed: int = 0) -> BlockRunner:
    """A :data:`BlockRunner` calling ``module`` directly (torch); a noise-drawing generator gets its
    slice of one seeded noise signal of the whole utterance."""
    kwargs: dict = {} if speaker is None else {"speaker": torch.tensor([speaker])}
    noise = None
    if draws_noise(module):
        noise = torch.randn(1, 1, frames * hop, generator=torch.Generator().manual_seed(seed))

    def run(block: np.ndarray, lo: int, hi: int) -> np.ndarray:
        extra = kwargs if noise is None else {**kwargs, "noise": noise[..., lo * hop:hi * hop]}
        with torch.inference_mode():
            return module(torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))[None], **extra).numpy()

    return run


def core_runner(core: object, frames: int, speaker: int | None, backend: str, seed: int = 0) -> BlockRunner:
    """A :data:`BlockRunner` on a served :class:`~ganpipe.serving.cores.VocoderCore` (its own
    normalisation and backend); a noise-drawing generator runs its torch module on seeded noise."""
    if draws_noise(core.module):  # type: ignore[attr-defined]
        direct = module_runner(core.module, core.hop, frames, speaker, seed)  # type: ignore[attr-defined]

        def run_noise(block: np.ndarray, lo: int, hi: int) -> np.ndarray:
            normalised = (block - core.mean.numpy()) / core.std.numpy() if core.normalize else block  # type: ignore
            return direct(normalised, lo, hi)

        return run_noise

    def run(block: np.ndarray, lo: int, hi: int) -> np.ndarray:
        return core.generate(torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))[None],  # type: ignore
                             speaker, backend)

    return run
