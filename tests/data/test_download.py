"""Download: real LJSpeech clips packed like the real archive, served by a local HTTP server."""

from __future__ import annotations

import hashlib
import json
import logging
import tarfile
from pathlib import Path

import pytest

from tests.support.http_server import FileServer
from ganpipe.datasets import corpora
from ganpipe.datasets.download import (ChecksumError, DownloadError, IntegrityError,
                                       SizeMismatchError, fetch, fetch_with_retries, part_path,
                                       verified_marker)
from ganpipe.datasets.extract import safe_extract
from ganpipe.datasets.layouts import discover

pytestmark = pytest.mark.network

ARCHIVE_PATH = "/data/speech/LJSpeech-1.1.tar.bz2"
CHUNK = 64 * 1024


@pytest.fixture(scope="module")
def lj_archive(tmp_path_factory: pytest.TempPathFactory, ljspeech_mini: Path) -> bytes:
    """LJSpeech-1.1.tar.bz2 built from the 32 real clips, with the real archive's layout."""
    out = tmp_path_factory.mktemp("archive") / "LJSpeech-1.1.tar.bz2"
    with tarfile.open(out, "w:bz2", compresslevel=1) as tf:
        tf.add(ljspeech_mini, arcname="LJSpeech-1.1")
    return out.read_bytes()


@pytest.fixture()
def server(lj_archive: bytes):
    with FileServer() as srv:
        srv.add(ARCHIVE_PATH, lj_archive)
        yield srv


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fetch(server: FileServer, dest: Path, data: bytes, **kw):
    args = dict(size_bytes=len(data), checksum_algo="sha256", checksum=_sha(data),
                chunk_bytes=CHUNK, timeout=10, progress=False)
    args.update(kw)
    return fetch(server.url(ARCHIVE_PATH), dest, **args)


def test_download_verify_extract_discover(server: FileServer, lj_archive: bytes, tmp_path: Path,
                                          ljspeech_mini: Path):
    dest = tmp_path / "downloads" / "LJSpeech-1.1.tar.bz2"
    assert _fetch(server, dest, lj_archive) == dest
    assert dest.read_bytes() == lj_archive
    assert not part_path(dest).exists()
    marker = json.loads(verified_marker(dest).read_text())
    assert marker["checksum"] == _sha(lj_archive) and marker["size"] == len(lj_archive)
    [req] = server.requests_for(ARCHIVE_PATH)
    assert req.range is None and req.status == 200 and req.bytes_sent == len(lj_archive)

    target = safe_extract(dest, tmp_path / "raw" / "ljspeech", checksum=_sha(lj_archive))
    utts = discover("ljspeech", target)
    assert len(utts) == 32
    assert [u.utt_id for u in utts] == sorted(u.utt_id for u in utts)
    assert all(u.speaker == "LJ" and u.text for u in utts)
    for u in utts[:3]:
        assert Path(u.path).read_bytes() == (ljspeech_mini / "wavs" / f"{u.utt_id}.wav").read_bytes()
    first = (ljspeech_mini / "metadata.csv").read_text(encoding="utf-8").splitlines()[0].split("|")
    assert utts[0].utt_id == first[0] and utts[0].text == first[2]


def test_resume_after_truncated_transfer(server: FileServer, lj_archive: bytes, tmp_path: Path):
    dest = tmp_path / "LJSpeech-1.1.tar.bz2"
    cut = len(lj_archive) // 3
    server.cut_next(ARCHIVE_PATH, after_bytes=cut)
    with pytest.raises(DownloadError) as info:
        _fetch(server, dest, lj_archive)
    assert not isinstance(info.value, IntegrityError)
    assert server.url(ARCHIVE_PATH) in str(info.value)
    assert not dest.exists()
    assert part_path(dest).stat().st_size == cut
    assert part_path(dest).read_bytes() == lj_archive[:cut]

    _fetch(server, dest, lj_archive)
    first, second = server.requests_for(ARCHIVE_PATH)
    assert first.bytes_sent == cut
    assert second.range == f"bytes={cut}-" and second.status == 206
    assert second.bytes_sent == len(lj_archive) - cut
    assert _sha(dest.read_bytes()) == _sha(lj_archive)
    assert not part_path(dest).exists()


