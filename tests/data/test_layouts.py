"""discover(): the real LJSpeech sample, and tiny trees of real clips in each corpus layout."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
import soundfile as sf

from ganpipe.audio import read_audio
from ganpipe.datasets.layouts import LayoutError, discover, sanitize_id


def _put(src: Path, dst: Path) -> Path:
    """Copy a real clip to ``dst``, re-encoding when the extension asks for another format."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.suffix == ".wav":
        shutil.copyfile(src, dst)
    else:
        data, sr = sf.read(str(src), dtype="int16")
        sf.write(str(dst), data, sr)
    return dst


def _text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")


def _metadata(ljspeech_mini: Path) -> list[list[str]]:
    return [line.split("|") for line in
            (ljspeech_mini / "metadata.csv").read_text(encoding="utf-8").splitlines()]


# ---------------------------------------------------------------------------------------------
# ljspeech
# ---------------------------------------------------------------------------------------------
def test_ljspeech_from_corpus_folder_and_from_its_parent(ljspeech_mini: Path):
    rows = _metadata(ljspeech_mini)
    direct = discover("ljspeech", ljspeech_mini)
    assert discover("ljspeech", ljspeech_mini.parent) == direct
    assert len(direct) == 32 == len(rows)
    assert [u.utt_id for u in direct] == sorted(r[0] for r in rows)
    by_id = {r[0]: r for r in rows}
    for u in direct:
        assert u.speaker == "LJ"
        assert u.text == by_id[u.utt_id][2]
        assert Path(u.path) == ljspeech_mini / "wavs" / f"{u.utt_id}.wav"
    wav, sr = read_audio(direct[0].path)
    assert sr == 22050 and wav.size > sr // 2


def test_ljspeech_row_without_wav_is_kept_and_reported(tmp_path: Path, ljspeech_mini: Path,
                                                       caplog: pytest.LogCaptureFixture):
    rows = _metadata(ljspeech_mini)[:3]
    corpus = tmp_path / "LJSpeech-1.1"
    for row in rows[:2]:
        _put(ljspeech_mini / "wavs" / f"{row[0]}.wav", corpus / "wavs" / f"{row[0]}.wav")
    _put(ljspeech_mini / "wavs" / f"{rows[0][0]}.wav", corpus / "wavs" / "LJ999-0001.wav")
    (corpus / "metadata.csv").write_text("\n".join("|".join(r) for r in rows) + "\n",
                                         encoding="utf-8")
    with caplog.at_level(logging.WARNING, logger="ganpipe.datasets.layouts"):
        utts = discover("ljspeech", tmp_path)
    assert [u.utt_id for u in utts] == [r[0] for r in rows]
    assert not Path(utts[2].path).exists()
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert rows[2][0] in messages  # the missing wav is named
    assert "LJ999-0001" in messages  # and the wav without a metadata row too


def test_ljspeech_malformed_row_names_the_line(tmp_path: Path, lj_wavs: list[Path]):
    corpus = tmp_path / "LJSpeech-1.1"
    _put(lj_wavs[0], corpus / "wavs" / lj_wavs[0].name)
    (corpus / "metadata.csv").write_text(f"{lj_wavs[0].stem}|text|text\nbroken line\n")
    with pytest.raises(LayoutError, match=r"metadata.csv:2"):
        discover("ljspeech", corpus)


# ---------------------------------------------------------------------------------------------
# vctk, libritts, sc09, maestro
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("nested", [False, True])
def test_vctk_uses_mic1_and_txt(tmp_path: Path, lj_wavs: list[Path], nested: bool):
    corpus = tmp_path / "VCTK-Corpus-0.92" if nested else tmp_path
    audio = corpus / "wav48_silence_trimmed"
    _put(lj_wavs[0], audio / "p225" / "p225_001_mic1.flac")
    _put(lj_wavs[0], audio / "p225" / "p225_001_mic2.flac")
    _put(lj_wavs[1], audio / "p225" / "p225_002_mic1.flac")
    _put(lj_wavs[2], audio / "p315" / "p315_001_mic1.flac")  # p315 ships without transcripts
    _text(corpus / "txt" / "p225" / "p225_001.txt", "Please call Stella.")
    _text(corpus / "txt" / "p225" / "p225_002.txt", "Ask her to bring these things.")
    utts = discover("vctk", tmp_path)
    assert [(u.utt_id, u.speaker, u.text) for u in utts] == [
        ("p225_001", "p225", "Please call Stella."),
        ("p225_002", "p225", "Ask her to bring these things."),
        ("p315_001", "p315", ""),
    ]
    assert all(u.path.endswith("_mic1.flac") for u in utts)
    wav, sr = read_audio(utts[0].path)
    ref, _ = read_audio(lj_wavs[0])
    assert sr == 22050 and wav.shape == ref.shape


