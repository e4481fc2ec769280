"""Ready-made configurations (configs/*.yaml): partial params files applied on top of params.yaml.

Two ways to use one, both validated against the full schema first:
* ``flags``: ``-S key=value`` arguments for ``dvc exp run`` (an experiment; params.yaml unchanged);
* ``apply``: merge into params.yaml in place (comments kept), then ``dvc repro``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from ganpipe.atomic import write_text
from ganpipe.config import ConfigError, parse_params


def read_preset(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file() and (Path("configs") / f"{path}.yaml").is_file():
        path = Path("configs") / f"{path}.yaml"
    if not path.is_file():
        raise ConfigError(f"preset not found: {path} (see configs/)")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a preset must be a mapping of params sections")
    return data


# Sections a preset replaces as a whole (architecture overrides of one variant make no sense for another).
WHOLE = ("overrides",)


def merged(base: dict[str, Any], preset: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in preset.items():
        if isinstance(value, dict) and value and isinstance(out.get(key), dict) and key not in WHOLE:
            out[key] = merged(out[key], value)
        else:
            out[key] = value
    return out


def _leaves(prefix: str, obj: Any, out: list[tuple[str, Any]]) -> None:
    if isinstance(obj, dict) and obj and prefix.rsplit(".", 1)[-1] not in WHOLE:
        for k, v in obj.items():
            _leaves(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out.append((prefix, obj))


def flags(preset_path: str | Path, params_path: str | Path = "params.yaml") -> list[str]:
    """``-S`` arguments for ``dvc exp run`` (values in YAML flow syntax, as DVC parses them)."""
    preset = read_preset(preset_path)
    base = yaml.safe_load(Path(params_path).read_text()) or {}
    parse_params(merged(base, preset), source=f"{params_path} + {preset_path}")
    leaves: list[tuple[str, Any]] = []
    _leaves("", preset, leaves)
    return [arg for key, value in leaves for arg in ("-S", f"{key}={json.dumps(value)}")]


def apply(preset_path: str | Path, params_path: str | Path = "params.yaml") -> None:
    """Merge the preset into params.yaml, keeping its comments and order."""
    from ruamel.yaml import YAML

    preset = read_preset(preset_path)
    ry = YAML()
    ry.preserve_quotes = True
    ry.representer.add_representer(
        type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    doc = ry.load(Path(params_path).read_text())
    parse_params(merged(yaml.safe_load(Path(params_path).read_text()) or {}, preset),
                 source=f"{params_path} + {preset_path}")

    def into(node: Any, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if isinstance(value, dict) and value and isinstance(node.get(key), dict) and key not in WHOLE:
                into(node[key], value)
            else:
                node[key] = value

    into(doc, preset)
    import io

    buf = io.StringIO()
    ry.dump(doc, buf)
    write_text(params_path, buf.getvalue())
