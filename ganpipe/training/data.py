"""Training examples from the prepared corpus and its features.

* :class:`VocoderSegments`: random aligned (mel segment, waveform segment) pairs. A segment of
  ``S`` samples (a multiple of hop) starting at frame ``f`` is audio ``[f*hop, f*hop + S)`` and mel
  frames ``[f, f + S/hop)`` (the framing rule of ganpipe.mel). Utterances shorter than a segment
  are zero-padded (audio) and edge-padded (mel).
* :class:`WaveClips`: fixed-length clips at the model's sample rate (WaveGAN, SpecGAN).
* :class:`MelFrames`: single normalised mel frames (the mel MLP GAN).

Randomness comes from ``torch`` inside ``__getitem__``, which the DataLoader seeds per worker.

A :class:`VocoderSegments` item is two plain reads: the byte offsets of a mel file's values and of
a WAV file's samples are parsed once per file (per process: every DataLoader worker has its own
copy of the dataset), then an item reads the mel array (~180 kB) and just its segment of the WAV
(``benchmarks/bench_dataloader.py``: ~110 µs an item on the 2-core VM instead of ~490 µs with
``np.load(mmap_mode='r')`` + ``sf.info`` + ``sf.read``; the same values). Anything but a C-order
float32 ``.npy`` or a mono PCM-16/float32 WAV is read the general way.
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
from ganpipe.manifest import MANIFEST_FILE, read_manifest


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
    manifest = read_manifest(prepared_dir / MANIFEST_FILE, required=("utt_id", "speaker", "path", "split"))
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


_NPY_F32 = np.dtype("<f4")
_WAV_DTYPES = {"PCM_16": np.dtype("<i2"), "FLOAT": np.dtype("<f4")}


def npy_layout(path: str) -> tuple[int, tuple[int, int]] | None:
    """``(byte offset of the values, shape)`` of a 2-D C-order little-endian float32 ``.npy``
    (what the features stage writes); None for anything else."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            return None
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read_header(f)
        if len(shape) != 2 or fortran or dtype != _NPY_F32:
            return None
        return f.tell(), (int(shape[0]), int(shape[1]))


def wav_layout(path: str) -> tuple[int, int, np.dtype] | None:
    """``(byte offset of the samples, frames, sample dtype)`` of a mono PCM-16 or float32 RIFF WAV
    (what the prepare stage writes); None for anything else."""
    info = sf.info(path)
    dtype = _WAV_DTYPES.get(info.subtype)
    if info.format != "WAV" or info.channels != 1 or dtype is None:
        return None
    with open(path, "rb") as f:
        head = f.read(12)
        if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return None
        while len(chunk := f.read(8)) == 8:
            size = int.from_bytes(chunk[4:], "little")
            if chunk[:4] == b"data":
                # a streamed write may leave the size unset: then trust nothing, use soundfile
                return (f.tell(), info.frames, dtype) if size == info.frames * dtype.itemsize else None
            f.seek(size + (size & 1), 1)
    return None


def _read_exact(path: str, offset: int, nbytes: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        data = f.read(nbytes)
    if len(data) != nbytes:
        raise ValueError(f"{path}: truncated (wanted {nbytes} bytes at offset {offset}, got {len(data)})")
    return data


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
        # per distinct file pair, parsed on first use (-1: not yet): byte offset of the mel values
        # (0: read with np.load) and the mel shape; of the WAV samples (0: read with soundfile),
        # their number and whether they are int16 (arrays: small for any corpus size)
        first: dict[tuple[str, str], int] = {}
        self._slot = np.array([first.setdefault(pair, k) for k, pair in enumerate(zip(corpus.wavs, corpus.mels))],
                              np.int64)
        n = len(corpus)
        self._mel_at, self._mel_shape = np.full(n, -1, np.int64), np.zeros((n, 2), np.int64)
        self._wav_at, self._wav_samples = np.full(n, -1, np.int64), np.zeros(n, np.int64)
        self._wav_int16 = np.zeros(n, bool)

    def __len__(self) -> int:
        return len(self.corpus)

    def normalise(self, mel: np.ndarray) -> np.ndarray:
        return mel if self.mean is None else (mel - self.mean) / self.std

    def _mel_fast(self, i: int) -> bool:
        """Whether item ``i``'s mel is read directly; ``i`` is the item's slot (see __init__)."""
        if self._mel_at[i] < 0:
            layout = npy_layout(self.corpus.mels[i])
            self._mel_at[i] = layout[0] if layout else 0
            if layout:
                self._mel_shape[i] = layout[1]
        return bool(self._mel_at[i] > 0)

    def _mel_columns(self, i: int, start: int) -> np.ndarray:
        """Frames ``[start, start + self.frames)`` (fewer at the end) of mel ``i``, read directly."""
        n_mels, n = int(self._mel_shape[i, 0]), int(self._mel_shape[i, 1])
        # C order: the wanted columns of the n_mels rows span nearly the whole array, so one read
        # of all of it (~180 kB for 7 s of audio) is cheaper than a read per row
        values = np.frombuffer(_read_exact(self.corpus.mels[i], int(self._mel_at[i]), 4 * n_mels * n), _NPY_F32)
        return values.reshape(n_mels, n)[:, start:start + self.frames].astype(np.float32)  # writable, native order

    def _wav_segment(self, i: int, a0: int) -> np.ndarray:
        path = self.corpus.wavs[i]
        if self._wav_at[i] < 0:
            layout = wav_layout(path)
            self._wav_at[i] = layout[0] if layout else 0
            if layout:
                self._wav_samples[i], self._wav_int16[i] = layout[1], layout[2] == _WAV_DTYPES["PCM_16"]
        if self._wav_at[i] == 0:  # soundfile clips the stop to the file's end
            return sf.read(path, start=a0, stop=a0 + self.segment, dtype="float32", always_2d=False)[0]
        n = max(0, min(a0 + self.segment, int(self._wav_samples[i])) - a0)
        if self._wav_int16[i]:  # libsndfile's float conversion divides by 32768 too: the same values
            x = np.frombuffer(_read_exact(path, int(self._wav_at[i]) + 2 * a0, 2 * n), _WAV_DTYPES["PCM_16"])
            return x.astype(np.float32) * np.float32(1 / 32768)
        x = np.frombuffer(_read_exact(path, int(self._wav_at[i]) + 4 * a0, 4 * n), _WAV_DTYPES["FLOAT"])
        return x.astype(np.float32)  # a writable, native-order copy

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        c = self.corpus
        slot = int(self._slot[i])
        if self._mel_fast(slot):
            n = int(self._mel_shape[slot, 1])
            start = int(torch.randint(0, max(n - self.frames, 0) + 1, ()).item())
            m = self._mel_columns(slot, start)
        else:
            mel = np.load(c.mels[i], mmap_mode="r")
            start = int(torch.randint(0, max(mel.shape[1] - self.frames, 0) + 1, ()).item())
            m = np.array(mel[:, start:start + self.frames], dtype=np.float32)  # a writable copy
        wav = self._wav_segment(slot, start * self.hop)
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
