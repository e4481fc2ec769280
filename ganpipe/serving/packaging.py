"""Model packaging: a trained generator as an MLflow pyfunc model folder — the loader
(:mod:`ganpipe.serving.pyfunc`), the generator file, the ONNX export checked against torch (the exporter,
session builder and tolerance of :mod:`ganpipe.serving.backends`), the ganpipe sources, the metadata and
input example of its kind. No MLflow store, no registration, no promotion (ganpipe/model_registry.py logs
and registers what this lays out).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganpipe.serving.backends import (
    DEFAULT_ATOL,
    _draws_noise,
    export_latent_onnx,
    export_onnx,
    onnx_session,
    reference_module,
)
from ganpipe.serving.pyfunc import LOADER_SOURCE, kind_metadata, model_metadata, signature_for

log = logging.getLogger("ganpipe.serving.packaging")

MODEL_ARTIFACT = {"vocoder": "vocoder", "unconditional": "generator"}  # the logged model's name in its run, by kind


def _pip_requirements(with_onnx: bool) -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for pkg in ["mlflow", "torch", "torchaudio", "numpy", "scipy"] + (["onnxruntime"] if with_onnx else []):
        try:
            reqs.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            reqs.append(pkg)
    return reqs


def export_checked_onnx(loaded: Any, path: Path) -> str | None:
    """Write the ONNX export and check it against torch on a fixed input; returns None on
    success, else why it was skipped. Vocoders: ``mel`` [+ ``speaker``] -> ``wav``; WaveGAN (a
    plain conv net): ``z`` [+ ``labels``] -> ``wav``. Not exported: vocoders that draw their own
    noise (no deterministic output to compare) and SpecGAN, whose audio is Griffin-Lim of its
    output, which the export would not contain."""
    import numpy as np
    import torch

    b = loaded.bundle
    if b.kind == "vocoder" and _draws_noise(loaded.generator):
        return f"{b.variant} draws its own noise: no deterministic export to compare"
    if not b.description.onnx_exportable:
        return (f"{b.variant}: its audio is rendered by Griffin-Lim after the network, which an ONNX "
                "export would not contain; serve it with backend torch")
    try:
        reference = reference_module(loaded.generator, "cpu")
        gen = torch.Generator().manual_seed(0)
        if b.kind == "vocoder":
            export = export_onnx
            inputs = {"mel": torch.randn(1, loaded.mel_config.n_mels, 24, generator=gen) - 4.0}
            if b.conditioning != "none":
                inputs["speaker"] = torch.zeros(1, dtype=torch.long)
        else:
            export = export_latent_onnx
            inputs = {"z": torch.rand(3, reference.latent_dim, generator=gen) * 2 - 1}
            if b.conditioning != "none":
                inputs["labels"] = torch.arange(3) % max(1, b.n_classes)
        export(loaded.generator, path)
        with torch.inference_mode():
            first, *cond = inputs  # the network input, then the conditioning by its keyword
            expected = reference(inputs[first], **{k: inputs[k] for k in cond}).numpy()
        feeds = {k: v.numpy() for k, v in inputs.items()}
        got = onnx_session(path).run(["wav"], feeds)[0]
        diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else float("inf")
        if not diff <= DEFAULT_ATOL:
            return f"ONNX output differs from torch by {diff:.3g} (> {DEFAULT_ATOL:g})"
    except Exception as exc:  # noqa: BLE001 - the export is optional; the reason is recorded
        return f"ONNX export failed: {type(exc).__name__}: {exc}"
    return None


def _copy_code(dest: Path) -> Path:
    """The ``ganpipe`` package (sources only) for the model's ``code_paths``."""
    import ganpipe

    target = dest / "ganpipe"
    shutil.copytree(Path(ganpipe.__file__).parent, target,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".*"))
    return target


@dataclass
class Package:
    """A model folder's parts, ready for ``mlflow.pyfunc.log_model``."""

    loader: Path  # the pyfunc loader script
    artifacts: dict[str, str]  # generator (+ onnx)
    code: Path  # the ganpipe sources (code_paths)
    metadata: dict[str, Any]  # format, variant, kind, kind-specific fields, onnx / onnx_skipped
    example: Any  # the input example (documents the request)
    description: str  # of the registered model
    signature: Any
    pip_requirements: list[str]
    artifact_name: str  # the logged model's name in its run


def package_model(folder: Path, gen_path: Path, loaded: Any, core: Any, with_onnx: bool,
                  with_int8: bool = False, project_dir: str | Path = ".") -> Package:
    """Lay out the pyfunc model of ``loaded`` under ``folder``: loader, generator file, the checked ONNX
    export (when ``with_onnx`` and one is possible), the ganpipe sources, the metadata of its kind."""
    loader = folder / "ganpipe_model.py"
    loader.write_text(LOADER_SOURCE)
    shutil.copy2(gen_path, folder / "generator.pt")  # the artifact keeps its file name
    artifacts = {"generator": str(folder / "generator.pt")}
    onnx_skipped = "registry.export_onnx is false"
    if with_onnx:
        onnx_skipped = export_checked_onnx(loaded, folder / "generator.onnx")
        if onnx_skipped is None:
            artifacts["onnx"] = str(folder / "generator.onnx")
        else:
            log.warning("no ONNX export in the model: %s", onnx_skipped)
    kind = loaded.bundle.kind
    _, example, description = kind_metadata(loaded, core)
    metadata = {**model_metadata(loaded, core), "onnx": "onnx" in artifacts,
                "onnx_skipped": None if "onnx" in artifacts else onnx_skipped}
    if with_int8:  # registry.export_int8 -> artifact onnx_int8 + metadata onnx_int8*
        from ganpipe.lowprec.registration import add_int8_export

        int8_artifacts, int8_meta = add_int8_export(folder, loaded, project_dir)
        artifacts.update(int8_artifacts)
        metadata.update(int8_meta)
    return Package(loader, artifacts, _copy_code(folder / "code"), metadata, example, description,
                   signature_for(kind), _pip_requirements("onnx" in artifacts or "onnx_int8" in artifacts),
                   MODEL_ARTIFACT[kind])
