"""Safe, atomic, idempotent extraction of dataset archives (.tar[.gz|.bz2|.xz], .tgz, .zip).

Every member is checked *before anything is written*: absolute paths, ``..`` components, links
whose target (resolved through the archive's own earlier symlinks) leaves the target folder, and
device/FIFO members are rejected with :class:`UnsafeArchiveError` naming the member. Extraction then
goes into a temporary folder beside ``target_dir`` that is renamed into place only when complete,
so an interrupted or failed extraction never leaves a half-populated dataset. A marker file
(``.ganpipe-extracted.json``) inside ``target_dir`` records the archive; a second call with the same
archive returns at once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

MARKER = ".ganpipe-extracted.json"
_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
_MAX_LINK_DEPTH = 40

EntryKind = Literal["file", "dir", "symlink", "hardlink"]


class ExtractError(RuntimeError):
    """An archive that cannot be extracted (unreadable, unsupported); names the archive."""


class UnsafeArchiveError(ExtractError):
    """A member that would write outside the target folder or is not a plain file/dir/link."""

    def __init__(self, archive: Path, member: str, reason: str):
        super().__init__(f"{archive}: unsafe member {member!r}: {reason}")
        self.archive = str(archive)
        self.member = member
        self.reason = reason


@dataclass(frozen=True)
class _Entry:
    name: str  # normalised relative POSIX path
    kind: EntryKind
    link: str = ""  # symlink target (relative to the link's folder) or hardlink target (to root)


# ---------------------------------------------------------------------------------------------
# member checks
# ---------------------------------------------------------------------------------------------
def _parts(path: str) -> list[str]:
    """Path components ('.' and empty ones dropped, '..' kept). Backslashes count as separators:
    archives made on Windows use them, and 'a\\..\\..\\x' must not slip through the checks."""
    return [p for p in path.replace("\\", "/").split("/") if p not in ("", ".")]


def _check_name(archive: Path, raw: str) -> str:
    if not raw or raw.strip() in ("", ".", "./"):
        return ""
    norm = raw.replace("\\", "/")
    if norm.startswith("/") or re.match(r"[A-Za-z]:/", norm):
        raise UnsafeArchiveError(archive, raw, "absolute path")
    if "\x00" in raw:
        raise UnsafeArchiveError(archive, raw, "NUL byte in name")
    parts = _parts(raw)
    if ".." in parts:
        raise UnsafeArchiveError(archive, raw, "'..' path component")
    return "/".join(parts)


class _Resolver:
    """Resolves paths inside the (future) target folder through the archive's symlinks."""

    def __init__(self) -> None:
        self.links: dict[str, str] = {}  # physical path -> raw symlink target

    def resolve(self, parts: list[str], depth: int = 0) -> list[str] | None:
        """Physical path components, or ``None`` when the path leaves the target folder."""
        if depth > _MAX_LINK_DEPTH:
            return None
        stack: list[str] = []
        for part in parts:
            if part in ("", "."):
                continue
            if part == "..":
                if not stack:
                    return None
                stack.pop()
                continue
            stack.append(part)
            target = self.links.get("/".join(stack))
            if target is not None:
                if target.startswith("/"):
                    return None
                resolved = self.resolve(stack[:-1] + _parts(target), depth + 1)
                if resolved is None:
                    return None
                stack = resolved
        return stack


def _check_entries(archive: Path, entries: list[_Entry]) -> None:
    resolver = _Resolver()
    for e in entries:
        if not e.name:
            continue
        parts = e.name.split("/")
        parent = resolver.resolve(parts[:-1])
        if parent is None:
            raise UnsafeArchiveError(archive, e.name, "written through a link that leaves the "
                                                      "target folder")
        physical = "/".join(parent + parts[-1:])
        if e.kind == "symlink":
            if not e.link:
                raise UnsafeArchiveError(archive, e.name, "symlink with an empty target")
            if e.link.replace("\\", "/").startswith("/"):
                raise UnsafeArchiveError(archive, e.name, f"symlink to absolute path {e.link!r}")
            if resolver.resolve(parent + _parts(e.link)) is None:
                raise UnsafeArchiveError(archive, e.name,
                                         f"symlink target {e.link!r} leaves the target folder")
            if physical in resolver.links:
                raise UnsafeArchiveError(archive, e.name, "symlink member appears twice")
            resolver.links[physical] = e.link
        elif e.kind == "hardlink":
            link = e.link.replace("\\", "/")
            if link.startswith("/"):
                raise UnsafeArchiveError(archive, e.name, f"hard link to absolute path {e.link!r}")
            if resolver.resolve(_parts(link)) is None:
                raise UnsafeArchiveError(archive, e.name,
                                         f"hard link target {e.link!r} leaves the target folder")
        else:
            if resolver.resolve(parts) is None:
                raise UnsafeArchiveError(archive, e.name, "written through a link that leaves "
                                                          "the target folder")


