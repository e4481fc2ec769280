"""Atomic file writes: write to a temporary file in the target's folder, fsync, then rename.

A reader (or a DVC stage that is killed mid-way) never sees a half-written file under the final name.
The temporary file is created like any new file (mode 0666 less the process umask, e.g. 0644 under
umask 022), so the result is as readable by others as a plain ``open(path, "w")`` would make it
(``tempfile.mkstemp`` would make every output 0600).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _create_temporary(target: Path, suffix: str) -> Path:
    """Create ``.<name>.tmp-<random><suffix>`` beside ``target`` exclusively, with the umask's mode."""
    for _ in range(100):
        candidate = target.parent / f".{target.name}.tmp-{secrets.token_hex(6)}{suffix}"
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"no free temporary name beside {target}")


@contextlib.contextmanager
def atomic_path(target: str | Path, suffix: str | None = None, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it is renamed onto ``target``.

    On an exception the temporary file is removed and ``target`` is left untouched.
    ``suffix`` defaults to the target's suffix so that libraries that infer the format from the
    file name (soundfile, numpy) still work.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = _create_temporary(target, target.suffix if suffix is None else suffix)
    try:
        yield tmp_path
        if fsync:
            with open(tmp_path, "rb+") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp_path, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_bytes(target: str | Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | Path, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: str | Path, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
