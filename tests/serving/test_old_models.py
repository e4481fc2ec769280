"""A model registered before ganpipe/serving.py became the ganpipe.serving package still loads and
predicts: its loader file does ``from ganpipe.serving import GanGeneratorModel`` and, in a process that
already imported this ganpipe, resolves to this code (MLflow puts the model's own ganpipe copy on
sys.path, but an imported package is not imported again)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT
from tests.support.registry_project import MODEL, eval_json, make_generator, make_project, mlflow_template

# The last commit with the old layout (ganpipe/serving.py, ganpipe/synthesis.py, ganpipe/packaging.py, ...).
OLD_COMMIT = "e41d056"

# LOADER_SOURCE of that commit, verbatim: the file every model registered by it runs at load time.
OLD_LOADER_SOURCE = '''"""ganpipe generator: MLflow models-from-code entry point (see ganpipe/serving.py)."""
import mlflow

from ganpipe.serving import GanGeneratorModel

mlflow.models.set_model(GanGeneratorModel())
'''

_REGISTER = """
import sys
from pathlib import Path

import ganpipe
from ganpipe.config import load_params
from ganpipe.model_registry import register_generator

root = Path(sys.argv[1])
assert (Path(ganpipe.__file__).parent / "serving.py").is_file(), ganpipe.__file__  # the old layout
reg = register_generator(root / "g.pt", root / "e.json", load_params(root / "params.yaml"), root)
print(reg.decision)
"""


def _old_sources(dest: Path) -> Path:
    """The ganpipe package of OLD_COMMIT under ``dest`` (skip when this checkout lacks the commit)."""
    if shutil.which("git") is None:
        pytest.skip("git not available")
    found = subprocess.run(["git", "-C", str(REPO_ROOT), "cat-file", "-e", f"{OLD_COMMIT}^{{commit}}"],
                           capture_output=True)
    if found.returncode:
        pytest.skip(f"commit {OLD_COMMIT} not in this checkout (shallow clone?)")
    archive = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", OLD_COMMIT, "ganpipe"], capture_output=True,
                             check=True).stdout
    dest.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest


def test_the_old_loader_text_is_what_the_old_commit_wrote():
    """OLD_LOADER_SOURCE is the old commit's LOADER_SOURCE (when the checkout has the commit)."""
    shown = subprocess.run(["git", "-C", str(REPO_ROOT), "show", f"{OLD_COMMIT}:ganpipe/serving.py"],
                           capture_output=True, text=True)
    if shown.returncode:
        pytest.skip(f"commit {OLD_COMMIT} not in this checkout")
    assert f"LOADER_SOURCE = '''{OLD_LOADER_SOURCE}'''" in shown.stdout


@pytest.mark.slow
def _as_old_params(path: Path) -> None:
    """Keep only the params.yaml sections and keys OLD_COMMIT knew (its configuration refuses the others)."""
    import yaml

    old = yaml.safe_load(subprocess.run(["git", "-C", str(REPO_ROOT), "show", f"{OLD_COMMIT}:params.yaml"],
                                        capture_output=True, text=True, check=True).stdout)
    data = yaml.safe_load(path.read_text())
    kept = {name: ({k: v for k, v in section.items() if k in old[name]} if isinstance(section, dict) else section)
            for name, section in data.items() if name in old}
    path.write_text(yaml.safe_dump(kept, sort_keys=False))


def test_a_model_registered_by_the_old_code_loads_and_predicts(tmp_path_factory, lj_wavs):
    import mlflow
    import soundfile as sf

    from ganpipe.synthesis import load_vocoder

    old = _old_sources(tmp_path_factory.mktemp("old") / "src")
    root = tmp_path_factory.mktemp("old-registered") / "proj"
    make_project(root, mlflow_template(tmp_path_factory))
    _as_old_params(root / "params.yaml")
    make_generator(root / "g.pt", seed=11)
    eval_json(root / "e.json", mcd=7.0)
    env = {**os.environ, "PYTHONPATH": str(old)}
    done = subprocess.run([sys.executable, "-c", _REGISTER, str(root)], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "champion"
    loaders = list((root / ".mlflow" / "artifacts").rglob("ganpipe_model.py"))
    assert [p.read_text() for p in loaders] == [OLD_LOADER_SOURCE]  # registered as the old code did

    uri = f"sqlite:///{root / '.mlflow' / 'mlflow.db'}"
    wav, sr = sf.read(lj_wavs[0], dtype="float32")
    wav = wav[: sr]
    voc = load_vocoder(f"models:/{MODEL}@champion", tracking_uri=uri)  # this code, the old model folder
    assert type(voc.model.unwrap_python_model()).__module__ == "ganpipe.serving.pyfunc"
    mel = voc.compute_mel(wav, sr)
    audio = voc.mel_to_audio(mel)
    assert audio.shape == (mel.shape[1] * 256,) and np.isfinite(audio).all() and np.abs(audio).max() > 0
    np.testing.assert_allclose(voc.copy_synthesis(wav, sr), audio, atol=1e-5)
    mlflow.set_tracking_uri(uri)
    served = mlflow.pyfunc.load_model(f"models:/{MODEL}@champion").predict(mel[None])
    np.testing.assert_allclose(served[0, 0], audio, atol=1e-5)


def test_a_model_folder_with_the_old_loader_loads(tmp_path):
    """Without git history: a model folder whose loader is the old text, saved the way the registry
    saves it, loads and predicts through the alias ganpipe.serving.GanGeneratorModel."""
    import mlflow

    from ganpipe.generator_io import load_generator
    from ganpipe.serving.cores import make_core
    from ganpipe.serving.packaging import package_model
    from ganpipe.synthesis import load_vocoder

    gen = make_generator(tmp_path / "g.pt", seed=12)
    loaded = load_generator(gen)
    (tmp_path / "pkg").mkdir()
    package = package_model(tmp_path / "pkg", gen, loaded, make_core(loaded), with_onnx=False)
    package.loader.write_text(OLD_LOADER_SOURCE)
    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=str(package.loader), artifacts=package.artifacts,
                             code_paths=[str(package.code)], signature=package.signature, metadata=package.metadata,
                             pip_requirements=package.pip_requirements, input_example=package.example)
    mel = np.full((80, 12), -4.0, np.float32)
    voc = load_vocoder(str(tmp_path / "model"))
    assert voc.mel_to_audio(mel, warn_range=False).shape == (12 * 256,)
