"""The prepared corpus' ``manifest.csv``: its columns, their types and the one reader of it.

The prepare stage (:mod:`ganpipe.prepare`) writes it, one row per prepared file sorted by utt_id;
the features, evaluate and training stages and the registry's eval-set fingerprint read it back
with :func:`read_manifest`, so every reader sees the same types (ids and text stay strings, even
``"001"`` or ``"NA"``) and the same errors, each naming the file.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

MANIFEST_FILE = "manifest.csv"
MANIFEST_COLUMNS = ["utt_id", "speaker", "path", "duration", "sample_rate", "num_samples", "split",
                    "source_path", "text"]
MANIFEST_DTYPES: dict[str, type] = {
    "utt_id": str, "speaker": str, "path": str, "duration": float, "sample_rate": int,
    "num_samples": int, "split": str, "source_path": str, "text": str,
}
# What every reader needs; a reader that uses more names it (read_manifest's ``required``).
REQUIRED_COLUMNS = ("utt_id", "path", "split")


class ManifestError(ValueError):
    """A manifest that is missing, unparsable or lacks a column; the message names the file."""


def read_manifest(path: str | Path, required: Iterable[str] = REQUIRED_COLUMNS) -> pd.DataFrame:
    """Read a ``manifest.csv`` with the types of :data:`MANIFEST_DTYPES` (columns it lacks are
    not added). :class:`ManifestError` when the file is missing, a value does not parse as its
    column's type, or one of the ``required`` columns is absent."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"manifest not found: {path} (run the prepare stage first)")
    try:
        df = pd.read_csv(path, keep_default_na=False, dtype=MANIFEST_DTYPES)
    except ValueError as exc:  # e.g. sample_rate "" or "x": not an int
        raise ManifestError(f"{path}: unreadable ({type(exc).__name__}: {exc})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {missing}")
    return df
