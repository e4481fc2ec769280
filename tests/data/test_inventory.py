"""Content identity of a local corpus: an edit that keeps the size changes it; an
unchanged corpus is not read again."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from ganpipe.datasets.inventory import corpus_digest, inventory


def _corpus(root: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        p = root / f"spk{i % 2}" / f"u{i}.wav"
        p.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(p), rng.uniform(-0.5, 0.5, 4000), 16000, subtype="PCM_16")
        paths.append(p)
    (root / "notes.txt").write_text("not audio")
    return paths


def test_same_size_edit_changes_the_identity_and_unchanged_files_are_not_reread(tmp_path):
    paths = _corpus(tmp_path / "c")
    cache = tmp_path / "cache" / "hashes.json"
    entries, hashed = inventory(tmp_path / "c", cache)
    assert [e.path for e in entries] == ["spk0/u0.wav", "spk0/u2.wav", "spk1/u1.wav"] and hashed == 3
    before = corpus_digest(entries)

    again, hashed = inventory(tmp_path / "c", cache)
    assert hashed == 0 and corpus_digest(again) == before  # a no-op run only stats the files

    st = paths[1].stat()
    with sf.SoundFile(str(paths[1]), "r+") as fh:  # in place, same size, same mtime
        fh.seek(0)
        fh.write(np.zeros(100, dtype=np.int16))
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert paths[1].stat().st_size == st.st_size and paths[1].stat().st_mtime_ns == st.st_mtime_ns
    edited, hashed = inventory(tmp_path / "c", cache)
    assert hashed == 1  # the change time gives it away even with the old mtime
    assert corpus_digest(edited) != before
    assert [e.digest for e in edited if e.path != "spk1/u1.wav"] == [e.digest for e in entries if e.path != "spk1/u1.wav"]
    assert json.loads(cache.read_text())["hash"] == "blake2b-128"


def test_a_corrupt_hash_cache_is_ignored(tmp_path):
    _corpus(tmp_path / "c")
    cache = tmp_path / "hashes.json"
    cache.write_text("{not json")
    entries, hashed = inventory(tmp_path / "c", cache)
    assert hashed == 3 and len(entries) == 3
    assert inventory(tmp_path / "c", cache)[1] == 0