def test_second_fetch_is_a_noop(server: FileServer, lj_archive: bytes, tmp_path: Path):
    dest = tmp_path / "LJSpeech-1.1.tar.bz2"
    _fetch(server, dest, lj_archive)
    mtime = dest.stat().st_mtime_ns
    _fetch(server, dest, lj_archive)
    assert len(server.requests) == 1
    assert dest.stat().st_mtime_ns == mtime

    # Without the cache the existing file is re-verified locally: still no request.
    verified_marker(dest).unlink()
    _fetch(server, dest, lj_archive)
    assert len(server.requests) == 1
    assert verified_marker(dest).is_file()


def test_existing_file_with_wrong_content_is_downloaded_again(server: FileServer,
                                                              lj_archive: bytes, tmp_path: Path):
    dest = tmp_path / "LJSpeech-1.1.tar.bz2"
    dest.write_bytes(b"\0" * len(lj_archive))  # right size, wrong bytes
    _fetch(server, dest, lj_archive)
    assert len(server.requests) == 1
    assert dest.read_bytes() == lj_archive


def test_checksum_mismatch(server: FileServer, lj_archive: bytes, tmp_path: Path):
    dest = tmp_path / "LJSpeech-1.1.tar.bz2"
    wrong = _sha(b"not the archive")
    with pytest.raises(ChecksumError) as info:
        _fetch(server, dest, lj_archive, checksum=wrong)
    msg = str(info.value)
    assert server.url(ARCHIVE_PATH) in msg and wrong in msg and _sha(lj_archive) in msg
    assert isinstance(info.value, DownloadError)
    assert not dest.exists() and not part_path(dest).exists()
    assert not verified_marker(dest).exists()


def test_md5_checksum_mismatch_after_resume(server: FileServer, lj_archive: bytes,
                                            tmp_path: Path):
    dest = tmp_path / "LJSpeech-1.1.tar.bz2"
    part_path(dest).write_bytes(b"\xff" * 1000)  # a corrupt leftover that the server resumes
    with pytest.raises(ChecksumError) as info:
        _fetch(server, dest, lj_archive, checksum_algo="md5",
               checksum=hashlib.md5(lj_archive).hexdigest())
    assert info.value.actual == hashlib.md5(b"\xff" * 1000 + lj_archive[1000:]).hexdigest()
    assert server.requests[-1].range == "bytes=1000-"
    assert not dest.exists() and not part_path(dest).exists()
    # The next attempt starts from zero and succeeds.
    _fetch(server, dest, lj_archive, checksum_algo="md5",
           checksum=hashlib.md5(lj_archive).hexdigest())
    assert server.requests[-1].range is None
    assert dest.read_bytes() == lj_archive


def test_size_mismatch_fails_before_the_body(server: FileServer, lj_archive: bytes,
                                             tmp_path: Path):
    dest = tmp_path / "LJSpeech-1.1.tar.bz2"
    with pytest.raises(SizeMismatchError) as info:
        _fetch(server, dest, lj_archive, size_bytes=len(lj_archive) + 1)
    assert str(len(lj_archive) + 1) in str(info.value)
    assert server.requests[-1].bytes_sent < len(lj_archive)  # aborted on Content-Length
    assert not dest.exists() and not part_path(dest).exists()


