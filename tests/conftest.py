from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LJSPEECH_MINI = REPO_ROOT.parent / "shared" / "data" / "ljspeech-mini" / "LJSpeech-1.1"


@pytest.fixture(scope="session")
def ljspeech_mini() -> Path:
    """The 32-clip LJSpeech sample that lives beside the repo (never copied into it)."""
    if not (LJSPEECH_MINI / "metadata.csv").is_file():
        pytest.skip(f"real-speech sample not found at {LJSPEECH_MINI} (expected ../shared beside the repo)")
    return LJSPEECH_MINI


@pytest.fixture(scope="session")
def lj_wavs(ljspeech_mini: Path) -> list[Path]:
    return sorted((ljspeech_mini / "wavs").glob("LJ*.wav"))
