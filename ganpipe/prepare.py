"""The prepare stage: raw corpus files -> clean, resampled, normalised WAVs + manifest + split.

Per file (:func:`prepare_file`), in this order:

1. read with :func:`ganpipe.audio.read_audio` and mix down to mono (channel mean);
2. skip (raise :class:`SkipFile`) when the file is missing, empty, unreadable/corrupt, has
   non-finite samples (NaN/inf), or is silent (peak below ``audio.silence_threshold_db`` dBFS);
3. optionally trim leading/trailing silence (``trim_silence``): frame RMS (25 ms frames, 10 ms
   hop) compared with the loudest frame; frames more than ``trim_top_db`` below it at either end
   are cut, keeping a margin of ``audio.trim_margin_seconds``;
4. skip when the (trimmed) audio is shorter than ``min_seconds`` or longer than ``max_seconds``;
5. resample to ``audio.sample_rate`` (:func:`ganpipe.audio.resample`, soxr VHQ);
6. normalise: ``peak`` scales the peak to ``peak_db`` dBFS; ``loudness`` scales the ITU-R
   BS.1770-4 integrated loudness (pyloudnorm) to ``loudness_lufs`` and then, if that pushes the
   peak above ``peak_db``, lowers the gain so the peak sits at ``peak_db`` (no clipping; the file is
   then quieter than the target and counted as ``loudness_limited`` in the summary);
7. write a 16-bit PCM or 32-bit float WAV: on its own, atomically (:func:`prepare_file`); in a
   corpus run, as a *new* file (``O_EXCL``, encoded in memory, one write, no fsync) in the staging
   folder ``.wavs.partial/`` that :func:`write_outputs` renames to ``wavs/`` as a whole before it
   writes the manifest. A file is never rewritten in place, so a DVC cache that hardlinks the
   outputs of an earlier run is never written through.

:func:`prepare_corpus` runs that over a corpus in a pool of processes (threads would hold the GIL
for about a third of the per-file work), then :func:`write_outputs` publishes the wavs, assigns the
splits (:mod:`ganpipe.split`) and writes, each atomically, under ``out_dir``:

* ``wavs/<speaker>/<utt_id>.wav``
* ``manifest.csv``: utt_id, speaker, path (relative to out_dir), duration, sample_rate,
  num_samples, split, source_path, text -- one row per prepared file, sorted by utt_id
  (read it back with :func:`ganpipe.manifest.read_manifest`);
* ``skipped.csv``: source_path, utt_id, reason (a code from :data:`SKIP_REASONS`), detail (the
  precise message) -- always written, a header only when nothing was skipped;
* ``summary.json``: counts and hours per split and per speaker, skipped files per reason, and the
  settings used.

Long audio (``audio.clips``; on by default for corpora of long pieces, i.e. music: see
:func:`clips_enabled`): instead of steps 3-4 and one output per source, the resampled source is cut
into clips of at most ``audio.clips.seconds`` at quiet moments, skipping silences
(:func:`clip_bounds`, :func:`prepare_clips`); each clip is an utterance ``<utt_id>__c<NNNN>`` of
its own, normalised on its own, and all clips of a source get the source's split. Training then
reads one clip per item, never a whole piece. The speech corpora are prepared exactly as before.

A bad input file never stops the stage and is never dropped silently: it is listed in
``skipped.csv``. Anything else that goes wrong (a bug, a full disk) raises :class:`PrepareError`
naming the file. If every file is skipped, :class:`PrepareError` is raised after ``skipped.csv``
is written.
"""

from __future__ import annotations

import io
import math
import multiprocessing
import os
import shutil
import threading
from collections import Counter, defaultdict
from collections.abc import Mapping
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm import tqdm

from ganpipe.atomic import atomic_path, write_json
from ganpipe.audio import AudioError, read_audio, resample, write_audio
from ganpipe.config import AudioParams, SplitParams
from ganpipe.datasets.types import SourceUtterance
from ganpipe.manifest import MANIFEST_COLUMNS, MANIFEST_FILE
from ganpipe.manifest import read_manifest as read_manifest  # re-exported: ganpipe.promotion reads it here
from ganpipe.split import SPLITS, assign_splits

