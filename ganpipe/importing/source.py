"""What every source format shares: the error, reading a foreign file safely, the result of a read.

A format module (:mod:`.jik876`, :mod:`.toolkit`) turns a published checkpoint and its config into
an :class:`ImportedModel`: a built ganpipe bundle with the weights loaded, the mel configuration
and statistics the model was trained with, and where it came from. Nothing here writes files.
"""

from __future__ import annotations

import json
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganpipe.mel import MelConfig


class ImportModelError(ValueError):
    """A published checkpoint that cannot be imported; the message names the file (and the layer)."""


@dataclass
class ImportedModel:
    """A foreign checkpoint as a ganpipe model (see :func:`ganpipe.importing.import_model`)."""

    bundle: Any  # ganpipe.models.ModelBundle, generator (and discriminators when imported) loaded
    mel: MelConfig
    stats: dict[str, np.ndarray]  # "mean", "std" of the (un-normalised) log-mel, shape (n_mels,)
    source: dict[str, Any]  # {"format", "file", "sha256", "steps"}
    discriminators: bool  # whether the discriminators' weights were imported too
    notes: list[str] = field(default_factory=list)  # what was not imported, and why


def require_file(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ImportModelError(f"{path}: {what} not found")
    return path


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def load_checkpoint(path: Path, what: str) -> dict[str, Any]:
    """``torch.load(path, weights_only=True)``; a file that needs more (code in the pickle), a
    truncated or non-PyTorch file, or one that is not a dict, raises :class:`ImportModelError`."""
    require_file(path, what)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        needs_code = [ln for ln in lines if "unsupported global" in ln.lower()]
        if not needs_code:  # e.g. "Unsupported operand": not a pickle of a checkpoint at all
            detail = next((ln for ln in lines if ln.lower().startswith("unsupported")), _first_line(exc))
            raise ImportModelError(f"{path}: not a readable PyTorch {what} (truncated, or another kind of file): "
                                   f"{detail}") from None
        first = needs_code[0]
        raise ImportModelError(
            f"{path}: refused: loading this {what} would run code from the file (torch.load weights_only=True "
            f"allows only tensors and plain containers): {first}") from None
    except Exception as exc:  # noqa: BLE001 - torch.load fails on garbage in many ways (EOFError, IndexError, ...)
        raise ImportModelError(f"{path}: not a readable PyTorch {what} (truncated, or another kind of file): "
                               f"{_first_line(exc)}") from None
    if not isinstance(obj, dict):
        raise ImportModelError(f"{path}: not a {what}: it holds a {type(obj).__name__}, not a dict")
    return obj


def state_dict_in(obj: dict[str, Any], keys: tuple[str, ...], path: Path, what: str) -> dict[str, torch.Tensor]:
    """``obj[keys[0]][keys[1]]...``: a state dict of tensors, or :class:`ImportModelError` naming what is there."""
    node: Any = obj
    for depth, key in enumerate(keys):
        if not isinstance(node, dict) or key not in node:
            have = sorted(map(str, node)) if isinstance(node, dict) else type(node).__name__
            where = "".join(f"[{k!r}]" for k in keys[:depth])
            raise ImportModelError(f"{path}: not a {what}: no {key!r} entry{' in ' + where if where else ''} "
                                   f"(it has {have})")
        node = node[key]
    if not isinstance(node, dict) or not all(isinstance(v, torch.Tensor) for v in node.values()):
        raise ImportModelError(f"{path}: {''.join(f'[{k!r}]' for k in keys)} is not a state dict of tensors")
    return node


def read_json(path: Path, what: str) -> dict[str, Any]:
    require_file(path, what)
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImportModelError(f"{path}: not a JSON {what}: {exc}") from None
    if not isinstance(data, dict):
        raise ImportModelError(f"{path}: not a {what}: a JSON {type(data).__name__}, not an object")
    return data


def read_yaml(path: Path, what: str) -> dict[str, Any]:
    import yaml

    require_file(path, what)
    try:
        data = yaml.safe_load(path.read_text())
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ImportModelError(f"{path}: not a YAML {what}: {exc}") from None
    if not isinstance(data, dict):
        raise ImportModelError(f"{path}: not a {what}: YAML {type(data).__name__}, not a mapping")
    return data


def config_value(config: dict[str, Any], key: str, path: Path, where: str = "") -> Any:
    if key not in config:
        raise ImportModelError(f"{path}: {where}{key!r} is missing")
    return config[key]


def tuples(value: Any) -> Any:
    """Lists (of lists) from a JSON / YAML config as the tuples of ganpipe's model configs."""
    return tuple(tuples(v) for v in value) if isinstance(value, (list, tuple)) else value


def choose_variant(candidates: tuple[str, ...], overrides: dict[str, Any], fallback: str) -> str:
    """The first of ``candidates`` whose reference configuration has exactly ``overrides`` (so that a
    published V2 is called ``hifigan_v2``), else ``fallback`` (built with the overrides)."""
    from ganpipe.models import default_config

    for candidate in candidates:
        default = default_config(candidate)
        if all(getattr(default, k) == v for k, v in overrides.items()):
            return candidate
    return fallback


def build_bundle(variant: str, overrides: dict[str, Any], config_path: Path) -> Any:
    """``ganpipe.models.build(variant, **overrides)``; a config ganpipe cannot build names the config file."""
    from ganpipe.models import build

    try:
        return build(variant, **overrides)
    except (ValueError, TypeError) as exc:
        raise ImportModelError(f"{config_path}: describes a {variant} that ganpipe cannot build: {exc}") from None


def load_mapped(module: torch.nn.Module, mapper: Any, path: Path, *args: Any) -> None:
    """``module.load_state_dict(mapper(*args, module))``; a layer that does not fit names ``path``."""
    from ganpipe.models.reference_weights import WeightMappingError

    try:
        module.load_state_dict(mapper(*args, module), strict=True)
    except WeightMappingError as exc:
        raise ImportModelError(f"{path}: {exc}") from None


def unsupported(path: Path, where: str, key: str, value: Any, allowed: Any) -> ImportModelError:
    return ImportModelError(f"{path}: {where}{key}={value!r} is not supported by ganpipe's model "
                            f"(it implements {key}={allowed!r})")