def test_server_ignoring_range_restarts_from_zero(lj_archive: bytes, tmp_path: Path):
    dest = tmp_path / "LJSpeech-1.1.tar.bz2"
    with FileServer() as srv:
        url = srv.add(ARCHIVE_PATH, lj_archive, ignore_range=True)
        part_path(dest).write_bytes(b"garbage that must not survive" * 100)
        fetch(url, dest, size_bytes=len(lj_archive), checksum=_sha(lj_archive),
              chunk_bytes=CHUNK, timeout=10, progress=False)
        [req] = srv.requests
    assert req.range is not None and req.status == 200 and req.bytes_sent == len(lj_archive)
    assert dest.read_bytes() == lj_archive


def test_complete_part_with_unknown_size_gets_416(server: FileServer, lj_archive: bytes,
                                                  tmp_path: Path):
    dest = tmp_path / "LJSpeech-1.1.tar.bz2"
    part_path(dest).write_bytes(lj_archive)
    _fetch(server, dest, lj_archive, size_bytes=None)
    [req] = server.requests
    assert req.range == f"bytes={len(lj_archive)}-" and req.status == 416 and req.bytes_sent == 0
    assert dest.read_bytes() == lj_archive and not part_path(dest).exists()


def test_complete_part_with_known_size_needs_no_request(server: FileServer, lj_archive: bytes,
                                                        tmp_path: Path):
    dest = tmp_path / "LJSpeech-1.1.tar.bz2"
    part_path(dest).write_bytes(lj_archive)
    _fetch(server, dest, lj_archive)
    assert server.requests == []
    assert dest.read_bytes() == lj_archive


def test_server_error_keeps_part_for_next_try(server: FileServer, lj_archive: bytes,
                                              tmp_path: Path):
    dest = tmp_path / "LJSpeech-1.1.tar.bz2"
    part_path(dest).write_bytes(lj_archive[:5000])
    server.fail_next(ARCHIVE_PATH, 503)
    with pytest.raises(DownloadError, match="HTTP 503") as info:
        _fetch(server, dest, lj_archive)
    assert server.url(ARCHIVE_PATH) in str(info.value)
    assert part_path(dest).read_bytes() == lj_archive[:5000]
    _fetch(server, dest, lj_archive)
    assert server.requests[-1].bytes_sent == len(lj_archive) - 5000
    assert dest.read_bytes() == lj_archive


def test_missing_url_is_a_download_error(server: FileServer, tmp_path: Path):
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(server.url("/nope.tar.gz"), tmp_path / "nope.tar.gz", size_bytes=None,
              checksum=None, timeout=10, progress=False)
    assert not (tmp_path / "nope.tar.gz").exists()


def test_connection_refused_names_the_url(tmp_path: Path):
    with FileServer() as srv:
        url = srv.add("/x", b"x")
    # The server is stopped: nothing listens on that port any more.
    with pytest.raises(DownloadError) as info:
        fetch(url, tmp_path / "x", size_bytes=1, checksum=None, timeout=5, progress=False)
    assert url in str(info.value)


def test_fetch_with_retries_resumes_each_time(server: FileServer, lj_archive: bytes,
                                              tmp_path: Path):
    dest = tmp_path / "LJSpeech-1.1.tar.bz2"
    step = len(lj_archive) // 4
    server.cut_next(ARCHIVE_PATH, after_bytes=step, times=2)
    fetch_with_retries(server.url(ARCHIVE_PATH), dest, retries=2, delay=0,
                       size_bytes=len(lj_archive), checksum=_sha(lj_archive), chunk_bytes=CHUNK,
                       timeout=10, progress=False)
    reqs = server.requests_for(ARCHIVE_PATH)
    assert [r.range for r in reqs] == [None, f"bytes={step}-", f"bytes={2 * step}-"]
    assert sum(r.bytes_sent for r in reqs) == len(lj_archive)
    assert dest.read_bytes() == lj_archive


