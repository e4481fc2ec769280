"""Turn an extracted corpus folder into a list of :class:`SourceUtterance`.

:func:`discover` knows each corpus' folder layout. ``root`` may be the folder the archive was
extracted into or the corpus folder itself (the corpus is searched for up to two levels down), so
``data/raw/ljspeech``, ``data/raw/ljspeech/LJSpeech-1.1`` and the like all work.

Missing audio is never dropped silently: for LJSpeech a metadata row whose wav is missing is still
returned (its path does not exist; the prepare stage reports it as unreadable) and a warning with
the count and the first ids is logged.
"""

from __future__ import annotations

import csv
import logging
import re
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

from ganpipe.audio import AUDIO_EXTENSIONS
from ganpipe.datasets.types import SourceUtterance

log = logging.getLogger(__name__)

SC09_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9_.-]")
_SEARCH_DEPTH = 2


class LayoutError(ValueError):
    """A corpus folder that does not match the expected layout; names the folder or file."""


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def sanitize_id(text: str) -> str:
    """Characters outside ``[A-Za-z0-9_.-]`` become ``_`` (ids are used as file names)."""
    clean = _UNSAFE_ID_CHARS.sub("_", text)
    return "_" + clean if clean.startswith((".", "-")) else clean


def _is_hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def _find_corpus_dir(root: Path, name: str, is_corpus: Callable[[Path], bool]) -> Path:
    """``root`` or the first folder up to two levels below it for which ``is_corpus`` holds."""
    if not root.is_dir():
        raise LayoutError(f"{name}: corpus folder not found: {root}")
    level = [root]
    for depth in range(_SEARCH_DEPTH + 1):
        for d in level:
            if is_corpus(d):
                return d
        if depth < _SEARCH_DEPTH:
            level = sorted(c for d in level for c in d.iterdir()
                           if c.is_dir() and not c.name.startswith("."))
    raise LayoutError(f"{name}: no {name} corpus found in {root} (searched {_SEARCH_DEPTH} "
                      "levels down)")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return ""
    except UnicodeDecodeError as exc:
        raise LayoutError(f"{path}: transcript is not UTF-8 ({exc})") from None


def _finalize(name: str, root: Path, utts: Iterable[SourceUtterance]) -> list[SourceUtterance]:
    items = sorted(utts, key=lambda u: u.utt_id)
    dupes = [uid for uid, n in Counter(u.utt_id for u in items).items() if n > 1]
    if dupes:
        examples = []
        for uid in dupes[:5]:
            paths = [u.path for u in items if u.utt_id == uid]
            examples.append(f"{uid} ({', '.join(paths)})")
        raise LayoutError(f"{name}: {len(dupes)} duplicate utterance id(s) in {root}: "
                          + "; ".join(examples))
    if not items:
        raise LayoutError(f"{name}: no audio files found in {root}")
    return items


# ---------------------------------------------------------------------------------------------
# corpora
# ---------------------------------------------------------------------------------------------
def _ljspeech(root: Path) -> list[SourceUtterance]:
    corpus = _find_corpus_dir(root, "ljspeech",
                              lambda d: (d / "metadata.csv").is_file() and (d / "wavs").is_dir())
    meta = corpus / "metadata.csv"
    utts: list[SourceUtterance] = []
    missing: list[str] = []
    with open(meta, encoding="utf-8", newline="") as fh:
        # LJSpeech text contains double quotes that are not CSV quoting.
        for lineno, row in enumerate(csv.reader(fh, delimiter="|", quoting=csv.QUOTE_NONE), 1):
            if not row or not row[0].strip():
                continue
            if len(row) < 2:
                raise LayoutError(f"{meta}:{lineno}: expected 'id|text|normalized_text', "
                                  f"got {'|'.join(row)!r}")
            uid = row[0].strip()
            text = (row[2] if len(row) > 2 and row[2].strip() else row[1]).strip()
            wav = corpus / "wavs" / f"{uid}.wav"
            if not wav.is_file():
                missing.append(uid)
            utts.append(SourceUtterance(sanitize_id(uid), "LJ", str(wav), text))
    if missing:
        log.warning("ljspeech: %d metadata row(s) in %s have no wav (kept; they will be reported "
                    "unreadable): %s%s", len(missing), meta, ", ".join(missing[:5]),
                    " ..." if len(missing) > 5 else "")
    listed = {u.utt_id for u in utts}
    extra = sorted(p.stem for p in (corpus / "wavs").glob("*.wav") if p.stem not in listed)
    if extra:
        log.warning("ljspeech: %d wav(s) in %s have no metadata row and are ignored: %s%s",
                    len(extra), corpus / "wavs", ", ".join(extra[:5]),
                    " ..." if len(extra) > 5 else "")
    return utts


def _vctk(root: Path) -> list[SourceUtterance]:
    corpus = _find_corpus_dir(root, "vctk", lambda d: (d / "wav48_silence_trimmed").is_dir())
    audio = corpus / "wav48_silence_trimmed"
    utts = []
    for path in sorted(audio.glob("*/*_mic1.flac")):
        speaker = path.parent.name
        uid = path.name[: -len("_mic1.flac")]
        text = _read_text(corpus / "txt" / speaker / f"{uid}.txt")
        utts.append(SourceUtterance(sanitize_id(uid), speaker, str(path), text))
    return utts