def test_libritts_collects_subsets_extracted_side_by_side(tmp_path: Path, lj_wavs: list[Path]):
    # Each subset archive unpacks to LibriTTS/<subset>/ inside its own extraction folder.
    a = tmp_path / "dev-clean" / "LibriTTS" / "dev-clean" / "84" / "121123"
    b = tmp_path / "test-clean" / "LibriTTS" / "test-clean" / "1089" / "134686"
    _put(lj_wavs[0], a / "84_121123_000007_000001.wav")
    _text(a / "84_121123_000007_000001.normalized.txt", "Go, do you hear?")
    _text(a / "84_121123_000007_000001.original.txt", "\"Go, do you hear?\"")
    _put(lj_wavs[1], b / "1089_134686_000001_000001.wav")
    _text(b / "1089_134686_000001_000001.normalized.txt", "He hoped there would be stew.")
    utts = discover("libritts", tmp_path)
    assert [(u.utt_id, u.speaker, u.text) for u in utts] == [
        ("1089_134686_000001_000001", "1089", "He hoped there would be stew."),
        ("84_121123_000007_000001", "84", "Go, do you hear?"),
    ]
    # Pointing at one subset's own folder works too.
    assert len(discover("libritts", tmp_path / "dev-clean" / "LibriTTS")) == 1


def test_sc09_label_is_the_digit_word(tmp_path: Path, lj_wavs: list[Path]):
    sc09 = tmp_path / "sc09"
    _put(lj_wavs[0], sc09 / "train" / "Zero_0a2b400e_nohash_0.wav")
    _put(lj_wavs[1], sc09 / "valid" / "One_0b09edd3_nohash_1.wav")
    _put(lj_wavs[2], sc09 / "test" / "Nine_00f0204f_nohash_2.wav")
    utts = discover("sc09", tmp_path)
    assert sorted((u.speaker, u.utt_id) for u in utts) == [
        ("nine", "Nine_00f0204f_nohash_2"), ("one", "One_0b09edd3_nohash_1"),
        ("zero", "Zero_0a2b400e_nohash_0")]
    assert all(u.text == u.speaker for u in utts)


def test_sc09_rejects_non_digit_words(tmp_path: Path, lj_wavs: list[Path]):
    _put(lj_wavs[0], tmp_path / "sc09" / "train" / "Zero_0a2b400e_nohash_0.wav")
    _put(lj_wavs[1], tmp_path / "sc09" / "train" / "Marvin_0a2b400e_nohash_0.wav")
    with pytest.raises(LayoutError, match="Marvin_0a2b400e_nohash_0.wav"):
        discover("sc09", tmp_path)


def test_maestro_year_folders(tmp_path: Path, lj_wavs: list[Path]):
    corpus = tmp_path / "maestro-v3.0.0"
    _text(corpus / "maestro-v3.0.0.csv", "canonical_composer,canonical_title,split,year")
    _put(lj_wavs[0], corpus / "2004" / "MIDI-Unprocessed_XP_01_R1_2004_01-02_ORIG_MID--AUDIO_01.wav")
    _put(lj_wavs[1], corpus / "2018" / "MIDI-Unprocessed_Chamber1_MID--AUDIO_07_R3_2018.wav")
    (corpus / "2018" / "MIDI-Unprocessed_Chamber1_MID--AUDIO_07_R3_2018.midi").write_bytes(b"MThd")
    utts = discover("maestro", tmp_path)
    assert [u.utt_id for u in utts] == [
        "2004__MIDI-Unprocessed_XP_01_R1_2004_01-02_ORIG_MID--AUDIO_01",
        "2018__MIDI-Unprocessed_Chamber1_MID--AUDIO_07_R3_2018"]
    assert {u.speaker for u in utts} == {"piano"}


