"""Hashes of files, read in blocks: the one place that streams a file into a hashlib object.

Used for a download's checksum (:mod:`ganpipe.datasets.download`), a local corpus' content
identity (:mod:`ganpipe.datasets.inventory`) and a generator file's sha256 (:func:`file_sha256`:
the registry and the MLflow store check a fetched model against it).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

READ_BLOCK = 1 << 22  # 4 MiB: large enough that hashing, not the reads, sets the pace


def new_hasher(algo: str, digest_size: int | None = None) -> Any:
    """``hashlib.new(algo)``; ``digest_size`` for the BLAKE2 hashes (e.g. 16: blake2b-128)."""
    return hashlib.new(algo) if digest_size is None else hashlib.new(algo, digest_size=digest_size)


def hash_into(path: str | Path, *hashers: Any) -> int:
    """Feed the bytes of ``path`` to every hasher (``None`` entries skipped); returns the bytes read."""
    live = [h for h in hashers if h is not None]
    n = 0
    with open(path, "rb") as fh:
        while block := fh.read(READ_BLOCK):
            for h in live:
                h.update(block)
            n += len(block)
    return n


def file_digest(path: str | Path, algo: str = "sha256", digest_size: int | None = None) -> str:
    """The hex digest of ``path``'s bytes under ``algo`` (any name ``hashlib.new`` knows)."""
    h = new_hasher(algo, digest_size)
    hash_into(path, h)
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """The sha256 of ``path``'s bytes, hex."""
    return file_digest(path, "sha256")
