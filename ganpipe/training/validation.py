"""Validation during training: copy-synthesis of held-out utterances for vocoders (the mel L1 between
the utterance's mel and its resynthesis' mel, ``val_mel_l1``), generated samples for the other
models. Both return ``{"audio": [...], "mels": [...]}`` as :meth:`Tracker.samples` logs them."""

from __future__ import annotations

from typing import Any

import numpy as np
import soundfile as sf
import torch
from torch import nn

from ganpipe.mel import MelConfig
from ganpipe.models import ModelBundle
from ganpipe.training.data import Corpus, VocoderSegments


@torch.no_grad()
def copy_synthesis(generator: nn.Module, corpus: Corpus, dataset: VocoderSegments, mel_fn: nn.Module,
                   mel: MelConfig, device: torch.device, *, conditional: bool, min_frames: int, max_items: int,
                   max_seconds: float) -> dict[str, Any]:
    """The first ``max_items`` utterances of ``corpus`` (at most ``max_seconds`` each, at least
    ``min_frames`` frames) through ``generator`` from their feature mel."""
    out: dict[str, Any] = {"audio": [], "mels": []}
    errors = []
    for i in range(min(max_items, len(corpus))):
        wav = _clip(corpus.wavs[i], mel, min_frames, max_seconds).to(device)
        ref = mel_fn(wav)
        inp = ref if mel.normalize != "meanvar" else torch.from_numpy(
            dataset.normalise(ref.cpu().numpy())).to(device)
        speaker = {"speaker": torch.tensor([corpus.labels[i]], device=device)} if conditional else {}
        generated = generator(inp.unsqueeze(0), **speaker).float()[0, 0, :wav.shape[-1]]
        errors.append(torch.mean(torch.abs(mel_fn(generated) - ref)).item())
        out["audio"].append((corpus.utt_ids[i], generated.cpu().numpy(), wav.cpu().numpy()))
        out["mels"].append((corpus.utt_ids[i], ref.cpu().numpy(), mel_fn(generated).cpu().numpy()))
    out["val_mel_l1"] = float(np.mean(errors)) if errors else float("nan")
    return out


def _clip(path: str, mel: MelConfig, min_frames: int, max_seconds: float) -> torch.Tensor:
    """The file's first ``max_seconds`` in whole hops, zero-padded to at least ``min_frames`` hops."""
    wav, _ = sf.read(path, dtype="float32")
    hop = mel.hop_length
    n = min(len(wav), int(max_seconds * mel.sample_rate)) // hop * hop
    n = max(n, min_frames * hop)
    return torch.from_numpy(np.pad(wav, (0, max(0, n - len(wav))))[:n])


@torch.no_grad()
def generated_samples(generator: nn.Module, bundle: ModelBundle, n: int, n_labels: int, conditional: bool,
                      device: torch.device) -> dict[str, Any]:
    """``n`` samples of a latent model (label ``j % n_labels`` for sample ``j``), as audio where it
    makes audio."""
    out: dict[str, Any] = {"audio": [], "mels": []}
    z = bundle.generator.sample_latent(n, device=device)
    labels = torch.arange(n, device=device) % max(1, n_labels)
    fake = generator(z, labels=labels) if conditional else generator(z)
    if bundle.description.makes_audio:
        fake = bundle.description.to_audio(bundle.generator, fake)
    if fake.dim() == 3:
        for j in range(n):
            out["audio"].append((f"sample_{j}", fake[j, 0].float().cpu().numpy(), None))
    return out