# ---------------------------------------------------------------------------------------------
# local / demo
# ---------------------------------------------------------------------------------------------
@pytest.fixture()
def local_tree(tmp_path: Path, lj_wavs: list[Path]) -> Path:
    root = tmp_path / "my corpus"
    _put(lj_wavs[0], root / "alice" / "session 1" / "take(1).wav")
    _text(root / "alice" / "session 1" / "take(1).txt", "hello there")
    _put(lj_wavs[1], root / "bob" / "b1.flac")
    _put(lj_wavs[2], root / "loose.ogg")
    _put(lj_wavs[3], root / ".hidden.wav")
    _put(lj_wavs[4], root / ".cache" / "x.wav")
    _put(lj_wavs[5], root / "bob" / ".trash" / "y.wav")
    _text(root / "bob" / "notes.txt", "not audio")
    return root


def test_local_speakers_from_subfolders(local_tree: Path):
    utts = discover("local", local_tree)
    assert [(u.utt_id, u.speaker, u.text) for u in utts] == [
        ("alice__session_1__take_1_", "alice", "hello there"),
        ("bob__b1", "bob", ""),
        ("loose", "default", ""),
    ]
    for u in utts:
        wav, sr = read_audio(u.path)
        assert sr == 22050 and wav.size > 0


def test_local_without_speaker_folders(local_tree: Path):
    utts = discover("local", local_tree, speaker_from_subfolder=False)
    assert {u.speaker for u in utts} == {"default"}
    assert len(utts) == 3


def test_demo_uses_the_folder_layout(local_tree: Path):
    assert discover("demo", local_tree) == discover("local", local_tree)


def test_local_duplicate_ids_are_named(tmp_path: Path, lj_wavs: list[Path]):
    _put(lj_wavs[0], tmp_path / "spk" / "a.wav")
    _put(lj_wavs[1], tmp_path / "spk" / "a.flac")
    _put(lj_wavs[2], tmp_path / "spk" / "b c.wav")
    _put(lj_wavs[3], tmp_path / "spk" / "b_c.wav")
    with pytest.raises(LayoutError) as info:
        discover("local", tmp_path)
    msg = str(info.value)
    assert "2 duplicate" in msg and "spk__a" in msg and "spk__b_c" in msg
    assert "a.flac" in msg and "a.wav" in msg


def test_sanitize_id():
    assert sanitize_id("spk/é t(1)") == "spk___t_1_"
    assert sanitize_id("LJ001-0001.v2") == "LJ001-0001.v2"
    assert sanitize_id("-x") == "_-x"


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_unknown_layout_and_missing_folders(tmp_path: Path):
    with pytest.raises(LayoutError, match="unknown dataset layout 'timit'"):
        discover("timit", tmp_path)
    with pytest.raises(LayoutError, match="not found"):
        discover("local", tmp_path / "nope")
    with pytest.raises(LayoutError, match="no vctk corpus found"):
        discover("vctk", tmp_path)
    with pytest.raises(LayoutError, match="no audio files"):
        discover("local", tmp_path)


def test_demo_corpus_from_the_generator(tmp_path: Path):
    from ganpipe.config import DemoParams
    from ganpipe.datasets import demo

    params = DemoParams(n_speakers=2, utterances_per_speaker=2, min_seconds=0.5, max_seconds=0.6)
    paths = demo.generate(tmp_path, params)
    utts = discover("demo", tmp_path)
    assert sorted(Path(u.path) for u in utts) == sorted(paths)
    assert {u.speaker for u in utts} == {p.parent.name for p in paths}
    assert len({u.speaker for u in utts}) == 2


def test_libritts_archives_extracted_per_subset_are_all_discovered(tmp_path: Path,
                                                                   lj_wavs: list[Path]):
    """The intended flow: each subset archive goes to raw/libritts/<archive stem>."""
    import tarfile

    from ganpipe.datasets.extract import safe_extract
    from ganpipe.datasets.corpora import archives_for

    raw = tmp_path / "raw" / "libritts"
    for i, spec in enumerate(archives_for("libritts", ("dev-clean", "test-other"))):
        src = tmp_path / "src" / spec.stem
        chapter = src / "LibriTTS" / spec.stem / f"{100 + i}" / "2000"
        _put(lj_wavs[i], chapter / f"{100 + i}_2000_000001_000000.wav")
        _text(chapter / f"{100 + i}_2000_000001_000000.normalized.txt", f"text {i}")
        archive = tmp_path / spec.filename
        with tarfile.open(archive, "w:gz") as tf:
            tf.add(src / "LibriTTS", arcname=spec.extracted_root)
        safe_extract(archive, raw / spec.stem)
    utts = discover("libritts", raw)
    assert [(u.utt_id, u.speaker, u.text) for u in utts] == [
        ("100_2000_000001_000000", "100", "text 0"), ("101_2000_000001_000000", "101", "text 1")]
