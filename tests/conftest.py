from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
LJSPEECH_MINI = REPO_ROOT.parent / "shared" / "data" / "ljspeech-mini" / "LJSpeech-1.1"


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """Intra-op threads spin-wait: on a shared 2-core machine one thread is faster and steadier."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def ljspeech_mini() -> Path:
    """The 32-clip LJSpeech sample that lives beside the repo (never copied into it)."""
    if not (LJSPEECH_MINI / "metadata.csv").is_file():
        pytest.skip(f"real-speech sample not found at {LJSPEECH_MINI} (expected ../shared beside the repo)")
    return LJSPEECH_MINI


@pytest.fixture(scope="session")
def lj_wavs(ljspeech_mini: Path) -> list[Path]:
    return sorted((ljspeech_mini / "wavs").glob("LJ*.wav"))


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect server (sqlite) for all flow tests of the session."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


def write_params(path: Path, overrides: dict) -> Path:
    """params.yaml = the repo's params with nested ``overrides`` applied."""
    import yaml

    data = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())

    def merge(base: dict, extra: dict) -> None:
        for key, value in extra.items():
            if isinstance(value, dict) and isinstance(base.get(key), dict):
                merge(base[key], value)
            else:
                base[key] = value

    merge(data, overrides)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path
