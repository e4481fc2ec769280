"""Ready-made configurations (configs/*.yaml): partial params files applied on top of params.yaml.

Two ways to use one, both validated against the full schema first:
* ``flags``: ``-S key=value`` arguments for ``dvc exp run`` (an experiment; params.yaml unchanged);
* ``apply``: merge into params.yaml in place (comments kept), then ``dvc repro``.
"""

from __future__ import annotations

import math
import re
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


# Characters a flag may not hold: shell word splitting (whitespace) and pathname expansion (*?) of an
# unquoted $(...), quotes and backslashes (literal there, and Hydra's quoting), `${` (OmegaConf interpolation).
_UNSAFE = re.compile(r"[\s*?'\"\\]|\$\{|[^\x21-\x7e\u00a0-\uffff]")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


def _hydra_value(key: str, value: Any) -> str:
    """``value`` in Hydra's override grammar (what ``dvc exp run -S`` parses), in one shell word."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        if _UNSAFE.search(value) or "[" in value:
            raise ConfigError(f"{key}: the value {value!r} has whitespace, quotes, a backslash, '${{' or a shell "
                              "wildcard, which a `dvc exp run $(ganpipe preset flags ...)` cannot carry: use "
                              "`ganpipe preset apply` (or set it with -S yourself, quoted)")
        return f'"{value}"'  # quoted: a string stays a string ("true", "007", "null")
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_hydra_value(key, v) for v in value) + "]"
    if isinstance(value, dict):
        for k in value:
            if not isinstance(k, str) or not _KEY.fullmatch(k):
                raise ConfigError(f"{key}: the key {k!r} cannot be written as a dvc -S flag (letters, digits, _ and -)")
        return "{" + ",".join(f"{k}:{_hydra_value(f'{key}.{k}', v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"{key}: a {type(value).__name__} value cannot be written as a dvc -S flag")


def _has(base: Any, dotted: str) -> bool:
    for part in dotted.split("."):
        if not isinstance(base, dict) or part not in base:
            return False
        base = base[part]
    return True


def flags(preset_path: str | Path, params_path: str | Path = "params.yaml") -> list[str]:
    """``-S`` arguments for ``dvc exp run`` that set params.yaml as :func:`apply` would.

    Each argument is one shell word with no quoting to remove, so ``dvc exp run $(ganpipe preset flags
    NAME)`` works unquoted: values in Hydra's override grammar (the parser of ``-S``; strings
    double-quoted, dicts ``{k:v}``, no spaces). A key absent from params.yaml is added (``+key=``);
    a section the preset replaces as a whole (``overrides``) is deleted first (``~key``), since
    ``key={...}`` would merge into it.
    """
    preset = read_preset(preset_path)
    base = yaml.safe_load(Path(params_path).read_text()) or {}
    parse_params(merged(base, preset), source=f"{params_path} + {preset_path}")
    leaves: list[tuple[str, Any]] = []
    _leaves("", preset, leaves)
    out: list[str] = []
    for key, value in leaves:
        if not all(_KEY.fullmatch(part) for part in key.split(".")):
            raise ConfigError(f"{key}: not a key a dvc -S flag can name")
        text = _hydra_value(key, value)
        if key.rsplit(".", 1)[-1] in WHOLE and _has(base, key):
            out += ["-S", f"~{key}", "-S", f"+{key}={text}"]
        else:
            out += ["-S", f"{key}={text}" if _has(base, key) else f"+{key}={text}"]
    return out


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
