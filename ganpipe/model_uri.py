"""What a ``--model`` argument names, checked before MLflow is asked (``ganpipe synthesize``,
``ganpipe mel``): a missing local file is "file not found" (not MLflow's "No such artifact"), and
``models:/NAME`` without an alias or a version says how to give one (not "Logged model ... not found")."""

from __future__ import annotations

import re
from pathlib import Path

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:/")


def model_uri_problem(uri: str) -> str | None:
    """Why ``uri`` cannot name a model, or ``None`` (then MLflow, or the file reader, has the last word)."""
    text = str(uri)
    if text.startswith("models:/"):
        rest = text[len("models:/"):].strip("/")
        if not rest:
            return f"{text}: no model name; give models:/NAME@ALIAS (e.g. @champion) or models:/NAME/VERSION"
        if "@" not in rest and "/" not in rest:
            return (f"{text}: a registered model needs an alias or a version: models:/{rest}@champion, "
                    f"models:/{rest}@candidate or models:/{rest}/VERSION (e.g. models:/{rest}/1)")
        return None
    if _SCHEME.match(text):  # runs:/, file:/, s3://, ...: MLflow's
        return None
    if not Path(text).exists():
        return (f"file not found: {text} (--model takes a generator file, e.g. models/generator.pt or an "
                "imported model, a model folder, or a registered model models:/NAME@ALIAS)")
    return None
