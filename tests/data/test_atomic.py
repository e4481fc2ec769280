"""Atomic writes make files as readable as a plain write would: mode 0666 less the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from ganpipe.atomic import atomic_path, write_json, write_text
from ganpipe.audio import write_audio


@pytest.fixture(params=[0o022, 0o027, 0o002], ids=oct)
def umask(request):
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_atomic_write_respects_the_umask(tmp_path: Path, umask: int):
    want = 0o666 & ~umask
    write_text(tmp_path / "a.txt", "x")
    write_json(tmp_path / "sub" / "m.json", {"a": 1})
    with atomic_path(tmp_path / "x.npy") as tmp:
        np.save(tmp, np.zeros(3))
    write_audio(tmp_path / "out.wav", np.zeros(256, dtype=np.float32), 22050)
    for name in ("a.txt", "sub/m.json", "x.npy", "out.wav"):
        assert mode(tmp_path / name) == want, f"{name}: {oct(mode(tmp_path / name))} != {oct(want)}"
    assert not list(tmp_path.rglob(".*.tmp-*"))  # no temporary left behind


def test_failed_write_leaves_target_and_no_temporary(tmp_path: Path):
    target = tmp_path / "keep.txt"
    write_text(target, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and not list(tmp_path.glob(".*.tmp-*"))
