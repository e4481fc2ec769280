"""Train / valid / test assignment of utterances.

Three modes, chosen by :class:`SplitParams`:

* **Hash** (``method: hash``, the default). A clip's split is a pure function of its own id: the
  salted hash ``blake2b(seed, id)`` as a number ``u`` in [0, 1) puts it in ``test`` when
  ``u < test_fraction``, in ``valid`` when ``u < test_fraction + valid_fraction``, else in
  ``train``. The id is the utterance's (``unit: utterance``) or its speaker's (``unit: speaker``:
  all clips of a speaker in one split). Adding clips never moves an existing one, so the test set
  only grows and no test clip ever leaks into training. The counts are proportions in expectation
  only (a tiny corpus can have an empty split). Golden sets: ``test_list`` / ``valid_list`` name
  the ids of a split (files of ids, one a line, or the first column of a CSV; ``#`` comments); the
  listed ids are in it whatever the hash says, ids not in the corpus (yet) are ignored, and with
  ``test_list`` set nothing else is test (nor valid with ``valid_list``): the rest goes to
  ``train``, or to ``valid`` where the hash says valid and there is no ``valid_list``.
* **Seeded** (``method: seeded``). Every utterance gets a rank key ``blake2b(seed, utt_id)``; within a group
  (each speaker when ``per_speaker``, else the whole corpus) utterances are ordered by that key,
  the first ``n_test`` go to ``test``, the next ``n_valid`` to ``valid`` and the rest to ``train``.
  Counts: ``round(n * fraction)`` (halves round up); when a group has at least 3 utterances,
  every split whose fraction is > 0 gets at least one; ``train`` always keeps at least one.
  The result depends only on the seed and the set of (utt_id, speaker) pairs, never on their order.
  Stability: because the key of an utterance does not depend on the others, adding or removing
  utterances keeps the relative order of the rest, so only utterances at the split boundaries
  (about one per boundary per added utterance) can change split; the bulk stays put.
* **List file** (``list_file``). A CSV or TSV file with ``utt_id,split`` rows (an optional header
  ``utt_id,split``; blank lines and lines starting with ``#`` are ignored; the delimiter is a tab
  when the line holds one, else a comma) fixes the split. Unknown ids, invalid split names,
  duplicated ids and utterances missing from the list are errors naming the line or the ids.
"""

from __future__ import annotations

import hashlib
import math
from collections import defaultdict
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Literal

from ganpipe.config import SplitParams

Split = Literal["train", "valid", "test"]
SPLITS: tuple[Split, ...] = ("train", "valid", "test")


class SplitError(ValueError):
    """A split that cannot be made (bad list file, inconsistent input)."""


def _rank_key(seed: int, utt_id: str) -> bytes:
    return hashlib.blake2b(f"{seed}\x00{utt_id}".encode(), digest_size=16).digest()


