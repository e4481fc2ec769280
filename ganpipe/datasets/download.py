"""Resumable, verified HTTP downloads.

:func:`fetch` streams a URL into ``<dest>.part`` (resuming it with an HTTP ``Range`` request when it
already exists), checks size and checksum, and only then renames it onto ``dest``. A successful
verification is cached in ``<dest>.verified`` (size, mtime, checksum) so that calling :func:`fetch`
again is instant and touches no network.

Errors:

* :class:`DownloadError` -- transient or HTTP failures (connection reset, timeout, 5xx, truncated
  body). The ``.part`` file is kept so that the next call resumes it.
* :class:`ChecksumError` / :class:`SizeMismatchError` (both :class:`IntegrityError`) -- the bytes are
  not the expected file. The ``.part`` is deleted and ``dest`` is never created; retrying is
  pointless unless the source or the registry entry changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any, BinaryIO

import requests
import urllib3
from tqdm.auto import tqdm

from ganpipe.atomic import write_json

log = logging.getLogger(__name__)

_READ_BLOCK = 1 << 22
_CONTENT_RANGE = re.compile(r"bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)")


class DownloadError(RuntimeError):
    """A download that did not complete; the message names the URL."""

    def __init__(self, url: str, message: str):
        super().__init__(f"{url}: {message}")
        self.url = url


class IntegrityError(DownloadError):
    """The downloaded bytes are not the expected file (wrong size or checksum)."""


class ChecksumError(IntegrityError):
    def __init__(self, url: str, algo: str, expected: str, actual: str):
        super().__init__(url, f"{algo} mismatch: expected {expected}, got {actual}")
        self.algo = algo
        self.expected = expected
        self.actual = actual


class SizeMismatchError(IntegrityError):
    def __init__(self, url: str, expected: int, actual: int, detail: str = ""):
        extra = f" ({detail})" if detail else ""
        super().__init__(url, f"size mismatch: expected {expected} bytes, got {actual}{extra}")
        self.expected = expected
        self.actual = actual


def part_path(dest: Path) -> Path:
    """Where the in-progress download of ``dest`` lives."""
    return dest.with_suffix(dest.suffix + ".part")


def verified_marker(dest: Path) -> Path:
    """The small JSON file caching a successful verification of ``dest``."""
    return dest.with_name(dest.name + ".verified")


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as fh:
        while block := fh.read(_READ_BLOCK):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# verification cache
# ---------------------------------------------------------------------------------------------
def _marker_matches(dest: Path, checksum_algo: str, checksum: str | None,
                    size_bytes: int | None) -> bool:
    marker = verified_marker(dest)
    try:
        data = json.loads(marker.read_text())
        st = dest.stat()
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict):
        return False
    return (data.get("size") == st.st_size
            and data.get("mtime_ns") == st.st_mtime_ns
            and (size_bytes is None or size_bytes == st.st_size)
            and data.get("checksum_algo") == checksum_algo
            and data.get("checksum") == checksum)


def _write_marker(dest: Path, url: str, checksum_algo: str, checksum: str | None,
                  sha256: str | None) -> None:
    st = dest.stat()
    write_json(verified_marker(dest), {
        "url": url,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "checksum_algo": checksum_algo,
        "checksum": checksum,
        # For archives without a published checksum, what was actually received (to pin it later).
        "observed_sha256": sha256,
    })


def _check_existing(url: str, dest: Path, size_bytes: int | None, checksum_algo: str,
                    checksum: str | None) -> bool:
    """True when ``dest`` already holds the expected file (verifying it once if needed)."""
    if not dest.is_file():
        return False
    if _marker_matches(dest, checksum_algo, checksum, size_bytes):
        log.debug("%s: already downloaded and verified", dest)
        return True
    size = dest.stat().st_size
    if size_bytes is not None and size != size_bytes:
        log.warning("%s exists but has %d bytes instead of %d; downloading it again from %s",
                    dest, size, size_bytes, url)
        return False
    if checksum is not None:
        actual = file_digest(dest, checksum_algo)
        if actual != checksum:
            log.warning("%s exists but its %s is %s, not %s; downloading it again from %s",
                        dest, checksum_algo, actual, checksum, url)
            return False
    else:
        log.warning("%s exists; no checksum is known for %s so it is used unverified", dest, url)
    _write_marker(dest, url, checksum_algo, checksum, None)
    return True


# ---------------------------------------------------------------------------------------------
# streaming
# ---------------------------------------------------------------------------------------------
def _content_range(resp: requests.Response) -> tuple[int | None, int | None]:
    """(first byte, total size) from a Content-Range header; ``None`` where absent or ``*``."""
    m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", "").strip())
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(3)) if m.group(3) != "*" else None
    return start, total


def _hash_prefix(part: Path, hasher: Any, sha: Any | None) -> int:
    n = 0
    with open(part, "rb") as fh:
        while block := fh.read(_READ_BLOCK):
            hasher.update(block)
            if sha is not None:
                sha.update(block)
            n += len(block)
    return n


def _finish(url: str, dest: Path, part: Path, size_bytes: int | None, checksum_algo: str,
            checksum: str | None, actual_digest: str, actual_sha256: str | None) -> Path:
    """Verify the complete ``.part`` and rename it onto ``dest`` (or delete it and raise)."""
    size = part.stat().st_size
    if size_bytes is not None and size != size_bytes:
        part.unlink(missing_ok=True)
        raise SizeMismatchError(url, size_bytes, size)
    if checksum is not None and actual_digest != checksum:
        part.unlink(missing_ok=True)
        raise ChecksumError(url, checksum_algo, checksum, actual_digest)
    with open(part, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(part, dest)
    observed = actual_digest if checksum_algo == "sha256" else actual_sha256
    if checksum is None:
        log.warning("%s: downloaded %d bytes WITHOUT verification (no published checksum); "
                    "observed sha256 %s", url, size, observed)
    _write_marker(dest, url, checksum_algo, checksum, observed)
    return dest


def _open_stream(session: requests.Session, url: str, start: int,
                 timeout: float) -> requests.Response:
    headers = {"Accept-Encoding": "identity"}
    if start > 0:
        headers["Range"] = f"bytes={start}-"
    try:
        resp = session.get(url, headers=headers, stream=True, timeout=(timeout, timeout),
                           allow_redirects=True)
    except requests.RequestException as exc:
        raise DownloadError(url, f"request failed ({type(exc).__name__}: {exc})") from exc
    return resp


def _stream_body(url: str, resp: requests.Response, fh: BinaryIO, hasher: Any, sha: Any | None,
                 chunk_bytes: int, bar: tqdm, limit: int | None, written: int) -> int:
    """Copy the body into ``fh``; returns the new total. Stops (raising) past ``limit`` bytes."""
    try:
        for chunk in resp.raw.stream(chunk_bytes, decode_content=False):
            if not chunk:
                continue
            written += len(chunk)
            if limit is not None and written > limit:
                raise SizeMismatchError(url, limit, written, "server sent more than expected")
            fh.write(chunk)
            hasher.update(chunk)
            if sha is not None:
                sha.update(chunk)
            bar.update(len(chunk))
    except (requests.RequestException, urllib3.exceptions.HTTPError, ConnectionError,
            TimeoutError) as exc:
        raise DownloadError(url, f"transfer interrupted after {written} bytes "
                                 f"({type(exc).__name__}: {exc}); the partial file is kept "
                                 "for resuming") from exc
    return written


def fetch(url: str, dest: Path, *, size_bytes: int | None, checksum_algo: str = "sha256",
          checksum: str | None, chunk_bytes: int = 1 << 20, timeout: float = 60,
          progress: bool = True, session: requests.Session | None = None) -> Path:
    """Download ``url`` to ``dest`` (resuming, verified, atomic, idempotent); returns ``dest``.

    ``size_bytes``/``checksum`` may be ``None`` when unknown; the download is then not verified
    (a warning is logged with the observed sha256). See the module docstring for the errors.
    """
    dest = Path(dest)
    if checksum_algo not in ("sha256", "md5"):
        raise ValueError(f"unsupported checksum_algo {checksum_algo!r} for {url}")
    if checksum is not None:
        checksum = checksum.lower()
    if _check_existing(url, dest, size_bytes, checksum_algo, checksum):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    if checksum is None:
        log.warning("%s: no checksum known; the download will not be verified", url)

    start = part.stat().st_size if part.is_file() else 0
    if size_bytes is not None and start > size_bytes:
        log.warning("%s has %d bytes, more than the expected %d; starting over", part, start,
                    size_bytes)
        part.unlink()
        start = 0

    def new_hashers() -> tuple[Any, Any | None]:
        return hashlib.new(checksum_algo), (hashlib.sha256() if checksum_algo != "sha256" else None)

    if start > 0 and start == size_bytes:
        # A previous run finished the transfer but not the rename: verify locally, no network.
        hasher, sha = new_hashers()
        _hash_prefix(part, hasher, sha)
        return _finish(url, dest, part, size_bytes, checksum_algo, checksum, hasher.hexdigest(),
                       sha.hexdigest() if sha else None)

    own_session = session is None
    sess = session or requests.Session()
    try:
        resp = _open_stream(sess, url, start, timeout)
        try:
            if resp.status_code == 416 and start > 0:
                _, remote_total = _content_range(resp)
                if remote_total is None or remote_total == start:
                    log.info("%s: server reports %s already complete (HTTP 416)", url, part)
                    hasher, sha = new_hashers()
                    _hash_prefix(part, hasher, sha)
                    return _finish(url, dest, part, size_bytes, checksum_algo, checksum,
                                   hasher.hexdigest(), sha.hexdigest() if sha else None)
                log.warning("%s: %s (%d bytes) does not fit the remote file (%d bytes); "
                            "starting over", url, part, start, remote_total)
                part.unlink()
                start = 0
                resp.close()
                resp = _open_stream(sess, url, 0, timeout)
            if resp.status_code >= 400:
                raise DownloadError(url, f"HTTP {resp.status_code} {resp.reason}")

            hasher, sha = new_hashers()
            if resp.status_code == 206:
                range_start, remote_total = _content_range(resp)
                if range_start != start:
                    raise DownloadError(url, f"asked for bytes from {start}, server answered "
                                             f"Content-Range {resp.headers.get('Content-Range')!r}")
                if size_bytes is not None and remote_total is not None and remote_total != size_bytes:
                    part.unlink(missing_ok=True)
                    raise SizeMismatchError(url, size_bytes, remote_total, "remote file size")
                total = remote_total
                mode = "ab"
                log.info("%s: resuming at byte %d", url, start)
                _hash_prefix(part, hasher, sha)
            else:
                if start > 0:
                    log.warning("%s: server ignored the Range request (HTTP %d); restarting "
                                "from byte 0", url, resp.status_code)
                start = 0
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                if size_bytes is not None and total is not None and total != size_bytes:
                    part.unlink(missing_ok=True)
                    raise SizeMismatchError(url, size_bytes, total, "Content-Length")
                mode = "wb"
            expected_total = size_bytes if size_bytes is not None else total

            with open(part, mode) as fh, tqdm(total=expected_total, initial=start, unit="B",
                                              unit_scale=True, unit_divisor=1024,
                                              desc=dest.name, disable=not progress,
                                              leave=False) as bar:
                try:
                    written = _stream_body(url, resp, fh, hasher, sha, chunk_bytes, bar,
                                           expected_total, start)
                except SizeMismatchError:
                    fh.close()
                    part.unlink(missing_ok=True)
                    raise
            if expected_total is not None and written < expected_total:
                raise DownloadError(url, f"transfer ended after {written} of {expected_total} "
                                         "bytes; the partial file is kept for resuming")
            return _finish(url, dest, part, size_bytes, checksum_algo, checksum,
                           hasher.hexdigest(), sha.hexdigest() if sha else None)
        finally:
            resp.close()
    finally:
        if own_session:
            sess.close()


def fetch_with_retries(url: str, dest: Path, *, retries: int = 3, delay: float = 5.0,
                       **kwargs: Any) -> Path:
    """:func:`fetch` retried up to ``retries`` extra times on transient :class:`DownloadError`.

    Each retry resumes the ``.part`` left by the failed attempt. :class:`IntegrityError` is not
    retried (the bytes are wrong, not missing). Plain-Python fallback for the Prefect task.
    """
    for attempt in range(retries + 1):
        try:
            return fetch(url, Path(dest), **kwargs)
        except IntegrityError:
            raise
        except DownloadError as exc:
            if attempt == retries:
                raise
            log.warning("%s (attempt %d of %d); retrying in %.1f s", exc, attempt + 1,
                        retries + 1, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
