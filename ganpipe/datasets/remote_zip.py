"""Some members of a remote zip, without downloading the rest (HTTP ``Range`` requests).

:class:`RangeFile` is a read-only, seekable file over a URL: every read is a ``Range`` request
(with read-ahead, so that the many small reads of :mod:`zipfile` cost few requests). The stdlib
:class:`zipfile.ZipFile` opened on it reads the central directory (zip64 included) from the end of
the archive, and :meth:`zipfile.ZipFile.open` streams one member's bytes (stored or deflated),
checking them against the CRC-32 recorded in the zip.

:func:`fetch_members` writes the wanted members into a cache folder, each atomically (a temporary
file renamed onto its name only after the whole member was read and its CRC-32 matched). Members
already in the cache with the size and CRC-32 the zip records are not downloaded again, so an
interrupted run resumes member by member.

:func:`maestro_members` picks, from the MAESTRO archive's CSV member, the audio of the first ``N``
performances of a split (in the CSV's order) or as many as fit in a duration budget.

A server that ignores ``Range`` (answers 200 with the whole file) raises
:class:`RangeNotSupportedError` before any body is read: the caller decides between stopping and
downloading the whole archive (``dataset.maestro_without_range``).
"""

from __future__ import annotations

import csv
import io
import logging
import shutil
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import requests

from ganpipe.atomic import atomic_path
from ganpipe.datasets.download import DownloadError, IntegrityError, _content_range

log = logging.getLogger(__name__)

_COPY_BLOCK = 4 << 20  # also the size of a member's reads (and so of its Range requests)


class RangeNotSupportedError(DownloadError):
    """The server answered a ``Range`` request with the whole file (or without a usable range)."""