def _round_half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def split_counts(n: int, valid_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """``(n_train, n_valid, n_test)`` for a group of ``n`` utterances (rules in the module doc)."""
    if n <= 0:
        return 0, 0, 0
    n_valid = _round_half_up(n * valid_fraction)
    n_test = _round_half_up(n * test_fraction)
    if n >= 3:
        if valid_fraction > 0:
            n_valid = max(n_valid, 1)
        if test_fraction > 0:
            n_test = max(n_test, 1)
    while n_valid + n_test > n - 1:  # keep at least one training utterance
        if n_valid > n_test or (n_valid == n_test and valid_fraction <= test_fraction):
            n_valid -= 1
        else:
            n_test -= 1
    return n - n_valid - n_test, n_valid, n_test


def _check_input(utts: Iterable[tuple[str, str]]) -> dict[str, str]:
    speakers: dict[str, str] = {}
    for utt_id, speaker in utts:
        if utt_id in speakers:
            raise SplitError(f"duplicate utterance id '{utt_id}' (speakers '{speakers[utt_id]}' and '{speaker}')")
        speakers[utt_id] = speaker
    return speakers


def hash_bucket(seed: int, key: str) -> float:
    """The salted hash of ``key`` as a number in [0, 1) (the hash mode's bucket)."""
    return int.from_bytes(_rank_key(seed, key)[:8], "big") / 2.0 ** 64


def read_id_list(path: str | Path) -> set[str]:
    """The utterance ids of a golden-set file: one a line (the first field of a CSV/TSV line; blank
    lines, ``#`` comments and a header ``utt_id`` ignored)."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SplitError(f"split id list {path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SplitError(f"split id list {path}: not UTF-8 text") from None
    ids = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        first = line.split("\t" if "\t" in line else ",")[0].strip()
        if first and first.lower() != "utt_id":
            ids.add(first)
    return ids


def _hashed(speakers: dict[str, str], params: SplitParams) -> dict[str, Split]:
    test_ids = read_id_list(params.test_list) if params.test_list else None
    valid_ids = read_id_list(params.valid_list) if params.valid_list else None
    both = sorted((test_ids or set()) & (valid_ids or set()))
    if both:
        raise SplitError(f"split.test_list and split.valid_list both list: {', '.join(both[:10])}")
    out: dict[str, Split] = {}
    for utt_id, speaker in speakers.items():
        if test_ids is not None and utt_id in test_ids:
            out[utt_id] = "test"
            continue
        if valid_ids is not None and utt_id in valid_ids:
            out[utt_id] = "valid"
            continue
        u = hash_bucket(params.seed, speaker if params.unit == "speaker" else utt_id)
        if u < params.test_fraction:
            split: Split = "test" if test_ids is None else "train"
        elif u < params.test_fraction + params.valid_fraction:
            split = "valid" if valid_ids is None else "train"
        else:
            split = "train"
        out[utt_id] = split
    return dict(sorted(out.items()))


def _seeded(speakers: dict[str, str], params: SplitParams) -> dict[str, Split]:
    groups: dict[str, list[str]] = defaultdict(list)
    for utt_id, speaker in speakers.items():
        groups[speaker if params.per_speaker else ""].append(utt_id)
    out: dict[str, Split] = {}
    for ids in groups.values():
        ids.sort(key=lambda u: (_rank_key(params.seed, u), u))
        _, n_valid, n_test = split_counts(len(ids), params.valid_fraction, params.test_fraction)
        for k, utt_id in enumerate(ids):
            out[utt_id] = "test" if k < n_test else "valid" if k < n_test + n_valid else "train"
    return dict(sorted(out.items()))


def _parse_list(path: Path) -> dict[str, tuple[Split, int]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise SplitError(f"split list {path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise SplitError(f"split list {path}: not UTF-8 text") from None
    result: dict[str, tuple[Split, int]] = {}
    seen_content = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = [f.strip() for f in line.split("\t" if "\t" in line else ",")]
        if not seen_content:
            seen_content = True
            if [f.lower() for f in fields] == ["utt_id", "split"]:
                continue
        if len(fields) != 2 or not fields[0]:
            raise SplitError(f"split list {path}, line {lineno}: expected 'utt_id,split', got {raw!r}")
        utt_id, split = fields
        if split not in SPLITS:
            raise SplitError(f"split list {path}, line {lineno}: invalid split {split!r} for "
                             f"'{utt_id}' (expected one of: {', '.join(SPLITS)})")
        if utt_id in result:
            raise SplitError(f"split list {path}, line {lineno}: '{utt_id}' already listed on line "
                             f"{result[utt_id][1]}")
        result[utt_id] = (split, lineno)  # type: ignore[assignment]
    return result


def read_split_list(path: str | Path) -> dict[str, Split]:
    """Parse a split list file into ``{utt_id: split}``; :class:`SplitError` names the bad line."""
    return {u: split for u, (split, _) in _parse_list(Path(path)).items()}


def _from_list(speakers: dict[str, str], path: Path, ignore_ids: Collection[str]) -> dict[str, Split]:
    listed = _parse_list(path)
    for utt_id, (_, lineno) in listed.items():
        if utt_id not in speakers and utt_id not in ignore_ids:
            raise SplitError(f"split list {path}, line {lineno}: unknown utterance id '{utt_id}'")
    missing = sorted(u for u in speakers if u not in listed)
    if missing:
        shown = ", ".join(missing[:10]) + (f", ... ({len(missing)} in all)" if len(missing) > 10 else "")
        raise SplitError(f"split list {path}: {len(missing)} utterance(s) not listed: {shown}")
    return {u: listed[u][0] for u in sorted(speakers)}


def assign_splits(utts: Iterable[tuple[str, str]], params: SplitParams, *,
                  ignore_ids: Collection[str] = ()) -> dict[str, Split]:
    """Map each ``(utt_id, speaker)`` to ``'train'``, ``'valid'`` or ``'test'``.

    ``ignore_ids`` (list-file mode only): ids that may appear in the list without being assigned,
    e.g. utterances of the corpus that the prepare stage skipped.
    Raises :class:`SplitError` for duplicate ids or a bad list file.
    """
    speakers = _check_input(utts)
    if params.list_file:
        return _from_list(speakers, Path(params.list_file), frozenset(ignore_ids))
    if params.method == "hash":
        return _hashed(speakers, params)
    return _seeded(speakers, params)
