"""File hashes: one streaming implementation gives hashlib's digest for every algorithm the project uses."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from ganpipe import digest, mlflow_store
from ganpipe.datasets import inventory


@pytest.fixture()
def blob(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, bytes]:
    monkeypatch.setattr(digest, "READ_BLOCK", 1000)  # several blocks and a short last one
    data = bytes(range(256)) * 30
    path = tmp_path / "blob.bin"
    path.write_bytes(data)
    return path, data


def test_file_digest_is_hashlibs_over_the_whole_file(blob: tuple[Path, bytes]):
    path, data = blob
    assert digest.file_digest(path) == hashlib.sha256(data).hexdigest()
    assert digest.file_digest(path, "md5") == hashlib.md5(data).hexdigest()
    assert digest.file_digest(path, "blake2b", 16) == hashlib.blake2b(data, digest_size=16).hexdigest()
    assert digest.file_sha256(path) == hashlib.sha256(data).hexdigest()


def test_hash_into_feeds_every_hasher_and_counts_the_bytes(blob: tuple[Path, bytes]):
    path, data = blob
    md5, sha = hashlib.md5(), hashlib.sha256()
    assert digest.hash_into(path, md5, None, sha) == len(data)
    assert (md5.hexdigest(), sha.hexdigest()) == (hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest())


def test_the_store_and_the_inventory_use_it(blob: tuple[Path, bytes]):
    path, data = blob
    assert mlflow_store.file_sha256 is digest.file_sha256
    wav = path.with_suffix(".wav")  # the inventory lists audio files by extension; it does not decode them
    path.rename(wav)
    (entry,), hashed = inventory.inventory(wav.parent)
    assert hashed == 1 and entry.digest == hashlib.blake2b(data, digest_size=16).hexdigest()
