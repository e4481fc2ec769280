"""Train/valid/test splits: a test set that only grows (hash mode, golden lists), and the seeded mode's
counts, per-speaker proportions, determinism and stability when utterances are added."""

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
    splits = assign_splits(utts, SplitParams(method="seeded", valid_fraction=0.1, test_fraction=0.2))
    assert set(splits) == {u for u, _ in utts}
    for spk, n in {"a": 3, "b": 10, "c": 41, "d": 1}.items():
        got = Counter(s for u, s in splits.items() if u.startswith(spk + "_"))
        train, valid, test = split_counts(n, 0.1, 0.2)
        assert (got["train"], got["valid"], got["test"]) == (train, valid, test)
    assert Counter(s for u, s in splits.items() if u.startswith("a_")) == {"train": 1, "valid": 1, "test": 1}


def test_deterministic_order_independent_and_seeded() -> None:
    utts = _corpus({"a": 30, "b": 30})
    params = SplitParams(method="seeded", seed=5)
    first = assign_splits(utts, params)
    shuffled = utts[:]
    random.Random(0).shuffle(shuffled)
    assert assign_splits(shuffled, params) == first
    assert assign_splits(list(reversed(utts)), params) == first
    other = assign_splits(utts, SplitParams(method="seeded", seed=6))
    assert other != first
    assert Counter(other.values()) == Counter(first.values())
    # Not simply the first/last ids in name order.
    assert {u for u, s in first.items() if s == "test"} != {"a_0000", "a_0001", "a_0002", "b_0000", "b_0001", "b_0002"}


def test_stable_when_utterances_are_added() -> None:
    params = SplitParams(method="seeded", seed=11, valid_fraction=0.1, test_fraction=0.1)
    base = _corpus({"a": 200})
    before = assign_splits(base, params)
    after = assign_splits(base + [(f"new_{i}", "a") for i in range(5)], params)
    changed = [u for u in before if after[u] != before[u]]
    # 5 new utterances can move only a few boundary utterances; a reshuffle would move ~60.
    assert len(changed) <= 10


def test_whole_corpus_mode() -> None:
    utts = _corpus({"a": 50, "b": 7})
    splits = assign_splits(utts, SplitParams(method="seeded", per_speaker=False, valid_fraction=0.1,
                                                  test_fraction=0.1))
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


# ------------------------------------------------------------------------------------------------
# hash mode: a test set that only grows
def _lj(n: int, start: int = 1) -> list[tuple[str, str]]:
    return [(f"LJ001-{i:04d}", "LJ") for i in range(start, start + n)]


def test_hash_split_grows_16_32_48_without_moving_a_clip() -> None:
    params = SplitParams(test_fraction=0.2, valid_fraction=0.1)
    seen_test: set[str] = set()
    before: dict[str, str] = {}
    for n in (16, 32, 48):
        splits = assign_splits(_lj(n), params)
        test = {u for u, s in splits.items() if s == "test"}
        assert seen_test <= test  # every earlier test clip stays test ...
        assert all(splits[u] == s for u, s in before.items())  # ... and no clip moves at all
        assert not seen_test & {u for u, s in splits.items() if s == "train"}  # no leak into train
        seen_test, before = test, splits
    assert 4 <= len(seen_test) <= 16 and Counter(before.values())["train"] >= 24


def test_hash_split_is_a_function_of_the_id_and_the_salt() -> None:
    utts = _corpus({"a": 40, "b": 40})
    first = assign_splits(utts, SplitParams())
    assert first == assign_splits(list(reversed(utts)), SplitParams())
    # each clip alone gets the split it gets in the corpus
    assert all(assign_splits([(u, spk)], SplitParams())[u] == first[u] for u, spk in utts[:20])
    assert assign_splits(utts, SplitParams(seed=99)) != first
    assert set(first.values()) == {"train", "valid", "test"}


def test_hash_split_by_speaker_keeps_a_speakers_clips_together() -> None:
    utts = _corpus({f"spk{k}": 5 for k in range(30)})
    splits = assign_splits(utts, SplitParams(unit="speaker", test_fraction=0.2))
    for k in range(30):
        assert len({splits[f"spk{k}_{i:04d}"] for i in range(5)}) == 1
    assert "test" in splits.values() and "train" in splits.values()
    grown = assign_splits(utts + [("spk3_0099", "spk3"), ("new_0000", "new")], SplitParams(unit="speaker",
                                                                                          test_fraction=0.2))
    assert grown["spk3_0099"] == splits["spk3_0000"] and all(grown[u] == s for u, s in splits.items())


def test_golden_test_and_valid_lists(tmp_path: Path) -> None:
    test_list = tmp_path / "test.txt"
    test_list.write_text("# golden set\nutt_id\nLJ001-0002\nLJ001-0007\nLJ009-9999\n")  # the last: not yet
    valid_list = tmp_path / "valid.csv"
    valid_list.write_text("LJ001-0003,some text\n")
    params = SplitParams(test_list=str(test_list), valid_list=str(valid_list), test_fraction=0.3)
    splits = assign_splits(_lj(16), params)
    assert {u for u, s in splits.items() if s == "test"} == {"LJ001-0002", "LJ001-0007"}
    assert {u for u, s in splits.items() if s == "valid"} == {"LJ001-0003"}
    grown = assign_splits(_lj(48), params)
    assert {u for u, s in grown.items() if s == "test"} == {"LJ001-0002", "LJ001-0007"}
    # without valid_list: valid by the hash, never test
    only_test = assign_splits(_lj(48), SplitParams(test_list=str(test_list)))
    assert {u for u, s in only_test.items() if s == "test"} == {"LJ001-0002", "LJ001-0007"}
    assert "valid" in only_test.values()
    both = tmp_path / "both.txt"
    both.write_text("LJ001-0002\n")
    with pytest.raises(SplitError, match="both list: LJ001-0002"):
        assign_splits(_lj(4), SplitParams(test_list=str(test_list), valid_list=str(both)))
    with pytest.raises(SplitError, match="cannot read"):
        assign_splits(_lj(4), SplitParams(test_list=str(tmp_path / "nope.txt")))


@pytest.mark.parametrize(("values", "message"), [
    ({"method": "random"}, r"split.method.*'hash' or 'seeded'"),
    ({"unit": "file"}, r"split.unit.*'utterance' or 'speaker'"),
    ({"method": "seeded", "test_list": "t.txt"}, r"need split.method: hash \(allowed: hash, seeded\)"),
    ({"list_file": "a.csv", "test_list": "t.txt"}, r"use it or split.test_list"),
])
def test_split_keys_are_validated(tmp_path: Path, values: dict, message: str) -> None:
    from ganpipe.config import ConfigError, load_params
    from tests.conftest import write_params

    write_params(tmp_path / "params.yaml", {"split": values})
    with pytest.raises(ConfigError, match=message):
        load_params(tmp_path / "params.yaml")
