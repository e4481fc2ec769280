"""Preparing audio: resampling, mixing down, trimming, peak/loudness normalisation; bad files skipped and listed."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyloudnorm
import pytest
import soundfile as sf
from scipy.signal import butter, resample_poly, sosfiltfilt

from ganpipe.config import AudioParams, SplitParams
from ganpipe.datasets.types import SourceUtterance
from ganpipe.prepare import (
    MANIFEST_COLUMNS, PreparedInfo, PrepareError, SkipFile, SkippedFile, check_corpus, output_path,
    prepare_corpus, prepare_file, prepare_shard, read_manifest, trim_bounds, write_outputs,
)
from ganpipe.split import SplitError

# Short LJSpeech clips (22.05 kHz, 16-bit): 1.78 s, 1.90 s, 2.58 s.
SHORT = ("LJ001-0008", "LJ001-0002", "LJ001-0013")
PLAIN = dict(trim_silence=False, normalize="none")


@pytest.fixture(scope="module")
def clips(lj_wavs: list[Path]) -> dict[str, tuple[np.ndarray, int]]:
    by_name = {p.stem: p for p in lj_wavs}
    out = {}
    for name in SHORT:
        x, sr = sf.read(str(by_name[name]), dtype="float32")
        out[name] = (x, sr)
    return out


def _write(path: Path, x: np.ndarray, sr: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def _utt(path: Path, speaker: str = "lj", text: str = "") -> SourceUtterance:
    return SourceUtterance(utt_id=path.stem, speaker=speaker, path=str(path), text=text)


def _peak_db(x: np.ndarray) -> float:
    return float(20 * np.log10(np.max(np.abs(x))))


def _bad_and_good_sources(src: Path, clips: dict[str, tuple[np.ndarray, int]]) -> tuple[
        list[SourceUtterance], dict[str, str]]:
    """Three good LJ clips, one stereo file and one of every kind of bad input."""
    rng = np.random.default_rng(0)
    a, sr = clips["LJ001-0008"]
    b, _ = clips["LJ001-0002"]
    c, _ = clips["LJ001-0013"]
    utts = [_utt(_write(src / f"{name}.wav", clips[name][0], sr), text=f"text of {name}") for name in SHORT]
    n = min(a.size, b.size)
    utts.append(_utt(_write(src / "stereo.wav", np.stack([a[:n], b[:n]], axis=1), sr), speaker="two"))
    corrupt = src / "corrupt.wav"
    corrupt.write_bytes(rng.integers(0, 256, 5000, dtype=np.uint8).tobytes())
    empty = src / "empty.wav"
    empty.write_bytes(b"")
    nan = a.copy()
    nan[1000] = np.nan
    silent = (1e-5 * rng.standard_normal(sr)).astype(np.float32)  # about -95 dBFS
    mid = c.size // 2
    utts += [
        _utt(corrupt, speaker="two"),
        _utt(empty, speaker="two"),
        _utt(_write(src / "nan.wav", nan, sr, subtype="FLOAT"), speaker="two"),
        _utt(_write(src / "silent.wav", silent, sr, subtype="FLOAT"), speaker="two"),
        _utt(_write(src / "short.wav", c[mid: mid + int(0.3 * sr)], sr), speaker="two"),
        _utt(_write(src / "long.wav", np.concatenate([c, c]), sr), speaker="two"),
        _utt(src / "missing.wav", speaker="two"),
    ]
    expected = {"corrupt": "unreadable", "empty": "empty", "nan": "non_finite", "silent": "silent",
                "short": "too_short", "long": "too_long", "missing": "missing"}
    return utts, expected


def test_prepare_corpus_writes_good_files_and_lists_bad_ones(
        tmp_path: Path, clips: dict[str, tuple[np.ndarray, int]]) -> None:
    utts, expected_skips = _bad_and_good_sources(tmp_path / "src", clips)
    out = tmp_path / "prepared"
    audio = AudioParams(sample_rate=16000, max_seconds=4.0)
    result = prepare_corpus(utts, out, audio, SplitParams(method="seeded"), workers=2, progress=False)

    skipped = pd.read_csv(out / "skipped.csv", keep_default_na=False)
    assert list(skipped.columns) == ["source_path", "utt_id", "reason", "detail"]
    assert dict(zip(skipped.utt_id, skipped.reason)) == expected_skips
    details = dict(zip(skipped.utt_id, skipped.detail))
    assert "1 non-finite" in details["nan"]
    assert "below silence_threshold_db -60" in details["silent"]
    short_reason, long_reason = "< min_seconds 0.5", "> max_seconds 4"  # audio-length limits
    assert short_reason in details["short"] and long_reason in details["long"]
    assert dict(zip(skipped.utt_id, skipped.source_path))["corrupt"] == str(tmp_path / "src" / "corrupt.wav")

    manifest = read_manifest(out / "manifest.csv")
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert list(manifest.utt_id) == sorted([*SHORT, "stereo"])
    for row in manifest.itertuples():
        info = sf.info(str(out / row.path))
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert row.path == f"wavs/{row.speaker}/{row.utt_id}.wav"
        assert info.frames == row.num_samples and row.sample_rate == 16000
        audio_length = row.duration  # seconds of audio in the manifest
        assert audio_length == pytest.approx(row.num_samples / 16000, abs=1e-6)
        assert row.source_path == str(tmp_path / "src" / f"{row.utt_id}.wav")
        assert row.text == ("" if row.utt_id == "stereo" else f"text of {row.utt_id}")
    assert sorted(p.relative_to(out).as_posix() for p in (out / "wavs").rglob("*") if p.is_file()) == sorted(
        manifest.path)
    # Three utterances of speaker 'lj' with 10 % / 10 %: one of each split; 'two' keeps its only one.
    lj = manifest[manifest.speaker == "lj"]
    assert sorted(lj.split) == ["test", "train", "valid"]
    assert manifest.set_index("utt_id").split["stereo"] == "train"

    summary = json.loads((out / "summary.json").read_text())
    assert summary == result.summary
    assert summary["utterances"] == 4 and summary["source_files"] == 11
    assert summary["skipped"] == {"total": 7, "by_reason": {r: 1 for r in sorted(expected_skips.values())}}
    assert {s: v["utterances"] for s, v in summary["splits"].items()} == {"train": 2, "valid": 1, "test": 1}
    assert summary["speakers"]["lj"]["train"] == 1 and summary["speakers"]["two"]["utterances"] == 1
    audio_hours = manifest.duration.sum() / 3600
    assert summary["hours"] == pytest.approx(audio_hours, abs=1e-5)
    assert result.manifest.equals(pd.read_csv(out / "manifest.csv", keep_default_na=False))


def test_resampling_22050_to_16000_keeps_length_and_content(
        tmp_path: Path, clips: dict[str, tuple[np.ndarray, int]]) -> None:
    x, sr = clips["LJ001-0013"]
    src = _write(tmp_path / "in.wav", x, sr, subtype="FLOAT")
    info = prepare_file(_utt(src), tmp_path / "out.wav", AudioParams(sample_rate=16000, output_format="float", **PLAIN))
    y, sr_out = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    assert sr_out == 16000 and info.sample_rate == 16000 and info.num_samples == y.size
    assert abs(y.size - x.size * 16000 / 22050) <= 1
    # An independent polyphase resampler (scipy) gives the same, time-aligned waveform; the two
    # differ only in their anti-aliasing transition band, so below 7 kHz they are nearly identical.
    ref = resample_poly(x.astype(np.float64), 320, 441)
    assert ref.size == y.size
    assert np.corrcoef(ref, y)[0, 1] > 0.99
    lowpass = butter(8, 7000, fs=16000, output="sos")
    assert np.corrcoef(sosfiltfilt(lowpass, ref), sosfiltfilt(lowpass, y))[0, 1] > 0.9999
    # No energy folded back above the new Nyquist band edge: spectrum above 7.9 kHz is tiny.
    spec = np.abs(np.fft.rfft(y)) ** 2
    freqs = np.fft.rfftfreq(y.size, 1 / 16000)
    assert spec[freqs > 7900].sum() / spec.sum() < 1e-4


def test_stereo_is_mixed_down(tmp_path: Path, clips: dict[str, tuple[np.ndarray, int]]) -> None:
    a, sr = clips["LJ001-0008"]
    b, _ = clips["LJ001-0002"]
    n = min(a.size, b.size)
    src = _write(tmp_path / "st.wav", np.stack([a[:n], b[:n]], axis=1), sr, subtype="FLOAT")
    info = prepare_file(_utt(src), tmp_path / "out.wav",
                        AudioParams(sample_rate=sr, output_format="float", **PLAIN))
    y, _ = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    assert info.source_channels == 2 and sf.info(str(tmp_path / "out.wav")).channels == 1
    np.testing.assert_allclose(y, (a[:n] + b[:n]) / 2, atol=1e-6)


@pytest.mark.parametrize("peak_db", [-1.0, -6.0])
def test_peak_normalisation(tmp_path: Path, clips: dict[str, tuple[np.ndarray, int]], peak_db: float) -> None:
    x, sr = clips["LJ001-0002"]
    src = _write(tmp_path / "in.wav", 0.1 * x, sr)
    info = prepare_file(_utt(src), tmp_path / "out.wav",
                        AudioParams(sample_rate=sr, normalize="peak", peak_db=peak_db))
    y, _ = sf.read(str(tmp_path / "out.wav"))
    assert _peak_db(y) == pytest.approx(peak_db, abs=0.1)
    assert info.peak_dbfs == pytest.approx(peak_db, abs=0.1) and info.gain_db > 10


@pytest.mark.parametrize("target", [-23.0, -30.0])
def test_loudness_normalisation(tmp_path: Path, clips: dict[str, tuple[np.ndarray, int]], target: float) -> None:
    x, sr = clips["LJ001-0013"]
    src = _write(tmp_path / "in.wav", 0.3 * x, sr)
    info = prepare_file(_utt(src), tmp_path / "out.wav",
                        AudioParams(sample_rate=16000, normalize="loudness", loudness_lufs=target))
    y, sr_out = sf.read(str(tmp_path / "out.wav"))
    assert pyloudnorm.Meter(sr_out).integrated_loudness(y) == pytest.approx(target, abs=0.5)
    assert not info.loudness_limited and _peak_db(y) < -1.0


def test_loudness_normalisation_never_clips(tmp_path: Path, clips: dict[str, tuple[np.ndarray, int]]) -> None:
    x, sr = clips["LJ001-0013"]
    src = _write(tmp_path / "in.wav", x, sr)
    audio = AudioParams(sample_rate=sr, normalize="loudness", loudness_lufs=-3.0, peak_db=-1.0)
    info = prepare_file(_utt(src), tmp_path / "out.wav", audio)
    y, _ = sf.read(str(tmp_path / "out.wav"))
    assert info.loudness_limited
    assert _peak_db(y) == pytest.approx(-1.0, abs=0.1)
    assert pyloudnorm.Meter(sr).integrated_loudness(y) < -5.0


def test_loudness_needs_one_gating_block(tmp_path: Path, clips: dict[str, tuple[np.ndarray, int]]) -> None:
    x, sr = clips["LJ001-0013"]
    mid = x.size // 2
    src = _write(tmp_path / "in.wav", x[mid: mid + int(0.3 * sr)], sr)
    audio = AudioParams(normalize="loudness", min_seconds=0.1, trim_silence=False)
    with pytest.raises(SkipFile, match="0.4 s") as info:
        prepare_file(_utt(src), tmp_path / "out.wav", audio)
    assert info.value.reason == "too_short" and not (tmp_path / "out.wav").exists()


def test_trim_removes_added_silence(tmp_path: Path, clips: dict[str, tuple[np.ndarray, int]]) -> None:
    x, sr = clips["LJ001-0008"]
    rng = np.random.default_rng(1)
    pad = (3e-4 * rng.standard_normal(sr)).astype(np.float32)  # 1 s of about -70 dBFS noise each side
    padded = np.concatenate([pad, x, pad[::-1]])
    src = _write(tmp_path / "in.wav", padded, sr, subtype="FLOAT")
    audio = AudioParams(sample_rate=sr, output_format="float", normalize="none", trim_silence=True)
    info = prepare_file(_utt(src), tmp_path / "out.wav", audio)
    y, _ = sf.read(str(tmp_path / "out.wav"), dtype="float32")
    assert sf.info(str(tmp_path / "out.wav")).subtype == "FLOAT"
    assert y.size <= x.size + int(0.15 * sr)  # at most margin + frame beyond the original clip
    assert y.size >= 0.8 * x.size
    trimmed = info.trimmed_seconds  # audio removed, in s
    assert trimmed == pytest.approx((padded.size - y.size) / sr) and trimmed > 1.9
    # The kept part is the untouched speech: the output is a contiguous slice of the input.
    start, end = trim_bounds(padded, sr, audio.trim_top_db)
    np.testing.assert_array_equal(y, padded[start:end])
    assert sr - int(0.1 * sr) <= start <= sr  # the added padding is gone (up to the margin) ...
    assert sr + x.size - int(0.3 * sr) <= end <= sr + x.size + int(0.1 * sr)
    assert np.sum(y.astype(np.float64) ** 2) > 0.999 * np.sum(x.astype(np.float64) ** 2)  # ... speech kept
    # Without trimming the padding stays.
    prepare_file(_utt(src), tmp_path / "keep.wav", audio.model_copy(update={"trim_silence": False}))
    assert sf.info(str(tmp_path / "keep.wav")).frames == padded.size


def test_outputs_are_deterministic_and_stale_files_removed(
        tmp_path: Path, clips: dict[str, tuple[np.ndarray, int]]) -> None:
    sr = clips[SHORT[0]][1]
    utts = [_utt(_write(tmp_path / "src" / f"{n}.wav", clips[n][0], sr)) for n in SHORT]
    audio = AudioParams(sample_rate=16000, normalize="peak")
    out1, out2 = tmp_path / "one", tmp_path / "two"
    stale = out2 / "wavs" / "old" / "gone.wav"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"stale")
    (out2 / ".manifest.csv.tmp-abc.csv").write_text("half written")
    prepare_corpus(utts, out1, audio, SplitParams(), workers=1, progress=False)
    prepare_corpus(list(reversed(utts)), out2, audio, SplitParams(), workers=2, progress=False)
    assert not stale.exists() and not (out2 / "wavs" / "old").exists()
    assert not list(out2.glob(".*.tmp-*"))
    for name in ("manifest.csv", "summary.json", "skipped.csv"):
        assert (out1 / name).read_bytes() == (out2 / name).read_bytes()
    for row in read_manifest(out1 / "manifest.csv").itertuples():
        assert (out1 / row.path).read_bytes() == (out2 / row.path).read_bytes()
    assert (out1 / "skipped.csv").read_text() == "source_path,utt_id,reason,detail\n"


def test_every_file_skipped_raises_after_listing_them(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    with pytest.raises(PrepareError, match=r"all 2 source files were skipped \(empty: 1, unreadable: 1\)"):
        prepare_corpus([_utt(bad), _utt(empty)], out, AudioParams(), SplitParams(), progress=False)
    skipped = pd.read_csv(out / "skipped.csv")
    assert sorted(skipped.reason) == ["empty", "unreadable"]
    assert not (out / "manifest.csv").exists()


def test_corpus_level_errors(tmp_path: Path, clips: dict[str, tuple[np.ndarray, int]]) -> None:
    x, sr = clips[SHORT[0]]
    good = _write(tmp_path / "a.wav", x, sr)
    out = tmp_path / "out"
    dup = [_utt(good), SourceUtterance("a", "lj", str(tmp_path / "other.wav"))]
    with pytest.raises(PrepareError, match="duplicate utterance id 'a'"):
        prepare_corpus(dup, out, AudioParams(), SplitParams(), progress=False)
    with pytest.raises(PrepareError, match=r"speaker '\.\./x'.*file name"):
        prepare_corpus([_utt(good, speaker="../x")], out, AudioParams(), SplitParams(), progress=False)
    # A split list is checked against the whole corpus before any audio is processed.
    listing = tmp_path / "split.csv"
    listing.write_text("utt_id,split\nother,train\n")
    with pytest.raises(SplitError, match="line 2: unknown utterance id 'other'"):
        prepare_corpus([_utt(good)], out, AudioParams(), SplitParams(list_file=str(listing)), progress=False)
    assert not (out / "wavs").exists()


def test_split_list_may_name_skipped_files(tmp_path: Path, clips: dict[str, tuple[np.ndarray, int]]) -> None:
    sr = clips[SHORT[0]][1]
    utts = [_utt(_write(tmp_path / "src" / f"{n}.wav", clips[n][0], sr)) for n in SHORT[:2]]
    broken = tmp_path / "src" / "broken.wav"
    broken.write_bytes(b"\x00" * 100)
    listing = tmp_path / "split.tsv"
    listing.write_text(f"{SHORT[0]}\ttest\n{SHORT[1]}\ttrain\nbroken\tvalid\n")
    result = prepare_corpus([*utts, _utt(broken)], tmp_path / "out", AudioParams(**PLAIN),
                            SplitParams(list_file=str(listing)), workers=2, progress=False)
    assert dict(zip(result.manifest.utt_id, result.manifest.split)) == {SHORT[0]: "test", SHORT[1]: "train"}
    assert list(result.skipped.utt_id) == ["broken"]


def test_prepare_shard_for_task_runners(tmp_path: Path, clips: dict[str, tuple[np.ndarray, int]]) -> None:
    x, sr = clips[SHORT[0]]
    good = _utt(_write(tmp_path / "src" / "good.wav", x, sr), speaker="s1")
    bad = tmp_path / "src" / "bad.wav"
    bad.write_bytes(b"")
    utts = [good, _utt(bad)]
    with pytest.raises(PrepareError, match="no source utterances"):
        check_corpus([], SplitParams())
    check_corpus(utts, SplitParams())
    results = prepare_shard(utts, tmp_path / "out", AudioParams(**PLAIN))
    assert isinstance(results[0], PreparedInfo) and isinstance(results[1], SkippedFile)
    assert Path(results[0].path) == output_path(tmp_path / "out", good) == tmp_path / "out/wavs/s1/good.wav"
    assert results[1].reason == "empty"
    # Results and skip errors survive pickling (process-based task runners).
    assert pickle.loads(pickle.dumps(results)) == results
    err = pickle.loads(pickle.dumps(SkipFile("silent", "peak -90 dBFS")))
    assert (err.reason, err.detail) == ("silent", "peak -90 dBFS")
    result = write_outputs(tmp_path / "out", [r for r in results if isinstance(r, PreparedInfo)],
                           [r for r in results if isinstance(r, SkippedFile)], SplitParams())
    assert list(result.manifest.path) == ["wavs/s1/good.wav"] and list(result.skipped.reason) == ["empty"]
