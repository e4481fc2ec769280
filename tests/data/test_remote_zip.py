"""Partial MAESTRO: members of a zip served by the local HTTP server, fetched with Range requests."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tests.support.http_server import FileServer
from ganpipe.config import ConfigError, parse_params
from ganpipe.datasets import remote_zip
from ganpipe.datasets.layouts import discover
from tests.support.maestro_zip import ROOT, ROWS, ZIP_PATH, build_zip

pytestmark = pytest.mark.network

@pytest.fixture(scope="module")
def archive() -> tuple[bytes, dict[str, bytes]]:
    return build_zip()


def _select(split: str = "train", n: int | None = 2, seconds: float | None = None):
    return lambda zf: remote_zip.maestro_members(zf, split, n, seconds)


def test_first_n_train_members_only_crc_checked_and_resumable(archive, tmp_path: Path):
    data, members = archive
    with FileServer() as srv:
        url = srv.add(ZIP_PATH, data)
        got = remote_zip.fetch_members(url, tmp_path / "cache", _select(n=3), readahead=16 * 1024)
        names = [p.relative_to(tmp_path / "cache").as_posix() for p in got.paths]
        # the CSV, then the first 3 train performances in CSV order (one of them zip64, one stored)
        assert names == [f"{ROOT}/maestro-v3.0.0.csv", f"{ROOT}/2004/piece_a.wav",
                         f"{ROOT}/2006/piece_c.wav", f"{ROOT}/2008/piece_e.wav"]
        for name in names[1:]:
            assert (tmp_path / "cache" / name).read_bytes() == members[name]
        assert got.downloaded == 4 and got.cached == 0
        reqs = srv.requests_for(ZIP_PATH)
        assert all(r.range and r.status == 206 for r in reqs)
        sent = sum(r.bytes_sent for r in reqs)
        infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
        wanted = sum(i.compress_size for i in infos if i.filename in names)
        # the wanted members' bytes plus read-ahead slack: the other performances were never sent
        assert wanted < sent < wanted + 8 * 16 * 1024 < len(data)
        assert not list((tmp_path / "cache").rglob("*.tmp-*"))

        # a second run fetches nothing but the zip's directory
        before = len(srv.requests_for(ZIP_PATH))
        again = remote_zip.fetch_members(url, tmp_path / "cache", _select(n=3), readahead=16 * 1024)
        assert again.downloaded == 0 and again.cached == 4
        # a damaged cached member (same size, other bytes) is fetched again, only it
        bad = tmp_path / "cache" / names[2]
        raw = bytearray(bad.read_bytes())
        raw[-10] ^= 0xFF
        bad.write_bytes(bytes(raw))
        third = remote_zip.fetch_members(url, tmp_path / "cache", _select(n=3), readahead=16 * 1024)
        assert third.downloaded == 1 and bad.read_bytes() == members[names[2]]
        assert len(srv.requests_for(ZIP_PATH)) > before

    # published into the raw folder, the maestro layout finds exactly those performances
    target = tmp_path / "raw" / "maestro-v3.0.0"
    (target / ROOT / "2009").mkdir(parents=True)
    (target / ROOT / "2009" / "stale.wav").write_bytes(b"x")  # from a bigger selection earlier
    remote_zip.publish_members(got.paths, tmp_path / "cache", target)
    utts = discover("maestro", tmp_path / "raw")
    assert [u.utt_id for u in utts] == ["2004__piece_a", "2006__piece_c", "2008__piece_e"]


def test_duration_budget_and_split(archive, tmp_path: Path):
    data, _ = archive
    with FileServer() as srv:
        url = srv.add(ZIP_PATH, data)
        got = remote_zip.fetch_members(url, tmp_path / "c", _select(n=None, seconds=350.0))
        assert [p.name for p in got.paths] == ["maestro-v3.0.0.csv", "piece_a.wav", "piece_c.wav"]
        got = remote_zip.fetch_members(url, tmp_path / "c", _select("test", n=5))
        assert [p.name for p in got.paths] == ["maestro-v3.0.0.csv", "piece_d.wav"]
    only_train = zipfile.ZipFile(io.BytesIO(build_zip(rows=ROWS[:1], zip64_member=0)[0]))
    with pytest.raises(remote_zip.MemberError, match="no performance of split 'validation'"):
        remote_zip.maestro_members(only_train, "validation", 1)


def test_member_with_wrong_crc_is_refused_and_not_written(tmp_path: Path):
    data, members = build_zip()
    name = f"{ROOT}/2004/piece_a.wav"
    # flip a byte inside the first (deflated) audio member's data: the zip's CRC-32 no longer fits
    zf = zipfile.ZipFile(io.BytesIO(data))
    info = zf.getinfo(f"{ROOT}/2006/piece_c.wav")  # stored: its bytes appear verbatim
    offset = data.index(members[info.filename][100:140])
    broken = bytearray(data)
    broken[offset + 5] ^= 0xFF
    with FileServer() as srv:
        url = srv.add(ZIP_PATH, bytes(broken))
        with pytest.raises(remote_zip.MemberError, match="piece_c.wav.*(CRC|crc)"):
            remote_zip.fetch_members(url, tmp_path / "cache", _select(n=2))
    assert (tmp_path / "cache" / name).is_file()  # fetched before the broken one
    assert not (tmp_path / "cache" / info.filename).exists()
    assert not list((tmp_path / "cache").rglob("*.tmp-*"))


def test_server_without_range_support_is_a_clear_error(archive, tmp_path: Path):
    data, _ = archive
    with FileServer() as srv:
        url = srv.add(ZIP_PATH, data, ignore_range=True)
        with pytest.raises(remote_zip.RangeNotSupportedError, match="ignores HTTP Range"):
            remote_zip.fetch_members(url, tmp_path / "cache", _select())
    assert not (tmp_path / "cache").exists()


def test_unsafe_member_names_are_refused():
    for bad in ("/etc/passwd", "../x.wav", "a/../../x.wav", "C:/x.wav"):
        with pytest.raises(remote_zip.MemberError, match="unsafe member name"):
            remote_zip.safe_member_path(bad)
    assert remote_zip.safe_member_path("maestro-v3.0.0/2004/a.wav").as_posix() == "maestro-v3.0.0/2004/a.wav"


def test_partial_maestro_knobs_are_validated():
    p = parse_params({"dataset": {"name": "maestro", "maestro_max_files": 3}})
    assert p.dataset.maestro_max_files == 3 and p.dataset.maestro_split == "train"
    assert parse_params({}).dataset.maestro_max_files is None  # the whole archive by default
    for bad, key in (({"maestro_max_files": 0}, "maestro_max_files"),
                     ({"maestro_max_hours": -1}, "maestro_max_hours"),
                     ({"maestro_split": "dev"}, "maestro_split"),
                     ({"maestro_without_range": "maybe"}, "maestro_without_range")):
        with pytest.raises(ConfigError, match=f"dataset.{key}"):
            parse_params({"dataset": {"name": "maestro", **bad}})