def _libritts(root: Path) -> list[SourceUtterance]:
    from ganpipe.datasets.corpora import LIBRITTS_SUBSETS

    def is_subset(d: Path) -> bool:
        return d.name in LIBRITTS_SUBSETS and any(d.glob("[0-9]*/[0-9]*/*.wav"))

    # Each subset archive unpacks to LibriTTS/<subset>/; several archives may have been
    # extracted into sibling folders (e.g. root/dev-clean/LibriTTS/dev-clean), so collect every
    # subset folder within reach of root.
    found: list[Path] = []
    level = [root] if root.is_dir() else []
    for depth in range(_SEARCH_DEPTH + 2):
        subsets = [d for d in level if is_subset(d)]
        found.extend(subsets)
        if depth <= _SEARCH_DEPTH:
            level = sorted(c for d in level if d not in subsets for c in d.iterdir()
                           if c.is_dir() and not c.name.startswith("."))
    if not found:
        raise LayoutError(f"libritts: no LibriTTS subset folder ({', '.join(LIBRITTS_SUBSETS)}) "
                          f"found in {root}")
    utts = []
    for subset in found:
        for path in sorted(subset.glob("*/*/*.wav")):
            speaker = path.parent.parent.name
            text = _read_text(path.with_name(path.stem + ".normalized.txt"))
            utts.append(SourceUtterance(sanitize_id(path.stem), speaker, str(path), text))
    return utts


def _sc09(root: Path) -> list[SourceUtterance]:
    splits = ("train", "valid", "test")
    corpus = _find_corpus_dir(
        root, "sc09", lambda d: any(any((d / s).glob("*.wav")) for s in splits))
    utts = []
    for split in splits:
        for path in sorted((corpus / split).glob("*.wav")):
            word = path.stem.split("_", 1)[0].lower()
            if word not in SC09_DIGITS:
                raise LayoutError(f"{path}: SC09 file names start with a digit word "
                                  f"({', '.join(SC09_DIGITS)}), got {word!r}")
            utts.append(SourceUtterance(sanitize_id(path.stem), word, str(path), word))
    return utts


def _maestro(root: Path) -> list[SourceUtterance]:
    def is_maestro(d: Path) -> bool:
        return any(d.glob("maestro-v*.csv")) or any(d.glob("[12][0-9][0-9][0-9]/*.wav"))

    corpus = _find_corpus_dir(root, "maestro", is_maestro)
    utts = []
    for path in sorted(corpus.glob("[12][0-9][0-9][0-9]/*.wav")):
        uid = sanitize_id(f"{path.parent.name}__{path.stem}")
        utts.append(SourceUtterance(uid, "piano", str(path), ""))
    return utts


def _folder(root: Path, speaker_from_subfolder: bool) -> list[SourceUtterance]:
    """Any folder of audio files (``local`` and the generated ``demo`` corpus)."""
    if not root.is_dir():
        raise LayoutError(f"audio folder not found: {root}")
    utts = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.suffix.lower() not in AUDIO_EXTENSIONS or _is_hidden(rel) or not path.is_file():
            continue
        if speaker_from_subfolder and len(rel.parts) > 1:
            speaker = rel.parts[0]
        else:
            speaker = "default"
        uid = sanitize_id("__".join(rel.with_suffix("").parts))
        text = _read_text(path.with_suffix(".txt"))
        utts.append(SourceUtterance(uid, speaker, str(path), text))
    return utts


_LAYOUTS: dict[str, Callable[[Path], list[SourceUtterance]]] = {
    "ljspeech": _ljspeech,
    "vctk": _vctk,
    "libritts": _libritts,
    "sc09": _sc09,
    "maestro": _maestro,
}
LAYOUTS: tuple[str, ...] = (*_LAYOUTS, "local", "demo")


def discover(name: str, root: Path, *, speaker_from_subfolder: bool = True) -> list[SourceUtterance]:
    """All utterances of corpus ``name`` under ``root``, sorted by ``utt_id`` (unique).

    ``name`` is a layout name (``ljspeech``, ``vctk``, ``libritts``, ``sc09``, ``maestro``,
    ``local``, ``demo``). Raises :class:`LayoutError` for a missing/unrecognised folder, no audio,
    or duplicate ids (naming them and their files).

    * ``ljspeech``: ``metadata.csv`` (``id|text|normalized``) + ``wavs/ID.wav``; speaker ``LJ``;
      text is the normalized column. Rows without a wav are kept (see module docstring).
    * ``vctk``: ``wav48_silence_trimmed/pXXX/pXXX_NNN_mic1.flac`` (mic1 only), text from
      ``txt/pXXX/pXXX_NNN.txt`` when present; utt_id ``pXXX_NNN``.
    * ``libritts``: ``SUBSET/SPEAKER/CHAPTER/*.wav`` with ``*.normalized.txt``; all subsets found.
    * ``sc09``: ``{train,valid,test}/Digit_hash_nohash_N.wav``; speaker (the class label) and text
      are the lower-case digit word.
    * ``maestro``: ``YEAR/*.wav``; speaker ``piano``; utt_id ``YEAR__stem``.
    * ``local``/``demo``: every wav/flac/ogg below root (hidden files/folders skipped); speaker is
      the first sub-folder when ``speaker_from_subfolder`` and the file is in one, else
      ``default``; utt_id is the relative path without extension, ``/`` -> ``__``, other
      characters outside ``[A-Za-z0-9_.-]`` -> ``_``; text from a sibling ``.txt`` if present.
    """
    root = Path(root)
    if name in ("local", "demo"):
        utts = _folder(root, speaker_from_subfolder)
    elif name in _LAYOUTS:
        utts = _LAYOUTS[name](root)
    else:
        raise LayoutError(f"unknown dataset layout {name!r}; known: {', '.join(LAYOUTS)}")
    return _finalize(name, root, utts)
