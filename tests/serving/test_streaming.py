"""Streamed vocoding: the blocks, overlapped by each generator's measured receptive field, stitch to
the whole-utterance output (<= 1e-4), for every vocoder family (tiny configurations, random weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganpipe.serving.streaming import (
    Block,
    ReceptiveField,
    module_runner,
    plan_blocks,
    receptive_field,
    stream_blocks,
)

FAMILIES = ["vocos", "hifigan_v3", "melgan", "multiband_melgan", "parallel_wavegan"]
HOP = 256


def _tiny(variant: str) -> torch.nn.Module:
    from ganpipe.models import TINY_OVERRIDES, build
    from ganpipe.serving.backends import reference_module

    torch.manual_seed(3)
    extra = {"n_mels": 80} if variant.startswith("hifigan") else {}
    return reference_module(build(variant, **TINY_OVERRIDES[variant], **extra).generator, "cpu")


@pytest.mark.parametrize("variant", FAMILIES)
def test_stitched_stream_equals_whole_utterance(variant):
    module = _tiny(variant)
    field = receptive_field(module, 80, HOP)
    print(f"{variant}: receptive field {field.left}/{field.right} frames, overlap {field.overlap}")
    assert 1 <= field.left <= 64 and 1 <= field.right <= 64
    frames = 130
    mel = (np.random.default_rng(1).standard_normal((80, frames)) - 2).astype(np.float32)
    run = module_runner(module, HOP, frames, seed=9)  # Parallel WaveGAN: one seeded noise, sliced per block
    whole = run(mel, 0, frames).reshape(-1)
    for first, size in [(5, 40), (1, 64)]:
        stream = np.concatenate(list(stream_blocks(mel, HOP, plan_blocks(frames, field, first, size), run)))
        assert stream.shape == whole.shape
        assert np.abs(stream - whole).max() <= 1e-4, (variant, first, size)
    # blocks without the overlap do not stitch: the overlap is what makes the equality hold
    bare = [Block(b.start, b.stop, b.start, b.stop) for b in plan_blocks(frames, field, 10, 20)]
    cut = np.concatenate(list(stream_blocks(mel, HOP, bare, run)))
    assert np.abs(cut - whole).max() > 1e-4, variant


def test_block_plan_covers_every_frame_once():
    field = ReceptiveField(10, 12)
    blocks = plan_blocks(1000, field, 16, 256)
    assert [b.start for b in blocks] == [0, 16, 272, 528, 784] and blocks[-1].stop == 1000
    assert all(b.lo == max(0, b.start - 12) and b.hi == min(1000, b.stop + 14) for b in blocks)
    assert plan_blocks(3, field, 16, 256) == [Block(0, 3, 0, 3)]


def test_blocks_keep_the_generators_fewest_frames():
    blocks = plan_blocks(40, ReceptiveField(1, 1), 2, 3, min_frames=9)
    assert all(b.hi - b.lo >= 9 for b in blocks)
    assert [(b.start, b.stop) for b in blocks][:2] == [(0, 2), (2, 5)]
