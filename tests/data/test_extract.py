"""safe_extract: real clips in every supported format, and hostile archives that must be refused."""

from __future__ import annotations

import io
import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from ganpipe.datasets import extract
from ganpipe.datasets.extract import MARKER, ExtractError, UnsafeArchiveError, safe_extract


@pytest.fixture()
def clips(lj_wavs: list[Path]) -> list[Path]:
    return lj_wavs[:3]


def _listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w") -> Path:
    with tarfile.open(path, mode) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _assert_refused(archive: Path, tmp_path: Path, member: str,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Rejected, naming ``member``, by the up-front checks (any member write fails the test);
    no target, no temp folder, nothing new anywhere in tmp."""

    def wrote(*a: object, **k: object) -> None:
        raise AssertionError("members were written before the archive was refused")

    before = _listing(tmp_path)
    target = tmp_path / "out" / "dataset"
    with monkeypatch.context() as m:
        m.setattr(tarfile.TarFile, "extractall", wrote)
        m.setattr(extract.shutil, "copyfileobj", wrote)
        m.setattr(extract.os, "symlink", wrote)
        with pytest.raises(UnsafeArchiveError) as info:
            safe_extract(archive, target)
    assert member in str(info.value) and str(archive) in str(info.value)
    assert not target.exists() and not target.parent.exists()
    assert _listing(tmp_path) == before


# ---------------------------------------------------------------------------------------------
# good archives
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix,mode", [(".tar", "w"), (".tar.gz", "w:gz"), (".tgz", "w:gz"),
                                         (".tar.bz2", "w:bz2"), (".tar.xz", "w:xz")])
def test_tar_formats_roundtrip(tmp_path: Path, clips: list[Path], suffix: str, mode: str):
    archive = tmp_path / f"corpus{suffix}"
    with tarfile.open(archive, mode) as tf:
        for clip in clips:
            tf.add(clip, arcname=f"corpus/wavs/{clip.name}")
    target = safe_extract(archive, tmp_path / "raw")
    assert target == tmp_path / "raw"
    for clip in clips:
        assert (target / "corpus" / "wavs" / clip.name).read_bytes() == clip.read_bytes()
    assert (target / MARKER).is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_zip_roundtrip_with_members_at_the_root(tmp_path: Path, clips: list[Path]):
    # Like VCTK-Corpus-0.92.zip: no single top-level folder.
    archive = tmp_path / "VCTK-Corpus-0.92.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for clip in clips:
            zf.write(clip, f"wav48_silence_trimmed/p225/{clip.stem}_mic1.wav")
        zf.writestr("speaker-info.txt", "ID AGE GENDER\n")
    target = safe_extract(archive, tmp_path / "raw" / "vctk")
    for clip in clips:
        got = target / "wav48_silence_trimmed" / "p225" / f"{clip.stem}_mic1.wav"
        assert got.read_bytes() == clip.read_bytes()
    assert (target / "speaker-info.txt").read_text() == "ID AGE GENDER\n"


def test_links_inside_the_archive_are_kept(tmp_path: Path, clips: list[Path]):
    data = clips[0].read_bytes()
    archive = _tar(tmp_path / "links.tar", [
        _file("c/wavs/a.wav", data),
        _link("c/latest.wav", "wavs/a.wav"),
        _link("c/hard.wav", "c/wavs/a.wav", tarfile.LNKTYPE),
    ])
    target = safe_extract(archive, tmp_path / "raw")
    assert (target / "c" / "latest.wav").is_symlink()
    assert (target / "c" / "latest.wav").read_bytes() == data
    assert (target / "c" / "hard.wav").read_bytes() == data


def test_second_call_returns_without_extracting(tmp_path: Path, clips: list[Path],
                                                monkeypatch: pytest.MonkeyPatch):
    archive = tmp_path / "c.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(clips[0], arcname=f"c/{clips[0].name}")
    target = safe_extract(archive, tmp_path / "raw", checksum="ab" * 32)

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("extracted twice")

    monkeypatch.setattr(extract, "_extract_tar", boom)
    assert safe_extract(archive, target, checksum="ab" * 32) == target
    assert safe_extract(archive, target) == target  # identified by name + size + mtime
    archive.unlink()  # with the checksum, the archive may even be gone
    assert safe_extract(archive, target, checksum="ab" * 32) == target


def test_a_different_archive_replaces_an_earlier_extraction(tmp_path: Path, clips: list[Path]):
    archive = tmp_path / "c.tar"
    _tar(archive, [_file("c/old.wav", clips[0].read_bytes())])
    target = safe_extract(archive, tmp_path / "raw", checksum="11" * 32)
    _tar(archive, [_file("c/new.wav", clips[1].read_bytes())])
    safe_extract(archive, target, checksum="22" * 32)
    assert _listing(target / "c") == {"new.wav"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tar", "raw"]


def test_existing_foreign_folder_is_not_overwritten(tmp_path: Path, clips: list[Path]):
    archive = _tar(tmp_path / "c.tar", [_file("c/a.wav", clips[0].read_bytes())])
    target = tmp_path / "raw"
    target.mkdir()
    (target / "mine.txt").write_text("keep")
    with pytest.raises(ExtractError, match="not created by ganpipe"):
        safe_extract(archive, target)
    assert _listing(target) == {"mine.txt"}


def test_failure_midway_leaves_no_partial_dataset(tmp_path: Path, clips: list[Path],
                                                  monkeypatch: pytest.MonkeyPatch):
    archive = tmp_path / "c.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for clip in clips:
            zf.write(clip, f"c/{clip.name}")
    calls = {"n": 0}
    real_copy = shutil.copyfileobj

    def copy_then_fail(src, dst, length=0):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(28, "No space left on device")
        return real_copy(src, dst, length)

    monkeypatch.setattr(extract.shutil, "copyfileobj", copy_then_fail)
    with pytest.raises(ExtractError, match="No space left"):
        safe_extract(archive, tmp_path / "raw")
    assert calls["n"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.zip"]


def test_corrupt_archive_is_an_extract_error(tmp_path: Path, clips: list[Path]):
    archive = tmp_path / "c.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        for clip in clips:
            tf.add(clip, arcname=f"c/{clip.name}")
    archive.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ExtractError, match="c.tar.gz"):
        safe_extract(archive, tmp_path / "raw")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.tar.gz"]


def test_unsupported_file_is_an_extract_error(tmp_path: Path, clips: list[Path]):
    with pytest.raises(ExtractError, match="not a supported archive"):
        safe_extract(clips[0], tmp_path / "raw")
    assert not (tmp_path / "raw").exists()


# ---------------------------------------------------------------------------------------------
# hostile archives
# ---------------------------------------------------------------------------------------------
def test_tar_with_parent_escape_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clips: list[Path]):
    archive = _tar(tmp_path / "evil.tar.gz", [
        _file("c/ok.wav", clips[0].read_bytes()),
        _file("../evil.txt", b"pwned"),
    ], "w:gz")
    _assert_refused(archive, tmp_path, "../evil.txt", monkeypatch)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


def test_tar_with_absolute_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    victim = tmp_path / "victim" / "abs_evil.txt"
    archive = _tar(tmp_path / "abs.tar", [_file(str(victim), b"pwned")])
    _assert_refused(archive, tmp_path, str(victim), monkeypatch)
    assert not victim.exists()


def test_tar_with_symlink_to_etc_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    archive = _tar(tmp_path / "sym.tar", [
        _link("c/etc", "/etc"),
        _file("c/etc/evil.conf", b"pwned"),
    ])
    _assert_refused(archive, tmp_path, "c/etc", monkeypatch)


def test_tar_with_relative_symlink_out_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    archive = _tar(tmp_path / "sym.tar", [_link("c/up", "../../..")])
    _assert_refused(archive, tmp_path, "c/up", monkeypatch)


def test_tar_with_symlink_chain_escape_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # 'here' -> '.' is harmless and 'here/../x' is lexically inside, but through the link it is
    # the parent of the target folder.
    archive = _tar(tmp_path / "chain.tar", [
        _link("here", "."),
        _link("out", "here/../victim"),
        _file("out/evil.txt", b"pwned"),
    ])
    _assert_refused(archive, tmp_path, "out", monkeypatch)


def test_tar_with_hardlink_out_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    archive = _tar(tmp_path / "hard.tar", [_link("c/passwd", "../../etc/passwd", tarfile.LNKTYPE)])
    _assert_refused(archive, tmp_path, "c/passwd", monkeypatch)


@pytest.mark.parametrize("kind", [tarfile.FIFOTYPE, tarfile.CHRTYPE, tarfile.BLKTYPE])
def test_tar_with_special_files_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: bytes):
    info = tarfile.TarInfo("c/special")
    info.type = kind
    archive = _tar(tmp_path / "special.tar", [_file("c/a.txt", b"a"), (info, None)])
    _assert_refused(archive, tmp_path, "c/special", monkeypatch)


def test_all_members_are_checked_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lj_wavs: list[Path]):
    members = [_file(f"c/{p.name}", p.read_bytes()) for p in lj_wavs[:10]]
    archive = _tar(tmp_path / "late.tar", members + [_file("c/../../late_evil.txt", b"x")])
    _assert_refused(archive, tmp_path, "late_evil.txt", monkeypatch)


def test_zip_with_parent_escape_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clips: list[Path]):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(clips[0], "c/ok.wav")
        zf.writestr("../evil.txt", b"pwned")
    _assert_refused(archive, tmp_path, "../evil.txt", monkeypatch)
    assert not (tmp_path / "evil.txt").exists()


def test_zip_with_backslash_escape_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    archive = tmp_path / "win.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("c\\..\\..\\evil.txt", b"pwned")
    _assert_refused(archive, tmp_path, "evil.txt", monkeypatch)


def test_zip_with_absolute_path_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    archive = tmp_path / "abs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("/tmp/abs_evil.txt", b"pwned")
    _assert_refused(archive, tmp_path, "/tmp/abs_evil.txt", monkeypatch)


def test_zip_with_symlink_to_etc_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    archive = tmp_path / "sym.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("c/etc")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "/etc")
    _assert_refused(archive, tmp_path, "c/etc", monkeypatch)


def test_zip_symlink_inside_is_extracted_as_a_link(tmp_path: Path, clips: list[Path]):
    archive = tmp_path / "ok.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(clips[0], "c/a.wav")
        info = zipfile.ZipInfo("c/b.wav")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(info, "a.wav")
    target = safe_extract(archive, tmp_path / "raw")
    assert os.readlink(target / "c" / "b.wav") == "a.wav"
    assert (target / "c" / "b.wav").read_bytes() == clips[0].read_bytes()