TRIM_MARGIN_SECONDS = 0.05
TRIM_FRAME_SECONDS = 0.025
TRIM_HOP_SECONDS = 0.010
CLIP_MAX_GAP_SECONDS = 1.0  # a clip ends where a silence this long begins
LOUDNESS_BLOCK_SECONDS = 0.4  # BS.1770 gating block: the shortest audio whose loudness is defined

SKIP_REASONS = ("missing", "empty", "unreadable", "non_finite", "silent", "too_short", "too_long")
SKIPPED_COLUMNS = ["source_path", "utt_id", "reason", "detail"]
SKIPPED_FILE = "skipped.csv"
SUMMARY_FILE = "summary.json"
WAVS_DIR = "wavs"
# Corpus runs write here; write_outputs() renames it to WAVS_DIR, so wavs/ is never half-written.
STAGING_DIR = ".wavs.partial"
_WAV_SUBTYPES = {"pcm16": "PCM_16", "float": "FLOAT"}


class SkipFile(Exception):
    """A source file that cannot be used; ``reason`` is a code from :data:`SKIP_REASONS`."""

    def __init__(self, reason: str, detail: str):
        if reason not in SKIP_REASONS:
            raise ValueError(f"unknown skip reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[type[SkipFile], tuple[str, str]]:  # picklable across processes
        return (SkipFile, (self.reason, self.detail))


class PrepareError(RuntimeError):
    """The prepare stage as a whole cannot go on (message names the file or the cause)."""


@dataclass(frozen=True)
class PreparedInfo:
    """One written file. ``path`` is the output path as given to :func:`prepare_file`."""

    utt_id: str
    speaker: str
    path: str
    duration: float
    sample_rate: int
    num_samples: int
    source_path: str
    text: str
    source_sample_rate: int
    source_channels: int
    source_seconds: float
    trimmed_seconds: float  # audio removed by silence trimming (source time)
    gain_db: float  # normalisation gain applied (0 when normalize is 'none')
    peak_dbfs: float  # peak of the written audio
    loudness_limited: bool  # loudness mode: gain lowered to keep the peak at peak_db
    piece: str = ""  # clips of a long source: the source's utt_id (its clips share a split)


@dataclass(frozen=True)
class SkippedFile:
    utt_id: str
    speaker: str
    source_path: str
    reason: str
    detail: str


@dataclass(frozen=True)
class PrepareResult:
    out_dir: Path
    manifest: pd.DataFrame  # MANIFEST_COLUMNS
    skipped: pd.DataFrame  # SKIPPED_COLUMNS
    summary: dict[str, Any]
    prepared: list[PreparedInfo]  # sorted by utt_id, in manifest order

    @property
    def manifest_path(self) -> Path:
        return self.out_dir / MANIFEST_FILE

    @property
    def skipped_path(self) -> Path:
        return self.out_dir / SKIPPED_FILE

    @property
    def summary_path(self) -> Path:
        return self.out_dir / SUMMARY_FILE


# --------------------------------------------------------------------------------------------
# one file
# --------------------------------------------------------------------------------------------
def _db(x: float) -> float:
    return float(20.0 * np.log10(x)) if x > 0 else float("-inf")


def _frame_samples(sample_rate: int) -> int:
    return max(1, int(round(TRIM_FRAME_SECONDS * sample_rate)))


def _frame_power(wav: np.ndarray, sample_rate: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(starts, ends, mean power)`` of 25 ms frames every 10 ms (the last frame may be shorter)."""
    n = wav.size
    frame = _frame_samples(sample_rate)
    hop = max(1, int(round(TRIM_HOP_SECONDS * sample_rate)))
    starts = np.arange(0, n - frame + hop, hop)
    ends = np.minimum(starts + frame, n)
    csum = np.concatenate([[0.0], np.cumsum(wav.astype(np.float64) ** 2)])
    return starts, ends, (csum[ends] - csum[starts]) / (ends - starts)


def _loud_frames(wav: np.ndarray, sample_rate: int,
                 top_db: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_frame_power`'s ``(starts, ends, power)`` and which frames sound: those at most
    ``top_db`` below the loudest (the rest are silent, for trimming and for cutting clips alike)."""
    starts, ends, power = _frame_power(wav, sample_rate)
    return starts, ends, power, power > power.max() * 10.0 ** (-top_db / 10.0)


def trim_bounds(wav: np.ndarray, sample_rate: int, top_db: float,
                margin_seconds: float = TRIM_MARGIN_SECONDS) -> tuple[int, int]:
    """``(start, end)`` of ``wav`` without leading/trailing frames more than ``top_db`` below the
    loudest frame (frame RMS, 25 ms frames every 10 ms), widened by ``margin_seconds`` each side."""
    n = wav.size
    frame = _frame_samples(sample_rate)
    if n <= frame:
        return 0, n
    starts, ends, power, loud = _loud_frames(wav, sample_rate, top_db)
    idx = np.flatnonzero(loud)
    if idx.size == 0:
        return 0, n
    margin = int(round(margin_seconds * sample_rate))
    return max(0, int(starts[idx[0]]) - margin), min(n, int(ends[idx[-1]]) + margin)


def clip_bounds(wav: np.ndarray, sample_rate: int, clip_seconds: float, top_db: float,
                min_seconds: float, margin_seconds: float = TRIM_MARGIN_SECONDS,
                max_gap_seconds: float = CLIP_MAX_GAP_SECONDS) -> list[tuple[int, int]]:
    """Cut a long recording into clips of at most ``clip_seconds``, ``[start, end)`` in samples.

    Silence-aware: "silent" frames are those more than ``top_db`` below the loudest frame of the
    whole recording (frame RMS, as :func:`trim_bounds`). A clip starts at the next sounding frame
    (less ``margin_seconds``), so silences are never the start of a clip; it ends at the quietest
    frame of its last quarter (between notes or phrases rather than inside one), or earlier where a
    silence of ``max_gap_seconds`` or more begins (plus the margin), or at the last sounding frame of
    the recording (plus the margin). Clips shorter than ``min_seconds`` are dropped.
    """
    n = wav.size
    frame = _frame_samples(sample_rate)
    if n <= frame:
        return [(0, n)] if n >= min_seconds * sample_rate else []
    starts, ends, power, loud = _loud_frames(wav, sample_rate, top_db)
    loud_idx = np.flatnonzero(loud)
    if loud_idx.size == 0:
        return []
    hop = int(starts[1] - starts[0]) if starts.size > 1 else frame
    margin = int(round(margin_seconds * sample_rate))
    length = max(1, int(round(clip_seconds * sample_rate)))
    gap_starts = _silence_starts(~loud, max(1, int(round(max_gap_seconds * sample_rate / hop))))
    stop = min(int(ends[loud_idx[-1]]) + margin, n)  # the last sounding frame's end, plus the margin
    sound_starts = starts[loud_idx]
    clips: list[tuple[int, int]] = []
    pos = 0  # samples before pos are used or skipped
    while (k := int(np.searchsorted(sound_starts, pos))) < loud_idx.size:
        start = max(pos, int(sound_starts[k]) - margin)
        end = _clip_end(start, min(start + length, stop), start + length, frame, starts, power, gap_starts, margin)
        end = max(end, start + 1)
        if end - start >= min_seconds * sample_rate:
            clips.append((start, end))
        pos = end
    return clips


def _silence_starts(quiet: np.ndarray, gap: int) -> np.ndarray:
    """The first frame index of every run of at least ``gap`` ``quiet`` frames."""
    edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet.astype(np.int8), [0]])))
    return np.array([a for a, b in zip(edges[::2], edges[1::2]) if b - a >= gap], dtype=np.int64)


