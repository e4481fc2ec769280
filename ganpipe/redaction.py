"""Secrets kept out of what ganpipe writes: logs, Prefect artifacts, MLflow tags, error messages.

One helper, :func:`redact`, for every text that may hold a store address: the password of a URI
(``http://user:secret@host``, ``postgresql://user:secret@host/db``) becomes ``***``, and so does
the value of a secret MLflow reads from the environment (``MLFLOW_TRACKING_PASSWORD``,
``MLFLOW_TRACKING_TOKEN``) wherever it appears.
"""

from __future__ import annotations

import os
import re

SECRET_ENV = ("MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
MASK = "***"
# scheme://user:password@ -> scheme://user:***@ (the user name is not a secret: it says who)
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*):(?P<password>[^@/\s]+)@")
_SHORTEST_SECRET = 4  # shorter values would mask ordinary words


def redact(text: object) -> str:
    """``text`` with URI passwords and the secret environment values replaced by ``***``."""
    out = _USERINFO.sub(lambda m: f"{m['head']}:{MASK}@", str(text))
    for var in SECRET_ENV:
        value = os.environ.get(var, "")
        if len(value) >= _SHORTEST_SECRET:
            out = out.replace(value, MASK)
    return out