class MemberError(IntegrityError):
    """A member whose bytes do not match the zip's record (CRC-32 or size), or is not in the zip."""


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of ``url`` that fetches bytes with ``Range`` requests.

    ``readahead``: a read of fewer bytes fetches this many (kept in a one-block cache).
    ``requests_made`` counts the requests (for reporting and tests).
    """

    def __init__(self, url: str, *, session: requests.Session | None = None, timeout: float = 60.0,
                 readahead: int = 1 << 20):
        super().__init__()
        self.url = url
        self.session = session or requests.Session()
        self.timeout = timeout
        self.readahead = readahead
        self.requests_made = 0
        self._pos = 0
        self._buf_start = 0
        self._buf = b""
        self.size = self._probe()

    def _get(self, start: int, end: int) -> requests.Response:
        """GET bytes ``[start, end]`` (inclusive); the response must be a 206 for exactly them."""
        headers = {"Range": f"bytes={start}-{end}", "Accept-Encoding": "identity"}
        self.requests_made += 1
        try:
            resp = self.session.get(self.url, headers=headers, stream=True,
                                    timeout=(self.timeout, self.timeout), allow_redirects=True)
        except requests.RequestException as exc:
            raise DownloadError(self.url, f"request failed ({type(exc).__name__}: {exc})") from exc
        if resp.status_code == 200:
            resp.close()  # the whole file is coming: do not read it
            raise RangeNotSupportedError(
                self.url, "the server ignores HTTP Range requests (answered 200 with the whole file "
                          f"to 'Range: bytes={start}-{end}')")
        if resp.status_code != 206:
            resp.close()
            raise DownloadError(self.url, f"HTTP {resp.status_code} for Range bytes={start}-{end}")
        first, _ = _content_range(resp)
        if first != start:
            resp.close()
            raise RangeNotSupportedError(
                self.url, f"asked for bytes {start}-{end}, got Content-Range "
                          f"{resp.headers.get('Content-Range')!r}")
        return resp

    def _probe(self) -> int:
        resp = self._get(0, 0)
        _, total = _content_range(resp)
        resp.close()
        if total is None:
            raise RangeNotSupportedError(self.url, "no total size in the Content-Range of a Range answer")
        return total

    def _fetch(self, start: int, n: int) -> bytes:
        end = min(start + n, self.size) - 1
        resp = self._get(start, end)
        try:
            data = resp.content
        except requests.RequestException as exc:
            raise DownloadError(self.url, f"connection broke reading bytes {start}-{end} "
                                          f"({type(exc).__name__}: {exc})") from exc
        if len(data) != end - start + 1:
            raise DownloadError(self.url, f"short read: bytes {start}-{end} gave {len(data)} bytes")
        return data

    # -- io.RawIOBase -------------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.size - self._pos
        n = min(n, self.size - self._pos)
        if n <= 0:
            return b""
        pos = self._pos
        off = pos - self._buf_start
        if 0 <= off and off + n <= len(self._buf):
            data = self._buf[off:off + n]
        elif n >= self.readahead:
            data = self._fetch(pos, n)
        else:
            self._buf_start, self._buf = pos, self._fetch(pos, self.readahead)
            data = self._buf[:n]
        self._pos = pos + len(data)
        return data

    def readinto(self, b: bytearray) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[:len(data)] = data
        return len(data)


def safe_member_path(name: str) -> PurePosixPath:
    """A member name as a relative path; absolute names and ``..`` components are refused."""
    norm = name.replace("\\", "/")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if norm.startswith("/") or ".." in parts or "\x00" in name or not parts or ":" in parts[0]:
        raise MemberError("(zip)", f"unsafe member name {name!r}")
    return PurePosixPath(*parts)


def _crc_of(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(_COPY_BLOCK):
            crc = zlib.crc32(block, crc)
    return crc


def is_cached(info: zipfile.ZipInfo, path: Path) -> bool:
    """``path`` holds exactly the member (the size and CRC-32 the zip records)."""
    try:
        if path.stat().st_size != info.file_size:
            return False
    except OSError:
        return False
    return _crc_of(path) == info.CRC


def fetch_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, dest: Path, url: str) -> None:
    """Stream one member into ``dest`` atomically; its CRC-32 and size are checked (by
    :mod:`zipfile` while reading, and once more here) before it is renamed into place."""
    try:
        with atomic_path(dest) as tmp:
            crc, size = 0, 0
            with zf.open(info) as src, open(tmp, "wb") as out:
                while block := src.read(_COPY_BLOCK):
                    out.write(block)
                    crc = zlib.crc32(block, crc)
                    size += len(block)
            if crc != info.CRC or size != info.file_size:
                raise MemberError(url, f"{info.filename}: got {size} bytes with CRC-32 {crc:08x}, "
                                       f"the zip records {info.file_size} bytes, {info.CRC:08x}")
    except zipfile.BadZipFile as exc:  # zipfile's own CRC check, or a damaged local header
        raise MemberError(url, f"{info.filename}: {exc}") from exc
    except zlib.error as exc:
        raise MemberError(url, f"{info.filename}: corrupt compressed data ({exc})") from exc


@dataclass(frozen=True)
class MemberFetch:
    """What :func:`fetch_members` did: the local paths (in the order asked), how many members were
    downloaded now and how many were already cached, the bytes and requests it took."""

    paths: list[Path]
    downloaded: int
    cached: int
    bytes_downloaded: int
    requests: int


def fetch_members(url: str, cache_dir: Path, select, *, timeout: float = 60.0,
                  readahead: int = 1 << 20, session: requests.Session | None = None) -> MemberFetch:
    """Download the members ``select(zf)`` names into ``cache_dir`` (by their paths in the zip).

    ``select`` gets the open :class:`zipfile.ZipFile` (and may read small members from it, e.g. a
    CSV) and returns member names. Members already cached with the zip's size and CRC-32 are kept.
    """
    cache_dir = Path(cache_dir)
    remote = RangeFile(url, session=session, timeout=timeout, readahead=readahead)
    try:
        zf = zipfile.ZipFile(remote)  # type: ignore[arg-type]
    except zipfile.BadZipFile as exc:
        raise DownloadError(url, f"not a readable zip ({exc})") from exc
    with zf:
        names = list(select(zf))
        paths, downloaded, cached, nbytes = [], 0, 0, 0
        for name in names:
            try:
                info = zf.getinfo(name)
            except KeyError:
                raise MemberError(url, f"no member {name!r} in the zip") from None
            dest = cache_dir / safe_member_path(name)
            if is_cached(info, dest):
                cached += 1
            else:
                log.info("%s: fetching %s (%.1f MB)", url, name, info.compress_size / 1e6)
                fetch_member(zf, info, dest, url)
                downloaded += 1
                nbytes += info.compress_size
            paths.append(dest)
    return MemberFetch(paths, downloaded, cached, nbytes, remote.requests_made)


# ---------------------------------------------------------------------------------------------
# MAESTRO
# ---------------------------------------------------------------------------------------------
def maestro_members(zf: zipfile.ZipFile, split: str, max_files: int | None = None,
                    max_seconds: float | None = None) -> list[str]:
    """The CSV member and the audio members of the first ``max_files`` performances of ``split``
    (CSV order), or of as many as fit within ``max_seconds`` of audio (at least one)."""
    csvs = [n for n in zf.namelist() if PurePosixPath(n).name.startswith("maestro-v")
            and n.endswith(".csv")]
    if len(csvs) != 1:
        raise MemberError("(zip)", f"expected one maestro-v*.csv member, found {csvs or 'none'}")
    csv_name = csvs[0]
    root = PurePosixPath(csv_name).parent
    with zf.open(csv_name) as fh:
        rows = list(csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8", newline="")))
    need = {"split", "audio_filename", "duration"}
    if rows and not need <= set(rows[0]):
        raise MemberError("(zip)", f"{csv_name}: columns {sorted(rows[0])} lack {sorted(need - set(rows[0]))}")
    chosen: list[str] = []
    total = 0.0
    for row in rows:
        if row["split"] != split:
            continue
        if max_files is not None and len(chosen) >= max_files:
            break
        seconds = float(row["duration"] or 0.0)
        if max_seconds is not None and chosen and total + seconds > max_seconds:
            break
        chosen.append(str(root / row["audio_filename"]) if str(root) != "." else row["audio_filename"])
        total += seconds
    if not chosen:
        raise MemberError("(zip)", f"{csv_name}: no performance of split {split!r}")
    return [csv_name, *chosen]


def publish_members(paths: list[Path], cache_dir: Path, target_dir: Path) -> list[Path]:
    """Copy the cached members into ``target_dir`` (same relative paths), each atomically, and
    remove any other file there (a smaller selection than last time leaves nothing behind)."""
    target_dir = Path(target_dir)
    wanted = {target_dir / p.relative_to(cache_dir) for p in paths}
    if target_dir.is_dir():
        for f in sorted(target_dir.rglob("*"), reverse=True):
            if f.is_file() and f not in wanted:
                f.unlink()
            elif f.is_dir() and not any(f.iterdir()):
                f.rmdir()
    out = []
    for p in paths:
        dest = target_dir / p.relative_to(cache_dir)
        with atomic_path(dest) as tmp:
            shutil.copyfile(p, tmp)
        out.append(dest)
    return out