def _clip_end(start: int, end: int, limit: int, frame: int, starts: np.ndarray, power: np.ndarray,
              gap_starts: np.ndarray, margin: int) -> int:
    """Where the clip from ``start`` ends, at the latest ``end``: where the next long silence begins
    (plus the margin) if that is earlier, else, when ``end`` is the full length (``limit``), at the
    quietest frame of the clip's last quarter."""
    first_frame = int(np.searchsorted(starts, start))
    later_gaps = gap_starts[gap_starts > first_frame]
    if later_gaps.size and int(starts[later_gaps[0]]) + margin < end:
        return int(starts[later_gaps[0]]) + margin
    if end == limit:  # cut at the quietest frame of the last quarter
        length = limit - start
        lo = int(np.searchsorted(starts, start + (3 * length) // 4))
        hi = int(np.searchsorted(starts, limit - frame, side="right"))
        if hi > lo:
            return int(starts[lo + int(np.argmin(power[lo:hi]))]) + frame // 2
    return end


def _integrated_loudness(wav: np.ndarray, sample_rate: int) -> float:
    import pyloudnorm  # local import: only the loudness mode needs it

    meter = pyloudnorm.Meter(sample_rate)  # one meter per call: Meter keeps per-call state
    return float(meter.integrated_loudness(wav.astype(np.float64)))


def _normalise(wav: np.ndarray, sample_rate: int, audio: AudioParams) -> tuple[np.ndarray, float, bool]:
    """Return ``(audio, gain_db, limited)``."""
    if audio.normalize == "none":
        return wav, 0.0, False
    peak = float(np.max(np.abs(wav)))
    ceiling = 10.0 ** (audio.peak_db / 20.0)
    if audio.normalize == "peak":
        gain = ceiling / peak
        return (wav * gain).astype(np.float32), _db(gain), False
    if wav.size < LOUDNESS_BLOCK_SECONDS * sample_rate:
        raise SkipFile("too_short", f"{wav.size / sample_rate:.3f} s: loudness normalisation needs at "
                                    f"least {LOUDNESS_BLOCK_SECONDS} s (one BS.1770 gating block)")
    lufs = _integrated_loudness(wav, sample_rate)
    if not np.isfinite(lufs):
        raise SkipFile("silent", "integrated loudness is below the -70 LUFS absolute gate")
    gain = 10.0 ** ((audio.loudness_lufs - lufs) / 20.0)
    limited = peak * gain > ceiling
    if limited:
        gain = ceiling / peak
    return (wav * gain).astype(np.float32), _db(gain), bool(limited)


def write_new_wav(path: Path, wav: np.ndarray, sample_rate: int, fmt: str) -> None:
    """Write a WAV as a *new* file (``O_EXCL``: fails if ``path`` exists, so an existing file,
    which may be hardlinked into the DVC cache, is never written through). The WAV is encoded in
    memory (the same bytes libsndfile writes to a file) and written with one call, without the
    temporary file, rename and fsync of an atomic write: corpus runs write into a staging folder
    that is published as a whole (:func:`write_outputs`)."""
    data = np.clip(wav, -1.0, 1.0) if fmt == "pcm16" else wav
    buf = io.BytesIO()
    sf.write(buf, data, sample_rate, subtype=_WAV_SUBTYPES[fmt], format="WAV")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags, 0o644)
    except FileNotFoundError:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, flags, 0o644)
    try:
        view = buf.getbuffer()
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _read_source(utt: SourceUtterance, audio: AudioParams) -> tuple[np.ndarray, int, int, int]:
    """Steps 1-2 of the module doc: ``(mono float32 samples, sample rate, frames, channels)``, or
    :class:`SkipFile`."""
    src = Path(utt.path)
    try:
        size = src.stat().st_size
    except FileNotFoundError:
        raise SkipFile("missing", "file not found") from None
    except OSError as exc:
        raise SkipFile("unreadable", f"cannot stat file ({exc.strerror or exc})") from None
    if size == 0:
        raise SkipFile("empty", "file is empty (0 bytes)")
    try:
        data, sr_in = read_audio(src, mono=False)
    except AudioError as exc:
        raise SkipFile("unreadable", exc.reason) from None
    n_frames, channels = data.shape
    if n_frames == 0:
        raise SkipFile("empty", "no audio samples")
    bad = int(np.count_nonzero(~np.isfinite(data)))
    if bad:
        raise SkipFile("non_finite", f"{bad} non-finite (NaN/inf) sample(s)")
    wav = data.mean(axis=1, dtype=np.float64).astype(np.float32) if channels > 1 else data[:, 0]
    peak_in = _db(float(np.max(np.abs(wav))))
    if peak_in < audio.silence_threshold_db:
        raise SkipFile("silent", f"peak {peak_in:.1f} dBFS is below silence_threshold_db "
                                 f"{audio.silence_threshold_db:g} dBFS")
    return wav, int(sr_in), int(n_frames), int(channels)