# ---------------------------------------------------------------------------------------------
# tar
# ---------------------------------------------------------------------------------------------
def _tar_entries(archive: Path, tf: tarfile.TarFile) -> list[_Entry]:
    entries: list[_Entry] = []
    for m in tf.getmembers():
        name = _check_name(archive, m.name)
        if m.isreg():
            kind: EntryKind = "file"
        elif m.isdir():
            kind = "dir"
        elif m.issym():
            kind = "symlink"
        elif m.islnk():
            kind = "hardlink"
        elif m.ischr() or m.isblk():
            raise UnsafeArchiveError(archive, m.name, "device file")
        elif m.isfifo():
            raise UnsafeArchiveError(archive, m.name, "FIFO")
        else:
            raise UnsafeArchiveError(archive, m.name, f"unsupported member type {m.type!r}")
        entries.append(_Entry(name, kind, m.linkname if kind in ("symlink", "hardlink") else ""))
    return entries


def _extract_tar(archive: Path, staging: _Staging) -> None:
    with tarfile.open(archive, "r:*") as tf:
        _check_entries(archive, _tar_entries(archive, tf))
        # Second line of defence: the stdlib 'data' filter re-checks every member as it is written.
        tf.extractall(staging.create(), filter="data")


# ---------------------------------------------------------------------------------------------
# zip
# ---------------------------------------------------------------------------------------------
def _zip_kind(archive: Path, info: zipfile.ZipInfo) -> EntryKind:
    mode = info.external_attr >> 16
    if info.is_dir():
        return "dir"
    if mode and stat.S_ISLNK(mode):
        return "symlink"
    if mode and (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
        raise UnsafeArchiveError(archive, info.filename, "device file")
    if mode and stat.S_ISFIFO(mode):
        raise UnsafeArchiveError(archive, info.filename, "FIFO")
    if mode and stat.S_ISSOCK(mode):
        raise UnsafeArchiveError(archive, info.filename, "socket")
    return "file"


def _zip_entries(archive: Path, zf: zipfile.ZipFile) -> list[tuple[_Entry, zipfile.ZipInfo]]:
    out: list[tuple[_Entry, zipfile.ZipInfo]] = []
    for info in zf.infolist():
        name = _check_name(archive, info.filename)
        kind = _zip_kind(archive, info)
        link = ""
        if kind == "symlink":
            if info.file_size > 4096:
                raise UnsafeArchiveError(archive, info.filename, "oversized symlink target")
            link = zf.read(info).decode("utf-8", errors="strict")
        out.append((_Entry(name, kind, link), info))
    return out


def _extract_zip(archive: Path, staging: _Staging) -> None:
    with zipfile.ZipFile(archive) as zf:
        entries = _zip_entries(archive, zf)
        _check_entries(archive, [e for e, _ in entries])
        dest = staging.create()
        for entry, info in entries:
            if not entry.name:
                continue
            path = dest.joinpath(*entry.name.split("/"))
            if entry.kind == "dir":
                path.mkdir(parents=True, exist_ok=True)
            elif entry.kind == "symlink":
                path.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(entry.link, path)
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                # Never write through something already there (e.g. a symlink member).
                if path.is_symlink():
                    path.unlink()
                with zf.open(info) as src, open(path, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------
class _Staging:
    """The temporary sibling of ``target_dir``, created only once every member passed the checks
    (so a refused archive leaves no trace, not even ``target_dir``'s parent)."""

    def __init__(self, target_dir: Path):
        self.target_dir = target_dir
        self.path: Path | None = None

    def create(self) -> Path:
        self.target_dir.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.target_dir.name}.extract-",
                                          dir=self.target_dir.parent))
        return self.path

    def discard(self) -> None:
        if self.path is not None:
            shutil.rmtree(self.path, ignore_errors=True)


