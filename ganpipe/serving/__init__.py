"""Everything that uses a trained generator, layered bottom-up (each module imports only those before it):

* :mod:`.contract` -- formats, request vocabulary (``SERVED_BACKENDS``, ``MAX_CLIPS``), errors, the mel contract
* :mod:`.rules`    -- the rules of a synthesis request (mel/wav, .npy, sample rate, minimum length)
* :mod:`.backends` -- torch reference module, ONNX export, the ONNX Runtime session, fast vocoder paths
* :mod:`.cores`    -- the served logic of each kind (vocoder, unconditional), without MLflow
* :mod:`.pyfunc`   -- the MLflow pyfunc model, its signature and metadata, the loader file (``LOADER_SOURCE``)
* :mod:`.packaging` -- the pyfunc model folder that ganpipe/model_registry.py logs
* :mod:`.model`    -- a loaded model (registered, hash-checked, or a generator file): Vocoder, UnconditionalGenerator
* :mod:`.api`      -- the public Python API (``ganpipe.synthesis`` re-exports it)

Names are resolved lazily (importing ``ganpipe.serving.backends`` does not import MLflow). Models
registered before this package existed run a loader that does ``from ganpipe.serving import
GanGeneratorModel`` (or ``GanVocoderModel``): those names stay here.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pyfunc import LOADER_SOURCE, GanGeneratorModel, GanVocoderModel

_LAZY = {"GanGeneratorModel": ".pyfunc", "GanVocoderModel": ".pyfunc", "LOADER_SOURCE": ".pyfunc"}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


__all__ = ["GanGeneratorModel", "GanVocoderModel", "LOADER_SOURCE"]