def prepare_file(utt: SourceUtterance, out_path: Path, audio: AudioParams,
                 write_to: Path | None = None) -> PreparedInfo:
    """Prepare one source file and write it to ``out_path`` (atomically), or, with ``write_to``,
    as a new file at ``write_to`` (:func:`write_new_wav`; ``out_path`` is then where it will be
    published and what the result records).

    Raises :class:`SkipFile` when the input cannot be used; nothing is written then.
    """
    wav, sr_in, n_frames, channels = _read_source(utt, audio)
    source_seconds = n_frames / sr_in
    trimmed = 0
    if audio.trim_silence:
        start, end = trim_bounds(wav, sr_in, audio.trim_top_db, audio.trim_margin_seconds)
        trimmed = n_frames - (end - start)
        wav = wav[start:end]
    seconds = wav.size / sr_in
    what = " after trimming" if trimmed else ""
    if seconds < audio.min_seconds:
        raise SkipFile("too_short", f"{seconds:.3f} s{what} < min_seconds {audio.min_seconds:g} s")
    if seconds > audio.max_seconds:
        raise SkipFile("too_long", f"{seconds:.3f} s{what} > max_seconds {audio.max_seconds:g} s")
    wav = resample(np.ascontiguousarray(wav), sr_in, audio.sample_rate, quality=audio.resample_quality)
    wav, gain_db, limited = _normalise(wav, audio.sample_rate, audio)
    if write_to is None:
        write_audio(out_path, wav, audio.sample_rate, fmt=audio.output_format)
    else:
        write_new_wav(write_to, wav, audio.sample_rate, audio.output_format)
    written = np.clip(wav, -1.0, 1.0) if audio.output_format == "pcm16" else wav
    return PreparedInfo(
        utt_id=utt.utt_id, speaker=utt.speaker, path=str(out_path),
        duration=wav.size / audio.sample_rate, sample_rate=audio.sample_rate, num_samples=int(wav.size),
        source_path=str(utt.path), text=utt.text, source_sample_rate=int(sr_in),
        source_channels=int(channels), source_seconds=source_seconds, trimmed_seconds=trimmed / sr_in,
        gain_db=gain_db, peak_dbfs=_db(float(np.max(np.abs(written)))), loudness_limited=limited)