def test_fetch_with_retries_gives_up(server: FileServer, lj_archive: bytes, tmp_path: Path):
    server.fail_next(ARCHIVE_PATH, 500, times=3)
    with pytest.raises(DownloadError, match="HTTP 500"):
        fetch_with_retries(server.url(ARCHIVE_PATH), tmp_path / "a.tar.bz2", retries=1, delay=0,
                           size_bytes=len(lj_archive), checksum=_sha(lj_archive), timeout=10,
                           progress=False)
    assert len(server.requests) == 2


def test_fetch_with_retries_does_not_retry_integrity_errors(server: FileServer,
                                                            lj_archive: bytes, tmp_path: Path):
    with pytest.raises(ChecksumError):
        fetch_with_retries(server.url(ARCHIVE_PATH), tmp_path / "a.tar.bz2", retries=3, delay=0,
                           size_bytes=len(lj_archive), checksum=_sha(b"other"), timeout=10,
                           progress=False)
    assert len(server.requests) == 1


def test_unverified_download_warns_and_records_sha(server: FileServer, lj_archive: bytes,
                                                   tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture):
    dest = tmp_path / "sc09.tar.gz"
    with caplog.at_level(logging.WARNING, logger="ganpipe.datasets.download"):
        fetch(server.url(ARCHIVE_PATH), dest, size_bytes=None, checksum=None, timeout=10,
              progress=False)
    assert dest.read_bytes() == lj_archive
    assert any("WITHOUT verification" in r.getMessage() for r in caplog.records)
    marker = json.loads(verified_marker(dest).read_text())
    assert marker["checksum"] is None and marker["observed_sha256"] == _sha(lj_archive)
    fetch(server.url(ARCHIVE_PATH), dest, size_bytes=None, checksum=None, progress=False)
    assert len(server.requests) == 1


# ---------------------------------------------------------------------------------------------
# registry
# ---------------------------------------------------------------------------------------------
def test_registry_entries_are_complete():
    assert set(corpora.DATASETS) == {"ljspeech", "vctk", "libritts", "sc09", "maestro", "local",
                                      "demo", "demo_music"}
    for name, spec in corpora.DATASETS.items():
        assert spec.name == name and spec.layout == ("demo" if name == "demo_music" else name)
        for a in spec.archives:
            assert a.url.startswith(("http://", "https://")) and a.url.endswith("/" + a.filename)
    lj = corpora.archives_for("ljspeech")[0]
    assert lj.size_bytes == 2_748_572_632 and lj.checksum_algo == "sha256"
    assert lj.checksum == "be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5"
    assert lj.extracted_root == "LJSpeech-1.1" and lj.stem == "LJSpeech-1.1"
    assert corpora.archives_for("local") == [] and corpora.archives_for("demo") == []
    assert corpora.archives_for("demo_music") == []
    # music corpora are cut into clips by default (audio.clips.enabled: auto), speech is not
    assert {n for n, s in corpora.DATASETS.items() if s.long_audio} == {"maestro", "demo_music"}
    assert not corpora.archives_for("sc09")[0].verified


def test_archives_for_libritts_follows_the_requested_subsets():
    got = corpora.archives_for("libritts", ("test-clean", "dev-clean", "test-clean"))
    assert [a.stem for a in got] == ["test-clean", "dev-clean"]
    assert all(a.extracted_root == "LibriTTS" and a.verified for a in got)
    assert len(corpora.archives_for("libritts", corpora.LIBRITTS_SUBSETS)) == 7
    with pytest.raises(corpora.UnknownDatasetError, match="train-clean-9000"):
        corpora.archives_for("libritts", ("train-clean-9000",))
    with pytest.raises(corpora.UnknownDatasetError, match="timit"):
        corpora.archives_for("timit")


def test_archive_spec_rejects_malformed_checksums():
    with pytest.raises(ValueError, match="64"):
        corpora.ArchiveSpec("https://x/a.zip", "a.zip", 1, "sha256", "abc", None)
    with pytest.raises(ValueError, match="md5"):
        corpora.ArchiveSpec("https://x/a.zip", "a.zip", 1, "md5", "0" * 64, None)
