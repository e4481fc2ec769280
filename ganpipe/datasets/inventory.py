"""Content identity of a ``local`` corpus folder: one hash per audio file, and one for the whole.

The download stage records it in ``data/raw/local/`` so that editing a file (even keeping its size)
changes the stage's output and re-runs prepare. Hashing a large corpus takes a while (BLAKE2b at
about 1 GB/s of page-cached data), so hashes are kept in a cache file keyed by each file's path,
size, modification and change times and inode: a run over an unchanged corpus only ``stat``s the
files.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from ganpipe.atomic import write_text
from ganpipe.audio import AUDIO_EXTENSIONS
from ganpipe.digest import file_digest, new_hasher

log = logging.getLogger(__name__)

HASH_NAME = "blake2b-128"
_HASH_ALGO, _HASH_BYTES = "blake2b", 16  # HASH_NAME for hashlib


@dataclass(frozen=True)
class FileEntry:
    path: str  # relative to the corpus folder, POSIX separators
    size: int
    digest: str


def audio_files(folder: Path) -> list[Path]:
    """Every audio file below ``folder`` (hidden files and folders included: the layout decides
    what to use; the identity covers all that could be used), sorted."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def _stat_key(st: os.stat_result) -> list[int]:
    return [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]


def _load_cache(cache_file: Path | None) -> dict[str, list]:
    if cache_file is None or not cache_file.is_file():
        return {}
    try:
        data = json.loads(cache_file.read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable hash cache, hashing again (%s)", cache_file, exc)
        return {}
    return data.get("files", {}) if data.get("hash") == HASH_NAME else {}


def inventory(folder: Path, cache_file: Path | None = None) -> tuple[list[FileEntry], int]:
    """``(entries, hashed)``: one entry per audio file below ``folder`` and how many files had to
    be read (the others' hashes came from ``cache_file``, which is then rewritten)."""
    folder = Path(folder).resolve()
    cache = _load_cache(cache_file)
    fresh: dict[str, list] = {}
    entries: list[FileEntry] = []
    hashed = 0
    for path in audio_files(folder):
        st = path.stat()
        key = _stat_key(st)
        cached = cache.get(str(path))
        if cached is not None and cached[:-1] == key:
            digest = cached[-1]
        else:
            digest = file_digest(path, _HASH_ALGO, _HASH_BYTES)
            hashed += 1
        fresh[str(path)] = [*key, digest]
        entries.append(FileEntry(path.relative_to(folder).as_posix(), st.st_size, digest))
    if cache_file is not None and (hashed or fresh.keys() != cache.keys()):
        # entries of other folders are kept: one cache serves every local corpus of the project
        others = {k: v for k, v in cache.items() if not k.startswith(str(folder) + os.sep)}
        write_text(cache_file, json.dumps({"hash": HASH_NAME, "files": {**others, **fresh}}))
    return entries, hashed


def corpus_digest(entries: list[FileEntry]) -> str:
    """One hash over every file's relative path and content hash."""
    h = new_hasher(_HASH_ALGO, _HASH_BYTES)
    for e in entries:
        h.update(f"{e.path}\t{e.digest}\n".encode())
    return h.hexdigest()


def write_listing(path: Path, entries: list[FileEntry]) -> None:
    """``path``: a TSV of path, size and content hash per file (atomically)."""
    lines = ["path\tsize\t" + HASH_NAME] + [f"{e.path}\t{e.size}\t{e.digest}" for e in entries]
    write_text(path, "\n".join(lines) + "\n")