def clip_id(utt_id: str, index: int) -> str:
    """The utt_id of clip ``index`` of a long source (``<utt_id>__c<NNNN>``)."""
    return f"{utt_id}__c{index:04d}"


def prepare_clips(utt: SourceUtterance, out_dir: Path, audio: AudioParams, staged: bool = True
                  ) -> list[PreparedInfo]:
    """Cut one long source (music) into clips (:func:`clip_bounds`, ``audio.clips.seconds``) and
    write each as its own utterance ``<utt_id>__c<NNNN>`` of the same speaker, so a training item
    never reads a whole piece. The source is resampled first, then cut; each clip is normalised on
    its own. ``audio.max_seconds`` does not apply (that is what the cutting is for); clips shorter
    than ``audio.min_seconds`` (a short tail) are dropped. Every clip records the source seconds
    left out just before it (silence, dropped tails) as ``trimmed_seconds``, the last one also what
    follows it. Written into the staging folder (``staged``) or atomically at their output paths.

    Raises :class:`SkipFile` when the source cannot be used or no clip remains.
    """
    wav, sr_in, n_frames, channels = _read_source(utt, audio)
    sr = audio.sample_rate
    wav = resample(np.ascontiguousarray(wav), sr_in, sr, quality=audio.resample_quality)
    bounds = clip_bounds(wav, sr, audio.clips.seconds, audio.trim_top_db, audio.min_seconds,
                         audio.trim_margin_seconds)
    infos: list[PreparedInfo] = []
    pos = 0
    for k, (a, b) in enumerate(bounds):
        clip = wav[a:b]
        try:
            clip, gain_db, limited = _normalise(clip, sr, audio)
        except SkipFile:
            continue  # e.g. a clip below the loudness gate: left out like silence
        cu = SourceUtterance(clip_id(utt.utt_id, k), utt.speaker, utt.path, utt.text)
        out_path = output_path(out_dir, cu)
        if staged:
            write_new_wav(staging_path(out_dir, cu), clip, sr, audio.output_format)
        else:
            write_audio(out_path, clip, sr, fmt=audio.output_format)
        written = np.clip(clip, -1.0, 1.0) if audio.output_format == "pcm16" else clip
        infos.append(PreparedInfo(
            utt_id=cu.utt_id, speaker=utt.speaker, path=str(out_path), duration=clip.size / sr,
            sample_rate=sr, num_samples=int(clip.size), source_path=str(utt.path), text=utt.text,
            source_sample_rate=sr_in, source_channels=channels, source_seconds=n_frames / sr_in,
            trimmed_seconds=(a - pos) / sr, gain_db=gain_db,
            peak_dbfs=_db(float(np.max(np.abs(written)))), loudness_limited=limited, piece=utt.utt_id))
        pos = b
    if not infos:
        raise SkipFile("too_short", f"no clip of at least min_seconds {audio.min_seconds:g} s with sound "
                                    f"(within trim_top_db {audio.trim_top_db:g} dB of the loudest frame)")
    last = infos[-1]
    infos[-1] = PreparedInfo(**{**last.__dict__, "trimmed_seconds": last.trimmed_seconds + (wav.size - pos) / sr})
    return infos


