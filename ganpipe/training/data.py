"""Training examples from the prepared corpus and its features.

* :class:`VocoderSegments`: random aligned (mel segment, waveform segment) pairs. A segment of
  ``S`` samples (a multiple of hop) starting at frame ``f`` is audio ``[f*hop, f*hop + S)`` and mel
  frames ``[f, f + S/hop)`` (the framing rule of ganpipe.mel). Utterances shorter than a segment
  are zero-padded (audio) and edge-padded (mel).
* :class:`WaveClips`: fixed-length clips at the model's sample rate (WaveGAN, SpecGAN).
* :class:`MelFrames`: single normalised mel frames (the mel MLP GAN).

Randomness comes from ``torch`` inside ``__getitem__``, which the DataLoader seeds per worker.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import torch
from torch.utils.data import Dataset

from ganpipe.audio import resample


@dataclass(frozen=True)
class Corpus:
    """The rows of one split: wav/mel paths, frame counts, integer labels (speaker/class)."""

    utt_ids: list[str]
    wavs: list[str]
    mels: list[str]
    frames: list[int]
    labels: list[int]
    label_names: list[str]  # index -> speaker/class name (over the whole corpus)

    def __len__(self) -> int:
        return len(self.utt_ids)


def load_corpus(prepared_dir: str | Path, features_dir: str | Path, split: str) -> Corpus:
    prepared_dir, features_dir = Path(prepared_dir), Path(features_dir)
    manifest = pd.read_csv(prepared_dir / "manifest.csv", keep_default_na=False,
                           dtype={"utt_id": str, "speaker": str, "split": str})
    index = pd.read_csv(features_dir / "index.csv", keep_default_na=False,
                        dtype={"utt_id": str, "speaker": str, "split": str})
    names = sorted(manifest["speaker"].unique())
    label_of = {n: i for i, n in enumerate(names)}
    df = manifest.merge(index[["utt_id", "frames", "mel"]], on="utt_id", how="inner", validate="one_to_one")
    if len(df) != len(manifest):
        raise ValueError(f"{features_dir}/index.csv does not cover {prepared_dir}/manifest.csv: "
                         "re-run the features stage")
    df = df[df["split"] == split]
    return Corpus(utt_ids=list(df["utt_id"]), wavs=[str(prepared_dir / p) for p in df["path"]],
                  mels=[str(features_dir / p) for p in df["mel"]], frames=[int(f) for f in df["frames"]],
                  labels=[label_of[s] for s in df["speaker"]], label_names=names)


def _read(path: str) -> np.ndarray:
    wav, _ = sf.read(path, dtype="float32", always_2d=False)
    return wav


class VocoderSegments(Dataset):
    def __init__(self, corpus: Corpus, segment_samples: int, hop_length: int,
                 mel_mean: np.ndarray | None = None, mel_std: np.ndarray | None = None):
        if segment_samples % hop_length:
            raise ValueError(f"train.segment_samples ({segment_samples}) must be a multiple of the hop "
                             f"length ({hop_length})")
        if len(corpus) == 0:
            raise ValueError("no utterances in the training split")
        self.corpus, self.segment, self.hop = corpus, segment_samples, hop_length
        self.frames = segment_samples // hop_length
        self.mean = None if mel_mean is None else mel_mean.reshape(-1, 1).astype(np.float32)
        self.std = None if mel_std is None else np.maximum(mel_std, 1e-5).reshape(-1, 1).astype(np.float32)

    def __len__(self) -> int:
        return len(self.corpus)

    def normalise(self, mel: np.ndarray) -> np.ndarray:
        return mel if self.mean is None else (mel - self.mean) / self.std

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        c = self.corpus
        mel = np.load(c.mels[i], mmap_mode="r")
        n = mel.shape[1]
        start = int(torch.randint(0, max(n - self.frames, 0) + 1, ()).item())
        m = np.array(mel[:, start:start + self.frames], dtype=np.float32)  # a writable copy
        info = sf.info(c.wavs[i])
        a0 = start * self.hop
        wav, _ = sf.read(c.wavs[i], start=a0, stop=min(a0 + self.segment, info.frames), dtype="float32")
        if m.shape[1] < self.frames:
            m = np.pad(m, ((0, 0), (0, self.frames - m.shape[1])), mode="edge")
        if len(wav) < self.segment:
            wav = np.pad(wav, (0, self.segment - len(wav)))
        return {"mel": torch.from_numpy(self.normalise(m)), "wav": torch.from_numpy(wav).unsqueeze(0),
                "label": torch.tensor(c.labels[i])}


class WaveClips(Dataset):
    """Clips of ``length`` samples at ``sample_rate`` (resampled from the corpus rate on load)."""

    def __init__(self, corpus: Corpus, length: int, sample_rate: int, corpus_rate: int):
        if len(corpus) == 0:
            raise ValueError("no utterances in the training split")
        self.corpus, self.length, self.sr, self.corpus_sr = corpus, length, sample_rate, corpus_rate

    def __len__(self) -> int:
        return len(self.corpus)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        wav = resample(_read(self.corpus.wavs[i]), self.corpus_sr, self.sr)
        if len(wav) > self.length:
            start = int(torch.randint(0, len(wav) - self.length + 1, ()).item())
            wav = wav[start:start + self.length]
        else:
            wav = np.pad(wav, (0, self.length - len(wav)))
        return {"wav": torch.from_numpy(np.ascontiguousarray(wav)).unsqueeze(0),
                "label": torch.tensor(self.corpus.labels[i])}


class MelFrames(Dataset):
    """Single mel frames, mean/variance normalised with the train-split statistics."""

    def __init__(self, corpus: Corpus, mel_mean: np.ndarray, mel_std: np.ndarray):
        frames, labels = [], []
        for path, label in zip(corpus.mels, corpus.labels):
            m = np.load(path)
            frames.append(m.T)
            labels.append(np.full(m.shape[1], label))
        if not frames:
            raise ValueError("no utterances in the training split")
        x = np.concatenate(frames).astype(np.float32)
        self.frames = torch.from_numpy((x - mel_mean) / np.maximum(mel_std, 1e-5))
        self.labels = torch.from_numpy(np.concatenate(labels))

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"mel": self.frames[i], "label": self.labels[i]}
