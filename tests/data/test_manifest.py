"""The one manifest reader: explicit column types, the missing columns named, the file named in every error."""

from __future__ import annotations

from pathlib import Path

import pytest

from ganpipe import evaluation, features, prepare
from ganpipe.manifest import MANIFEST_COLUMNS, ManifestError, read_manifest

HEADER = ",".join(MANIFEST_COLUMNS)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_types_are_explicit_ids_and_text_stay_strings(tmp_path: Path):
    path = _write(tmp_path / "manifest.csv", f"{HEADER}\n001,NA,wavs/NA/001.wav,1.5,22050,33075,train,src/001.flac,\n")
    row = read_manifest(path).iloc[0]
    assert list(read_manifest(path).columns) == MANIFEST_COLUMNS
    assert (row.utt_id, row.speaker, row.text) == ("001", "NA", "")
    assert isinstance(row.sample_rate.item(), int) and isinstance(row.num_samples.item(), int)
    assert row.duration == 1.5 and row.split == "train"


def test_a_missing_file_is_named(tmp_path: Path):
    with pytest.raises(ManifestError, match=f"manifest not found: {tmp_path / 'manifest.csv'}"):
        read_manifest(tmp_path / "manifest.csv")


def test_missing_columns_are_named_with_the_file(tmp_path: Path):
    path = _write(tmp_path / "manifest.csv", "utt_id,speaker\na,s\n")
    with pytest.raises(ManifestError, match=rf"{path}: missing column\(s\) \['path', 'split'\]"):
        read_manifest(path)
    # a reader that needs more says so; the default needs what every reader uses
    path = _write(tmp_path / "manifest.csv", "utt_id,path,split\na,wavs/a.wav,test\n")
    assert len(read_manifest(path)) == 1
    with pytest.raises(ManifestError, match=rf"{path}: missing column\(s\) \['speaker'\]"):
        read_manifest(path, required=("utt_id", "speaker", "path", "split"))


def test_a_value_that_is_not_of_its_column_type_names_the_file(tmp_path: Path):
    path = _write(tmp_path / "manifest.csv", f"{HEADER}\na,s,wavs/a.wav,1.0,fast,100,train,a.wav,\n")
    with pytest.raises(ManifestError, match=f"{path}: unreadable"):
        read_manifest(path)


def test_every_stage_reads_the_manifest_with_the_same_reader(tmp_path: Path):
    assert prepare.read_manifest is features.read_manifest is evaluation.read_manifest is read_manifest
    assert prepare.MANIFEST_COLUMNS is MANIFEST_COLUMNS
    # the evaluate stage names the speaker column it uses
    _write(tmp_path / "manifest.csv", "utt_id,path,split\na,wavs/a.wav,test\n")
    with pytest.raises(ManifestError, match="speaker"):
        evaluation.split_items(tmp_path, "test")