def clips_enabled(audio: AudioParams, dataset_name: str) -> bool:
    """Whether the prepare stage cuts sources into clips: ``audio.clips.enabled``, where ``auto``
    means: when the dataset is one of long pieces (``DatasetSpec.long_audio``: music)."""
    if audio.clips.enabled != "auto":
        return bool(audio.clips.enabled)
    from ganpipe.datasets.corpora import get_dataset

    return get_dataset(dataset_name).long_audio


def resolve_clips(audio: AudioParams, dataset_name: str) -> AudioParams:
    """``audio`` with ``clips.enabled`` decided for ``dataset_name`` (``auto`` -> true/false)."""
    clips = audio.clips.model_copy(update={"enabled": clips_enabled(audio, dataset_name)})
    return audio.model_copy(update={"clips": clips})


# --------------------------------------------------------------------------------------------
# corpus
# --------------------------------------------------------------------------------------------
def output_path(out_dir: Path, utt: SourceUtterance) -> Path:
    """Where :func:`prepare_corpus` writes ``utt``: ``out_dir/wavs/<speaker>/<utt_id>.wav``."""
    return Path(out_dir) / WAVS_DIR / utt.speaker / f"{utt.utt_id}.wav"


def staging_path(out_dir: Path, utt: SourceUtterance) -> Path:
    """Where a corpus run writes ``utt`` before :func:`write_outputs` publishes it at
    :func:`output_path`."""
    return Path(out_dir) / STAGING_DIR / utt.speaker / f"{utt.utt_id}.wav"


def _check_name(kind: str, value: str, utt: SourceUtterance) -> None:
    if (not value or value in (".", "..") or value.startswith(".") or "/" in value or "\\" in value
            or "\x00" in value):
        raise PrepareError(f"{utt.path}: {kind} {value!r} of utterance '{utt.utt_id}' cannot be "
                           "used as a file name")


def check_corpus(utterances: list[SourceUtterance], split: SplitParams) -> None:
    """Checks to run before any audio is touched: at least one utterance, ids and speakers usable
    as file names, no duplicate ids (:class:`PrepareError`), and a split list file that covers the
    corpus exactly (:class:`ganpipe.split.SplitError`)."""
    if not utterances:
        raise PrepareError("no source utterances to prepare")
    seen: dict[str, str] = {}
    for utt in utterances:
        _check_name("utt_id", utt.utt_id, utt)
        _check_name("speaker", utt.speaker, utt)
        if utt.utt_id in seen:
            raise PrepareError(f"duplicate utterance id '{utt.utt_id}': {seen[utt.utt_id]} and {utt.path}")
        seen[utt.utt_id] = utt.path
    if split.list_file or split.test_list or split.valid_list:
        assign_splits([(u.utt_id, u.speaker) for u in utterances], split)


def clean_outputs(out_dir: Path) -> None:
    """Remove what a previous run left in ``out_dir``: the wavs and staging folders, manifest,
    skipped list, summary and stray temporary files of interrupted atomic writes."""
    out_dir = Path(out_dir)
    for folder in (out_dir / WAVS_DIR, out_dir / STAGING_DIR):
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder)
        elif folder.exists() or folder.is_symlink():
            folder.unlink()
    for name in (MANIFEST_FILE, SKIPPED_FILE, SUMMARY_FILE):
        (out_dir / name).unlink(missing_ok=True)
    if out_dir.is_dir():
        for stray in out_dir.glob(".*.tmp-*"):
            if stray.is_file():
                stray.unlink()


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")


