"""Plain records passed between the dataset, prepare and features stages."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SourceUtterance:
    """One audio file of a raw corpus, before preparation.

    ``utt_id`` is unique within the corpus and safe as a file name; ``speaker`` is the speaker (or
    class) label, ``"default"`` when the corpus has none.
    """

    utt_id: str
    speaker: str
    path: str
    text: str = ""
