"""Music data: the demo_music corpus, and long audio cut into silence-aware training clips by prepare."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from ganpipe import prepare as P
from ganpipe.config import AudioParams, ConfigError, DemoMusicParams, SplitParams, parse_params
from ganpipe.datasets import demo_music
from ganpipe.datasets.layouts import discover
from ganpipe.datasets.types import SourceUtterance

SR = 16000


# ---------------------------------------------------------------------------------------------
# demo_music
# ---------------------------------------------------------------------------------------------
def test_demo_music_is_deterministic_piano_like_and_documented(tmp_path: Path):
    params = DemoMusicParams(pieces=3, min_seconds=3.0, max_seconds=4.0)
    paths = demo_music.generate(tmp_path / "a", params)
    assert [p.relative_to(tmp_path / "a").as_posix() for p in paths] == [
        "piano/piece_000.wav", "piano/piece_001.wav", "piano/piece_002.wav"]
    again = demo_music.generate(tmp_path / "b", params)
    assert [p.read_bytes() for p in paths] == [p.read_bytes() for p in again]
    # fewer pieces: the remaining ones are unchanged and the extra one is removed
    fewer = demo_music.generate(tmp_path / "a", params.model_copy(update={"pieces": 2}))
    assert [p.read_bytes() for p in fewer] == [p.read_bytes() for p in again[:2]]
    assert not (tmp_path / "a/piano/piece_002.wav").exists()
    readme = (tmp_path / "a/README.txt").read_text()
    assert "What it is not" in readme and "piano-LIKE" in readme
    for p in paths[:2]:
        wav, sr = sf.read(p)
        assert sr == SR and 3.0 <= len(wav) / sr <= 4.0 + 1.5 and 0.3 < np.abs(wav).max() < 0.9

    # the notes are struck strings: stretched partials (inharmonicity) that decay
    note = demo_music.Note(pitch=45, onset=0.0, duration=1.5, velocity=0.8)  # A2, 110 Hz
    x = demo_music._note(np.random.default_rng(0), note, SR, tail=0.0)
    spec = np.abs(np.fft.rfft(x[: SR] * np.hanning(SR)))
    freqs = np.fft.rfftfreq(SR, 1 / SR)
    k = 10
    band = (freqs > k * 110 * 0.99) & (freqs < k * 110 * 1.05)
    peak = freqs[band][np.argmax(spec[band])]
    assert peak > k * 110 * 1.0005  # the 10th partial lies above 10 x f0
    head, tail = np.abs(x[: SR // 10]).max(), np.abs(x[SR: SR + SR // 10]).max()
    assert tail < 0.5 * head
    assert discover("demo", tmp_path / "a")[0].speaker == "piano"


def test_demo_music_params_are_validated():
    assert parse_params({"dataset": {"name": "demo_music"}}).dataset.demo_music.sample_rate == 16000
    for bad, key in (({"pieces": 0}, "pieces"), ({"reverb": 1.5}, "reverb"),
                     ({"min_seconds": 9.0, "max_seconds": 8.0}, "demo_music")):
        with pytest.raises(ConfigError, match="dataset.demo_music") as err:
            parse_params({"dataset": {"demo_music": bad}})
        assert key in str(err.value)


# ---------------------------------------------------------------------------------------------
# clips
# ---------------------------------------------------------------------------------------------
def _piece() -> np.ndarray:
    """0.5 s silence, 3.4 s of notes (a quiet dip at 2.6-2.7 s), 2.5 s silence, 3 s of notes, 1 s silence."""
    t = np.arange(int(11.4 * SR)) / SR
    x = 0.5 * np.sin(2 * np.pi * 330 * t) * (np.sin(2 * np.pi * 2.0 * t) ** 2 * 0.5 + 0.5)
    x[(t < 0.5) | ((t >= 3.9) & (t < 6.4)) | (t >= 9.4)] = 0.0
    x[(t >= 2.6) & (t < 2.7)] *= 0.01
    return (x + 1e-5 * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)


def test_clip_bounds_skip_silences_and_cut_in_quiet_moments():
    x = _piece()
    clips = P.clip_bounds(x, SR, clip_seconds=3.0, top_db=40.0, min_seconds=0.5)
    secs = [(a / SR, b / SR) for a, b in clips]
    assert all(b - a <= 3.0 + 1e-9 for a, b in secs)
    # the first clip starts at the first note (less the margin) and ends in the dip at 2.6-2.7 s
    assert secs[0][0] == pytest.approx(0.45, abs=0.03) and 2.6 <= secs[0][1] <= 2.72
    # no clip covers the long silence: the clip ending before it stops at its start (plus margin)
    assert not any(a < 4.5 and b > 5.5 for a, b in secs)
    assert any(b == pytest.approx(3.95, abs=0.03) for _, b in secs)
    assert any(a == pytest.approx(6.35, abs=0.03) for a, _ in secs)
    assert secs[-1][1] == pytest.approx(9.45, abs=0.03)  # the trailing silence is left out
    assert P.clip_bounds(np.zeros(SR * 3, np.float32), SR, 2.0, 40.0, 0.5) == []


def _long_source(tmp_path: Path) -> SourceUtterance:
    path = tmp_path / "src" / "piece.wav"
    path.parent.mkdir(parents=True)
    sf.write(path, np.tile(_piece(), 4), SR, subtype="PCM_16")  # 45.6 s: longer than max_seconds 30
    return SourceUtterance("piece", "piano", str(path))


def test_music_corpora_are_cut_into_clips_sharing_their_piece_split(tmp_path: Path):
    src = _long_source(tmp_path)
    others = []
    for i in range(5):  # more pieces, so that the split has something to spread
        p = tmp_path / "src" / f"p{i}.wav"
        sf.write(p, _piece(), SR, subtype="PCM_16")
        others.append(SourceUtterance(f"p{i}", "piano", str(p)))
    audio = AudioParams(sample_rate=SR, clips={"seconds": 2.0})
    res = P.prepare_corpus([src, *others], tmp_path / "out", audio,
                           SplitParams(method="seeded", valid_fraction=0.2, test_fraction=0.2), workers=1,
                           progress=False, dataset="demo_music")
    m = res.manifest
    longest_clip = m["duration"].max()  # audio seconds
    assert m["utt_id"].str.fullmatch(r"(piece|p\d)__c\d{4}").all() and longest_clip <= 2.0
    assert (m["utt_id"].str.startswith("piece__")).sum() >= 16  # a 45.6 s piece, not skipped as too long
    piece = m["utt_id"].str.split("__").str[0]
    assert m.groupby(piece)["split"].nunique().eq(1).all() and m["split"].nunique() == 3
    for row in m.itertuples():
        wav, sr = sf.read(tmp_path / "out" / row.path)
        assert sr == SR and len(wav) == row.num_samples and np.abs(wav).max() > 0.01
    summary = json.loads(res.summary_path.read_text())
    assert summary["clips"] == {"pieces": 6, "clips": len(m)}
    clip_settings, expected = summary["audio"]["clips"], {"enabled": True, "seconds": 2.0}
    assert clip_settings == expected
    # the silences left out are accounted for: clips + trimmed = the sources
    audio_total = summary["seconds"] + summary["trimmed_seconds"]  # audio seconds, not wall time
    assert audio_total == pytest.approx(45.6 + 5 * 11.4, abs=0.01)


def test_speech_corpora_are_prepared_as_before(tmp_path: Path):
    """clips.enabled auto is off for speech: one output per source, the same files and summary as
    with no dataset given (the pre-clips behaviour), no clip settings in the summary."""
    src = _long_source(tmp_path)
    short = tmp_path / "src" / "short.wav"
    sf.write(short, _piece()[: 8 * SR], SR, subtype="PCM_16")
    utts = [src, SourceUtterance("short", "spk", str(short))]
    audio = AudioParams(sample_rate=SR)
    a = P.prepare_corpus(utts, tmp_path / "a", audio, SplitParams(), workers=1, progress=False,
                         dataset="ljspeech")
    b = P.prepare_corpus(utts, tmp_path / "b", audio, SplitParams(), workers=1, progress=False)
    assert list(a.manifest["utt_id"]) == ["short"] and list(a.skipped["reason"]) == ["too_long"]
    for name in ("manifest.csv", "skipped.csv"):
        assert (tmp_path / "a" / name).read_text().replace("/a/", "/b/") == \
            (tmp_path / "b" / name).read_text()
    assert (tmp_path / "a/wavs/spk/short.wav").read_bytes() == (tmp_path / "b/wavs/spk/short.wav").read_bytes()
    summary = json.loads(a.summary_path.read_text())
    assert "clips" not in summary and "clips" not in summary["audio"]


def test_clip_knobs_are_validated_and_auto_follows_the_dataset():
    p = parse_params({"audio": {"clips": {"enabled": True, "seconds": 3}}})
    assert p.audio.clips.enabled is True
    for bad in ({"enabled": "sometimes"}, {"seconds": 0.1}):
        with pytest.raises(ConfigError, match="audio.clips"):
            parse_params({"audio": {"clips": bad}})
    auto = AudioParams()
    assert [P.clips_enabled(auto, n) for n in ("maestro", "demo_music", "ljspeech", "demo", "local")] == \
        [True, True, False, False, False]
    forced = AudioParams(clips={"enabled": True})
    assert P.clips_enabled(forced, "local") and not P.clips_enabled(AudioParams(clips={"enabled": False}), "maestro")