def _summary(prepared: list[PreparedInfo], splits: Mapping[str, str], skipped: list[SkippedFile],
             audio: AudioParams | None) -> dict[str, Any]:
    """Counts and hours overall, per split and per speaker: one pass over ``prepared`` (sums are
    taken in ``prepared`` order, so the numbers do not depend on how the groups are built)."""
    def block(items: list[PreparedInfo]) -> dict[str, Any]:
        seconds = sum(p.duration for p in items)
        return {"utterances": len(items), "seconds": round(seconds, 3), "hours": round(seconds / 3600, 6)}

    by_split: dict[str, list[PreparedInfo]] = {s: [] for s in SPLITS}
    by_speaker: dict[str, list[PreparedInfo]] = defaultdict(list)
    speaker_splits: dict[str, Counter[str]] = defaultdict(Counter)
    for p in prepared:
        split = splits[p.utt_id]
        if split in by_split:
            by_split[split].append(p)
        by_speaker[p.speaker].append(p)
        speaker_splits[p.speaker][split] += 1
    summary: dict[str, Any] = {
        **block(prepared),
        "source_files": len(prepared) + len(skipped),
        "splits": {s: block(by_split[s]) for s in SPLITS},
        "speakers": {spk: {**block(by_speaker[spk]), **{s: speaker_splits[spk][s] for s in SPLITS}}
                     for spk in sorted(by_speaker)},
        "skipped": {"total": len(skipped),
                    "by_reason": dict(sorted(Counter(s.reason for s in skipped).items()))},
        "trimmed_seconds": round(sum(p.trimmed_seconds for p in prepared), 3),
        "loudness_limited": sum(1 for p in prepared if p.loudness_limited),
    }
    clipped = any(p.piece for p in prepared)
    if clipped:
        summary["clips"] = {"pieces": len({p.piece for p in prepared if p.piece}),
                            "clips": sum(1 for p in prepared if p.piece)}
    if audio is not None:
        # the clip settings only where clips were made: a speech corpus' summary is as it was
        summary["audio"] = audio.model_dump(exclude=None if clipped else {"clips"})
    return summary


def write_outputs(out_dir: Path, prepared: list[PreparedInfo], skipped: list[SkippedFile],
                  split: SplitParams, audio: AudioParams | None = None) -> PrepareResult:
    """Publish the staged wavs (``.wavs.partial/`` -> ``wavs/``, one rename), assign splits and
    write ``skipped.csv``, ``manifest.csv`` and ``summary.json`` (atomically).

    ``prepared`` paths must lie under ``out_dir``. Raises :class:`PrepareError` when ``prepared`` is
    empty (``skipped.csv`` is written first).
    """
    out_dir = Path(out_dir)
    _publish_wavs(out_dir)
    skipped = sorted(skipped, key=lambda s: (s.utt_id, s.source_path))
    skipped_df = pd.DataFrame([[s.source_path, s.utt_id, s.reason, s.detail] for s in skipped],
                              columns=SKIPPED_COLUMNS)
    _write_csv(out_dir / SKIPPED_FILE, skipped_df)
    if not prepared:
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(Counter(s.reason for s in skipped).items()))
        raise PrepareError(f"all {len(skipped)} source files were skipped ({reasons or 'no input files'}); "
                           f"see {out_dir / SKIPPED_FILE}")
    prepared = sorted(prepared, key=lambda p: p.utt_id)
    # clips of one piece share its split (a piece's clips in train and test would leak); the split
    # (and a split list file) is over the pieces' utt_ids
    groups = dict.fromkeys((p.piece or p.utt_id, p.speaker) for p in prepared)
    by_group = assign_splits(list(groups), split, ignore_ids={s.utt_id for s in skipped})
    splits = {p.utt_id: by_group[p.piece or p.utt_id] for p in prepared}
    rows = [[p.utt_id, p.speaker, Path(os.path.relpath(p.path, out_dir)).as_posix(), round(p.duration, 6),
             p.sample_rate, p.num_samples, splits[p.utt_id], p.source_path, p.text] for p in prepared]
    manifest = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    _write_csv(out_dir / MANIFEST_FILE, manifest)
    summary = _summary(prepared, splits, skipped, audio)
    write_json(out_dir / SUMMARY_FILE, summary)
    return PrepareResult(out_dir=out_dir, manifest=manifest, skipped=skipped_df, summary=summary,
                         prepared=prepared)


