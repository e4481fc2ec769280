"""The synthetic demo corpus: deterministic, seeded, speech-like (harmonic voiced segments in each speaker's range, unvoiced and silent ones)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ganpipe.config import DemoParams
from ganpipe.datasets import demo

SMALL = DemoParams(n_speakers=2, utterances_per_speaker=3, min_seconds=1.5, max_seconds=2.0, seed=7)


@pytest.fixture(scope="module")
def default_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    out = tmp_path_factory.mktemp("demo")
    return out, demo.generate(out, DemoParams())


def _hashes(paths: list[Path], root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _frames(x: np.ndarray, sr: int, win: float = 0.04, hop: float = 0.01) -> np.ndarray:
    w, h = int(win * sr), int(hop * sr)
    n = 1 + (len(x) - w) // h
    return x[np.arange(w)[None, :] + h * np.arange(n)[:, None]]


def _frame_analysis(frames: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """Per frame: level (dBFS RMS), periodicity (peak of the normalised cross-correlation of the
    frame with itself shifted by one period, 70-400 Hz), the F0 of that peak (the shortest lag
    within 10% of the best, against octave errors) and zero-crossing rate."""
    fr = frames - frames.mean(axis=1, keepdims=True)
    w = fr.shape[1]
    lags = np.arange(int(sr / 400), int(sr / 70) + 1)
    nccf = np.empty((len(fr), len(lags)))
    for k, lag in enumerate(lags):
        a, b = fr[:, : w - lag], fr[:, lag:]
        nccf[:, k] = np.sum(a * b, axis=1) / np.sqrt(np.sum(a * a, axis=1) * np.sum(b * b, axis=1) + 1e-20)
    best = nccf.max(axis=1)
    first = np.argmax(nccf >= 0.9 * best[:, None], axis=1)
    rms = np.sqrt(np.mean(fr**2, axis=1))
    return {
        "db": 20 * np.log10(rms + 1e-12),
        "periodicity": best,
        "f0": sr / lags[first],
        "zcr": np.mean(np.diff(np.sign(fr), axis=1) != 0, axis=1),
    }


def _segment_frames(x: np.ndarray, sr: int, seg: demo.Segment, margin: float = 0.02) -> np.ndarray:
    m = int(margin * sr)
    return _frames(x[seg.start + m: seg.end - m], sr)


def test_default_corpus_layout(default_corpus: tuple[Path, list[Path]]) -> None:
    out, paths = default_corpus
    params = DemoParams()
    n = params.utterances_per_speaker
    assert len(paths) == params.n_speakers * n
    speakers = sorted({p.parent.name for p in paths})
    assert speakers == ["spk00", "spk01", "spk02", "spk03"]
    for spk in speakers:
        names = sorted(p.name for p in paths if p.parent.name == spk)
        assert names == [f"{spk}_{j:03d}.wav" for j in range(n)]
    clip_lengths = []  # audio length of each clip, in s
    for p in paths:
        info = sf.info(str(p))
        assert (info.samplerate, info.channels, info.subtype) == (params.sample_rate, 1, "PCM_16")
        clip_lengths.append(info.frames / info.samplerate)
        x, _ = sf.read(str(p))
        assert 0.3 < np.max(np.abs(x)) < 0.9
    assert min(clip_lengths) >= 1.5 - 1e-3 and max(clip_lengths) <= 4.0 + 1e-3
    assert max(clip_lengths) - min(clip_lengths) > 1.0  # clip lengths actually vary
    readme = (out / "README.txt").read_text()
    assert "synthetic" in readme and "not" in readme and "spk03" in readme
    assert sorted(out.rglob("*.wav")) == paths


def test_generation_is_deterministic_and_seeded(tmp_path: Path) -> None:
    a = demo.generate(tmp_path / "a", SMALL)
    b = demo.generate(tmp_path / "b", SMALL)
    assert _hashes(a, tmp_path / "a") == _hashes(b, tmp_path / "b")
    assert (tmp_path / "a" / "README.txt").read_bytes() == (tmp_path / "b" / "README.txt").read_bytes()
    c = demo.generate(tmp_path / "c", SMALL.model_copy(update={"seed": 8}))
    ha, hc = _hashes(a, tmp_path / "a"), _hashes(c, tmp_path / "c")
    assert ha.keys() == hc.keys() and all(ha[k] != hc[k] for k in ha)
    # All utterances in a corpus are different from each other.
    assert len(set(ha.values())) == len(ha)
    # Utterances are seeded individually: fewer per speaker keeps the remaining ones, and a
    # regeneration into the same folder removes the files that are no longer part of the corpus.
    d = demo.generate(tmp_path / "a", SMALL.model_copy(update={"utterances_per_speaker": 2}))
    hd = _hashes(d, tmp_path / "a")
    assert len(hd) == 4 and all(hd[k] == ha[k] for k in hd)
    assert sorted((tmp_path / "a").rglob("*.wav")) == d


def test_voiced_segments_are_harmonic_in_the_speakers_range(
        default_corpus: tuple[Path, list[Path]]) -> None:
    out, _ = default_corpus
    params = DemoParams()
    profiles = demo.speaker_profiles(params)
    for i, prof in enumerate(profiles):
        for j in (0, 5):
            x, sr = sf.read(str(demo.utterance_path(out, prof.name, j, 12)))
            ref, segments = demo.render_utterance(params, i, j, profiles)
            assert len(ref) == len(x) and np.max(np.abs(ref - x)) < 2 / 32768  # labels fit the file
            voiced = [s for s in segments if s.kind == "voiced" and s.end - s.start > 0.09 * sr]
            assert voiced
            fr = np.concatenate([_segment_frames(x, sr, s) for s in voiced])
            a = _frame_analysis(fr, sr)
            assert np.mean(a["periodicity"] > 0.6) > 0.8
            f0 = a["f0"][a["periodicity"] > 0.6]
            assert np.median(f0) == pytest.approx(prof.f0_hz, rel=0.15)
            in_range = (f0 > prof.f0_hz * 2 ** (-7 / 12)) & (f0 < prof.f0_hz * 2 ** (8 / 12))
            assert np.mean(in_range) > 0.95


def test_unvoiced_and_silent_segments_exist(default_corpus: tuple[Path, list[Path]]) -> None:
    out, _ = default_corpus
    params = DemoParams()
    profiles = demo.speaker_profiles(params)
    for i, prof in enumerate(profiles):
        for j in (1, 7):
            x, sr = sf.read(str(demo.utterance_path(out, prof.name, j, 12)))
            _, segments = demo.render_utterance(params, i, j, profiles)
            kinds = [s.kind for s in segments]
            assert kinds[0] == "silence" and kinds[-1] == "silence"
            for s in (segments[0], segments[-1]):  # (skip the resonators' ring-out at the tail)
                quiet = x[s.start + int(0.03 * sr): s.end]
                assert 20 * np.log10(np.sqrt(np.mean(quiet**2))) < -65
            fricatives = [s for s in segments if s.kind == "unvoiced" and s.label in ("s", "sh", "f", "h")]
            assert fricatives
            voiced = [s for s in segments if s.kind == "voiced" and s.end - s.start > 0.09 * sr]
            fa = _frame_analysis(np.concatenate([_frames(x[s.start:s.end], sr, win=0.02) for s in fricatives
                                                 if s.end - s.start > 0.03 * sr]), sr)
            va = _frame_analysis(np.concatenate([_segment_frames(x, sr, s) for s in voiced]), sr)
            assert np.median(fa["periodicity"]) < 0.4
            assert np.median(fa["db"]) > -50  # clearly above the silence
            assert np.median(fa["zcr"]) > 2 * np.median(va["zcr"])


def test_speakers_differ_in_mean_f0(default_corpus: tuple[Path, list[Path]]) -> None:
    """Pitch measured blindly on the files (no labels): ordered like the profiles, 95-240 Hz."""
    _, paths = default_corpus
    profiles = demo.speaker_profiles(DemoParams())
    medians = []
    for prof in profiles:
        f0s = []
        for p in [p for p in paths if p.parent.name == prof.name][:4]:
            x, sr = sf.read(str(p))
            fr = _frames(x, sr, hop=0.02)
            db = 10 * np.log10(np.mean(fr**2, axis=1) + 1e-20)
            a = _frame_analysis(fr[db > db.max() - 25], sr)
            f0s.append(a["f0"][a["periodicity"] > 0.7])
        medians.append(float(np.median(np.concatenate(f0s))))
    assert medians == sorted(medians)
    assert all(b / a > 1.1 for a, b in zip(medians, medians[1:]))
    assert 90 < medians[0] < 120 and 220 < medians[-1] < 270
    assert len({p.vtl_scale for p in profiles}) == len(profiles)


@pytest.mark.parametrize("sample_rate", [8000, 16000])
def test_other_sample_rates(tmp_path: Path, sample_rate: int) -> None:
    params = DemoParams(n_speakers=2, utterances_per_speaker=1, sample_rate=sample_rate, seed=-3)
    paths = demo.generate(tmp_path, params)
    assert len(paths) == 2
    for p in paths:
        x, sr = sf.read(str(p))
        assert sr == sample_rate and np.all(np.isfinite(x))
        assert 1.5 <= len(x) / sr <= 4.0 and 0.3 < np.max(np.abs(x)) < 0.9
