"""The GPU kit (benchmarks/gpu) cannot rot: its entry point runs here in its no-CUDA dry
mode, and the code it needs on the GPU machine imports and trains without MLflow, Prefect and DVC
(which the kit does not carry there)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

from tests.conftest import REPO_ROOT, missing_shared

# Run first in a subprocess: every import of mlflow, prefect or dvc (and their submodules) fails.
BLOCK_TRACKING = textwrap.dedent("""
    import sys

    class _NoTracking:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("mlflow", "prefect", "dvc"):
                raise ImportError(f"{name} is blocked: the GPU kit does not carry it")
            return None

    sys.meta_path.insert(0, _NoTracking())
""")

TRAIN_WITHOUT_TRACKING = BLOCK_TRACKING + textwrap.dedent("""
    import importlib
    from pathlib import Path

    for name in ("ganpipe.training.trainer", "ganpipe.training.tracking", "ganpipe.features", "ganpipe.serving.backends",
                 "ganpipe.prepare", "ganpipe.evaluation", "ganpipe.datasets.demo", "ganpipe.generator_io"):
        importlib.import_module(name)

    from ganpipe.config import parse_params
    from ganpipe.serving.backends import prepare_for_inference
    from ganpipe.models import TINY_OVERRIDES
    from ganpipe.training.trainer import TrainPaths, Trainer

    prepared, features, out = (Path(a) for a in sys.argv[1:4])
    params = parse_params({"model": {"variant": "hifigan_v3", "overrides": TINY_OVERRIDES["hifigan_v3"]},
                           "train": {"steps": 2, "batch_size": 2, "segment_samples": 2048, "num_workers": 0,
                                     "device": "cpu", "validate_every": 1000, "checkpoint_every": 1000},
                           "tracking": {"enabled": False}})
    trainer = Trainer(params, TrainPaths(prepared=prepared, features=features, checkpoints=out / "ck",
                                         generator=out / "g.pt", metrics=out / "m.json", curve=out / "c.csv"),
                      progress=False)
    metrics = trainer.run()
    import torch

    wav = prepare_for_inference(trainer.G, backend="torch")(trainer.mel_fn(0.1 * torch.randn(4096))[None])
    print("steps", metrics["steps"], "wav", tuple(wav.shape))
    assert not [m for m in sys.modules if m.split(".")[0] in ("mlflow", "prefect", "dvc")]
""")


def test_blocker_blocks():
    """The blocker itself: an import of mlflow fails under it (else the tests below prove nothing)."""
    proc = subprocess.run([sys.executable, "-c", BLOCK_TRACKING + "import mlflow"], capture_output=True, text=True,
                          cwd=REPO_ROOT)
    assert proc.returncode != 0 and "mlflow is blocked" in proc.stderr


@pytest.mark.slow  # a training subprocess (2 steps): ~10 s of imports and validation
def test_training_features_inference_need_no_tracking_packages(demo_corpus, tmp_path):
    proc = subprocess.run([sys.executable, "-c", TRAIN_WITHOUT_TRACKING, str(demo_corpus.prepared),
                           str(demo_corpus.features), str(tmp_path)], capture_output=True, text=True, cwd=REPO_ROOT,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "steps 2 wav (1, 1, 4096)" in proc.stdout
    assert json.loads((tmp_path / "m.json").read_text())["steps"] == 2


@pytest.mark.slow  # the kit's sections in a subprocess (tiny sizes: ~30 s on a quiet 2-core VM)
def test_kit_dry_run_reaches_every_section_without_cuda_or_tracking(tmp_path):
    """What the GPU machine runs, in its dry mode (no CUDA, tiny sizes), with MLflow, Prefect and DVC
    blocked: every section ends ok or skipped-with-a-reason, none failed."""
    kit = REPO_ROOT / "benchmarks" / "gpu" / "kit.py"
    code = BLOCK_TRACKING + f"import runpy; sys.argv = ['kit.py', '--mode', 'dry', '--out', {str(tmp_path)!r}]\n" \
        f"runpy.run_path({str(kit)!r}, run_name='__main__')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, timeout=900,
                          env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = json.loads((tmp_path / "kit.json").read_text())
    sections = results["sections"]
    assert list(sections) == ["environment", "cuda_tests", "train_throughput", "inference", "end_to_end"]
    assert {s["status"] for s in sections.values()} <= {"ok", "skipped"}, sections
    assert sections["cuda_tests"]["skipped"].startswith("dry mode")
    configs = sections["train_throughput"]["configs"]
    for name in ("reference fp32 (jik876)", "ours fp32", "ours bf16"):
        assert configs[name]["steps_per_s"] > 0 and 0 <= configs[name]["data_wait_fraction"] <= 1, name
    assert configs["ours bf16 + compile"]["skipped"].startswith("no CUDA")
    rows = sections["inference"]["rows"]
    assert {(r["variant"], r["precision"]) for r in rows} == {(v, p) for v in ("hifigan_v1", "hifigan_v3")
                                                              for p in ("fp32", "bf16")}
    assert all(r["x_real_time"] > 0 for r in rows)
    e2e = sections["end_to_end"]
    assert e2e["train"]["steps"] == 2 and e2e["evaluate"]["utterances"] + e2e["evaluate"]["skipped"] == 1
    stages_timed = set(e2e["stage_seconds"])  # which stages the kit timed (not how long they took)
    assert stages_timed >= {"prepare", "features", "evaluate"}
    assert "SKIPPED" in (tmp_path / "kit.log").read_text()  # the skipped parts say so in the log


@pytest.mark.parametrize("variant,published", [("hifigan_v1", "config_v1.json"), ("hifigan_v3", "config_v3.json")])
def test_kit_reference_config_matches_the_published_one(variant, published):
    """The kit builds jik876's config from our variant, mel and recipe (../shared does not travel to
    the GPU machine): every key it sets equals the published file's."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks" / "gpu"))
    try:
        from kit import jik876_config
    finally:
        sys.path.pop(0)
    from ganpipe.config import parse_params
    from ganpipe.training.recipes import resolve

    path = REPO_ROOT.parent / "shared" / "reference" / "hifi-gan" / published
    if not path.is_file():
        missing_shared(f"published reference config not found at {path}")
    params = parse_params({"model": {"variant": variant}, "train": {"batch_size": 16}})
    trainer = SimpleNamespace(recipe=resolve(variant, params.train), mel_config=params.mel_config())
    ours = dict(jik876_config(variant, trainer))
    reference = json.loads(path.read_text())
    assert {k: reference[k] for k in ours} == ours