def archive_format(archive: Path) -> Literal["tar", "zip"]:
    name = archive.name.lower()
    if name.endswith(".zip"):
        return "zip"
    if name.endswith(_TAR_SUFFIXES):
        return "tar"
    if zipfile.is_zipfile(archive):
        return "zip"
    if tarfile.is_tarfile(archive):
        return "tar"
    raise ExtractError(f"{archive}: not a supported archive (.tar, .tar.gz/.tgz, .tar.bz2, "
                       ".tar.xz or .zip)")


def _archive_identity(archive: Path, checksum: str | None) -> dict[str, object]:
    st = archive.stat()
    return {"archive": archive.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "checksum": checksum}


def _read_marker(target_dir: Path) -> dict[str, object] | None:
    try:
        data = json.loads((target_dir / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def is_extracted(archive: Path, target_dir: Path, checksum: str | None = None) -> bool:
    """True when ``target_dir`` holds a completed extraction of this archive.

    With ``checksum`` (the archive's published checksum) the marker must carry the same checksum
    (the archive itself may since have been deleted); without it, name, size and mtime must match.
    """
    marker = _read_marker(target_dir)
    if marker is None or marker.get("archive") != archive.name:
        return False
    if checksum is not None:
        return marker.get("checksum") == checksum
    try:
        st = archive.stat()
    except OSError:
        return False
    return marker.get("size") == st.st_size and marker.get("mtime_ns") == st.st_mtime_ns


def safe_extract(archive: Path, target_dir: Path, *, checksum: str | None = None) -> Path:
    """Extract ``archive`` so that its members end up under ``target_dir``; returns ``target_dir``.

    Raises :class:`UnsafeArchiveError` (nothing written, ``target_dir`` untouched) for unsafe
    members, :class:`ExtractError` for unreadable archives or a ``target_dir`` that exists but was
    not made by this function. A ``target_dir`` from an earlier extraction of a *different*
    archive is replaced atomically.
    """
    archive = Path(archive)
    target_dir = Path(target_dir)
    if is_extracted(archive, target_dir, checksum):
        log.debug("%s already extracted into %s", archive, target_dir)
        return target_dir
    if not archive.is_file():
        raise ExtractError(f"{archive}: archive not found")
    if target_dir.exists() and _read_marker(target_dir) is None:
        raise ExtractError(f"{target_dir} exists but was not created by ganpipe's extraction of "
                           f"{archive.name}; move it away or delete it")
    fmt = archive_format(archive)
    # Check, then extract into a temporary sibling: the checks raise before anything is written,
    # and any later failure removes the sibling, so target_dir only ever appears complete.
    staging = _Staging(target_dir)
    try:
        try:
            if fmt == "tar":
                _extract_tar(archive, staging)
            else:
                _extract_zip(archive, staging)
        except tarfile.FilterError as exc:
            raise UnsafeArchiveError(archive, exc.tarinfo.name, str(exc)) from exc
        except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
            raise ExtractError(f"{archive}: cannot extract ({type(exc).__name__}: {exc})") from exc
        if staging.path is None:  # every extractor creates it; guard against a future one
            raise ExtractError(f"{archive}: extraction produced no staging folder")
        (staging.path / MARKER).write_text(
            json.dumps(_archive_identity(archive, checksum), indent=2) + "\n")
        _swap_into_place(staging.path, target_dir)
    except BaseException:
        staging.discard()
        raise
    log.info("extracted %s into %s", archive, target_dir)
    return target_dir


def _swap_into_place(tmp: Path, target_dir: Path) -> None:
    if not target_dir.exists():
        os.rename(tmp, target_dir)
        return
    # An older extraction (ours, per its marker) of another archive: swap, then delete the old one.
    trash = Path(tempfile.mkdtemp(prefix=f".{target_dir.name}.old-", dir=target_dir.parent))
    os.rename(target_dir, trash / target_dir.name)
    os.rename(tmp, target_dir)
    shutil.rmtree(trash, ignore_errors=True)
