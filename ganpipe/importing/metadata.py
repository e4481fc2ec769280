"""What the registry says about an imported model (``ganpipe import-model --register``): the truth.

An imported generator was not trained on the project's corpus, so its version's ``dataset`` and
data-version tags (``data_features_md5``, ``data_prepared_md5``) name the published source file and its
sha256 instead of the project's data (``imported: g_02500000 sha256 1a2b...``), and its description names
the source and its step count when the source says it (``imported jik876 checkpoint
generator_LJSpeech.pth.tar (steps unknown), hifigan_v1, generator sha256 ...``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DATA_TAGS = ("data_features_md5", "data_prepared_md5")


def source_text(source: dict[str, Any]) -> str:
    """``imported: FILE sha256 SHA`` of a generator file's ``source`` entry."""
    return f"imported: {Path(str(source.get('file'))).name} sha256 {source.get('sha256')}"


def imported_tags(source: dict[str, Any] | None) -> dict[str, str]:
    """The version tags that replace the project's dataset / data version for an imported model."""
    if not source:
        return {}
    text = source_text(source)
    return {"dataset": "imported", "imported_from": text, **{k: text for k in DATA_TAGS}}


def version_description(loaded: Any, generator_sha256: str) -> str:
    """The registered version's description: the source and its step count for an imported model."""
    source = loaded.meta.get("source")
    tail = f"{loaded.bundle.variant}, generator sha256 {generator_sha256[:12]}"
    if not source:
        return f"{loaded.bundle.variant}, step {loaded.meta.get('step')}, generator sha256 {generator_sha256[:12]}"
    steps = source.get("steps")
    return (f"imported {source.get('format')} checkpoint {Path(str(source.get('file'))).name} "
            f"({f'{steps} steps' if steps else 'steps unknown'}, sha256 {str(source.get('sha256'))[:12]}), {tail}")
