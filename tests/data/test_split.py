"""Train/valid/test splits: counts, per-speaker proportions, determinism, stability when utterances are added."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from ganpipe.config import SplitParams
from ganpipe.split import SplitError, assign_splits, read_split_list, split_counts


def _corpus(sizes: dict[str, int]) -> list[tuple[str, str]]:
    return [(f"{spk}_{i:04d}", spk) for spk, n in sizes.items() for i in range(n)]


@pytest.mark.parametrize(("n", "valid", "test", "expected"), [
    (10, 0.1, 0.1, (8, 1, 1)),
    (100, 0.05, 0.15, (80, 5, 15)),
    (3, 0.1, 0.1, (1, 1, 1)),       # minimum one each from 3 utterances on
    (5, 0.02, 0.0, (4, 1, 0)),      # ... but only for fractions > 0
    (2, 0.1, 0.1, (2, 0, 0)),       # below 3: plain rounding
    (1, 0.4, 0.4, (1, 0, 0)),       # train always keeps one
    (4, 0.45, 0.45, (1, 1, 2)),     # 1.8 -> 2 each would leave no train: valid gives one back
    (25, 0.1, 0.1, (19, 3, 3)),     # 2.5 rounds half up
    (0, 0.1, 0.1, (0, 0, 0)),
])
def test_split_counts(n: int, valid: float, test: float, expected: tuple[int, int, int]) -> None:
    assert split_counts(n, valid, test) == expected
    assert sum(split_counts(n, valid, test)) == n


def test_per_speaker_proportions_and_minimums() -> None:
    utts = _corpus({"a": 3, "b": 10, "c": 41, "d": 1})
    splits = assign_splits(utts, SplitParams(valid_fraction=0.1, test_fraction=0.2))
    assert set(splits) == {u for u, _ in utts}
    for spk, n in {"a": 3, "b": 10, "c": 41, "d": 1}.items():
        got = Counter(s for u, s in splits.items() if u.startswith(spk + "_"))
        train, valid, test = split_counts(n, 0.1, 0.2)
        assert (got["train"], got["valid"], got["test"]) == (train, valid, test)
    assert Counter(s for u, s in splits.items() if u.startswith("a_")) == {"train": 1, "valid": 1, "test": 1}


def test_deterministic_order_independent_and_seeded() -> None:
    utts = _corpus({"a": 30, "b": 30})
    params = SplitParams(seed=5)
    first = assign_splits(utts, params)
    shuffled = utts[:]
    random.Random(0).shuffle(shuffled)
    assert assign_splits(shuffled, params) == first
    assert assign_splits(list(reversed(utts)), params) == first
    other = assign_splits(utts, SplitParams(seed=6))
    assert other != first
    assert Counter(other.values()) == Counter(first.values())
    # Not simply the first/last ids in name order.
    assert {u for u, s in first.items() if s == "test"} != {"a_0000", "a_0001", "a_0002", "b_0000", "b_0001", "b_0002"}


def test_stable_when_utterances_are_added() -> None:
    params = SplitParams(seed=11, valid_fraction=0.1, test_fraction=0.1)
    base = _corpus({"a": 200})
    before = assign_splits(base, params)
    after = assign_splits(base + [(f"new_{i}", "a") for i in range(5)], params)
    changed = [u for u in before if after[u] != before[u]]
    # 5 new utterances can move only a few boundary utterances; a reshuffle would move ~60.
    assert len(changed) <= 10


def test_whole_corpus_mode() -> None:
    utts = _corpus({"a": 50, "b": 7})
    splits = assign_splits(utts, SplitParams(per_speaker=False, valid_fraction=0.1, test_fraction=0.1))
    got = Counter(splits.values())
    train, valid, test = split_counts(57, 0.1, 0.1)
    assert (got["train"], got["valid"], got["test"]) == (train, valid, test)


def test_zero_fractions_put_everything_in_train() -> None:
    splits = assign_splits(_corpus({"a": 10}), SplitParams(valid_fraction=0.0, test_fraction=0.0))
    assert set(splits.values()) == {"train"}


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(SplitError, match="duplicate utterance id 'x'"):
        assign_splits([("x", "a"), ("y", "a"), ("x", "b")], SplitParams())


def _list_params(path: Path) -> SplitParams:
    return SplitParams(list_file=str(path))


def test_list_file_csv_and_tsv(tmp_path: Path) -> None:
    utts = [("u1", "a"), ("u2", "a"), ("u3", "b")]
    csv = tmp_path / "split.csv"
    csv.write_text("utt_id,split\n# a comment\nu1,train\n\nu2, valid\nu3,test\n")
    assert assign_splits(utts, _list_params(csv)) == {"u1": "train", "u2": "valid", "u3": "test"}
    tsv = tmp_path / "split.tsv"
    tsv.write_text("u3\ttrain\nu2\ttrain\nu1\ttest\n")
    assert assign_splits(utts, _list_params(tsv)) == {"u1": "test", "u2": "train", "u3": "train"}
    assert read_split_list(tsv) == {"u3": "train", "u2": "train", "u1": "test"}


@pytest.mark.parametrize(("content", "message"), [
    ("utt_id,split\nu1,train\nu2,dev\n", r"line 3: invalid split 'dev' for 'u2'"),
    ("u1,train\nu2,train\nghost,test\n", r"line 3: unknown utterance id 'ghost'"),
    ("u1,train\nu2,train\nu1,test\n", r"line 3: 'u1' already listed on line 1"),
    ("u1,train,extra\n", r"line 1: expected 'utt_id,split'"),
    ("u1,train\n", r"1 utterance\(s\) not listed: u2"),
])
def test_list_file_errors_name_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "split.csv"
    path.write_text(content)
    with pytest.raises(SplitError, match=message) as info:
        assign_splits([("u1", "a"), ("u2", "a")], _list_params(path))
    assert str(path) in str(info.value)


def test_list_file_ignore_ids_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "split.csv"
    path.write_text("u1,train\nu2,test\nskipped,valid\n")
    assert assign_splits([("u1", "a"), ("u2", "a")], _list_params(path), ignore_ids={"skipped"}) == {
        "u1": "train", "u2": "test"}
    with pytest.raises(SplitError, match="cannot read"):
        assign_splits([("u1", "a")], _list_params(tmp_path / "nope.csv"))