def _publish_wavs(out_dir: Path) -> None:
    staged = out_dir / STAGING_DIR
    if not staged.is_dir():
        return
    wavs = out_dir / WAVS_DIR
    if wavs.is_dir() and not wavs.is_symlink():
        shutil.rmtree(wavs)
    elif wavs.exists() or wavs.is_symlink():
        wavs.unlink()
    os.replace(staged, wavs)


def prepare_shard(utterances: list[SourceUtterance], out_dir: Path, audio: AudioParams
                  ) -> list[PreparedInfo | SkippedFile]:
    """Prepare a batch of utterances one after the other (a unit of work for a task runner or a
    process pool); each is staged at :func:`staging_path` and recorded at :func:`output_path`
    (:func:`write_outputs` publishes them). Bad inputs come back as :class:`SkippedFile`."""
    return [r for utt in utterances for r in _prepare_one(utt, Path(out_dir), audio)]


def process_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes for :func:`prepare_shard`: forked (fast to start) from a
    single-threaded process, else spawned (forking a process that runs threads, as a Prefect flow
    does, is unsafe; a spawned worker imports the ``__main__`` module, which needs the usual
    ``if __name__ == "__main__":`` guard)."""
    methods = multiprocessing.get_all_start_methods()
    method = "fork" if threading.active_count() == 1 and "fork" in methods else "spawn"
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context(method))


def _prepare_one(utt: SourceUtterance, out_dir: Path, audio: AudioParams) -> list[PreparedInfo | SkippedFile]:
    """One source: its prepared file, its clips (``audio.clips.enabled`` true; ``auto`` must have
    been resolved, :func:`resolve_clips`), or why it was skipped."""
    try:
        if audio.clips.enabled is True:
            return list(prepare_clips(utt, out_dir, audio))
        return [prepare_file(utt, output_path(out_dir, utt), audio, write_to=staging_path(out_dir, utt))]
    except SkipFile as skip:
        return [SkippedFile(utt.utt_id, utt.speaker, str(utt.path), skip.reason, skip.detail)]
    except Exception as exc:
        raise PrepareError(f"{utt.path}: unexpected error while preparing '{utt.utt_id}': "
                           f"{type(exc).__name__}: {exc}") from exc


def prepare_corpus(utterances: list[SourceUtterance], out_dir: Path, audio: AudioParams,
                   split: SplitParams, workers: int = 2, progress: bool = True,
                   dataset: str | None = None) -> PrepareResult:
    """Prepare every utterance into ``out_dir`` (see the module doc for the outputs), in a pool of
    ``workers`` processes (in this process when ``workers`` <= 1). ``dataset`` (a registry name)
    decides ``audio.clips.enabled: auto`` (:func:`resolve_clips`); without it ``auto`` is off.

    Stale outputs of an earlier run are removed first. A split list file is checked against the
    whole corpus before any audio is processed.
    """
    out_dir = Path(out_dir)
    utterances = list(utterances)
    if dataset is not None:
        audio = resolve_clips(audio, dataset)
    check_corpus(utterances, split)
    clean_outputs(out_dir)
    (out_dir / STAGING_DIR).mkdir(parents=True, exist_ok=True)

    results: list[PreparedInfo | SkippedFile] = []
    bar = tqdm(total=len(utterances), desc="prepare", unit="file", disable=not progress)
    try:
        if workers <= 1:
            for utt in utterances:
                results.extend(_prepare_one(utt, out_dir, audio))
                bar.update(1)
        else:
            # chunks: few enough to keep the pickling small, enough to balance the processes
            size = max(1, min(32, math.ceil(len(utterances) / (4 * workers))))
            chunks = [utterances[i:i + size] for i in range(0, len(utterances), size)]
            done: list[list[PreparedInfo | SkippedFile]] = [[] for _ in chunks]
            with process_pool(workers) as pool:
                futures: dict[Future[list[PreparedInfo | SkippedFile]], int] = {
                    pool.submit(prepare_shard, chunk, out_dir, audio): i for i, chunk in enumerate(chunks)}
                try:
                    for fut in as_completed(futures):
                        done[futures[fut]] = fut.result()
                        bar.update(len(chunks[futures[fut]]))
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
            results = [r for chunk in done for r in chunk]
    finally:
        bar.close()

    prepared = [r for r in results if isinstance(r, PreparedInfo)]
    skipped = [r for r in results if isinstance(r, SkippedFile)]
    return write_outputs(out_dir, prepared, skipped, split, audio)
