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

import contextlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import requests
import urllib3
from tqdm.auto import tqdm

from ganpipe.atomic import write_json
from ganpipe.digest import file_digest, hash_into, new_hasher

log = logging.getLogger(__name__)

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
# fetch: the resume decision, the transfer, the verification
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Request:
    """What :func:`fetch` was asked for: where from, where to, and what the bytes must be."""

    url: str
    dest: Path
    size_bytes: int | None
    checksum_algo: str
    checksum: str | None  # lower case

    @property
    def part(self) -> Path:
        return part_path(self.dest)

    def hashers(self) -> tuple[Any, Any | None]:
        """The checksum's hasher and, unless that is sha256 already, a sha256 (the marker's
        ``observed_sha256``)."""
        return new_hasher(self.checksum_algo), (new_hasher("sha256") if self.checksum_algo != "sha256" else None)


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
    req = _Request(url, dest, size_bytes, checksum_algo, checksum.lower() if checksum is not None else None)
    if _check_existing(url, dest, size_bytes, checksum_algo, req.checksum):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if req.checksum is None:
        log.warning("%s: no checksum known; the download will not be verified", url)
    start = _resume_offset(req)
    if start > 0 and start == size_bytes:
        # A previous run finished the transfer but not the rename: verify locally, no network.
        return _verify_part(req)
    with contextlib.ExitStack() as stack:
        sess = session if session is not None else stack.enter_context(requests.Session())
        resp, start = _open_resumed(sess, req, start, timeout)
        if resp is None:
            return _verify_part(req)
        with resp:
            digest, sha256 = _transfer(req, resp, start, chunk_bytes, progress)
        return _finish(req, digest, sha256)


# ---------------------------------------------------------------------------------------------
# the resume decision
# ---------------------------------------------------------------------------------------------
def _resume_offset(req: _Request) -> int:
    """The byte to resume at: the size of the ``.part`` an earlier run left (0 when there is none,
    or when it is longer than the expected file, which is then deleted)."""
    part = req.part
    start = part.stat().st_size if part.is_file() else 0
    if req.size_bytes is not None and start > req.size_bytes:
        log.warning("%s has %d bytes, more than the expected %d; starting over", part, start,
                    req.size_bytes)
        part.unlink()
        start = 0
    return start


def _open_resumed(session: requests.Session, req: _Request, start: int,
                  timeout: float) -> tuple[requests.Response | None, int]:
    """``(response, start)`` for the bytes from ``start`` on. The response is ``None`` when the
    server answers HTTP 416 because the ``.part`` is already complete; ``start`` is 0 when the
    ``.part`` does not fit the remote file (it is deleted and the request sent again without a
    range). :class:`DownloadError` on an HTTP error."""
    resp = _open_stream(session, req.url, start, timeout)
    if resp.status_code == 416 and start > 0:
        _, remote_total = _content_range(resp)
        resp.close()
        if remote_total is None or remote_total == start:
            log.info("%s: server reports %s already complete (HTTP 416)", req.url, req.part)
            return None, start
        log.warning("%s: %s (%d bytes) does not fit the remote file (%d bytes); "
                    "starting over", req.url, req.part, start, remote_total)
        req.part.unlink()
        resp, start = _open_stream(session, req.url, 0, timeout), 0
    if resp.status_code >= 400:
        resp.close()
        raise DownloadError(req.url, f"HTTP {resp.status_code} {resp.reason}")
    return resp, start


def _content_range(resp: requests.Response) -> tuple[int | None, int | None]:
    """(first byte, total size) from a Content-Range header; ``None`` where absent or ``*``."""
    m = _CONTENT_RANGE.match(resp.headers.get("Content-Range", "").strip())
    if not m:
        return None, None
    start = int(m.group(1)) if m.group(1) is not None else None
    total = int(m.group(3)) if m.group(3) != "*" else None
    return start, total


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


# ---------------------------------------------------------------------------------------------
# the transfer
# ---------------------------------------------------------------------------------------------
def _transfer(req: _Request, resp: requests.Response, start: int, chunk_bytes: int,
              progress: bool) -> tuple[str, str | None]:
    """Write the body of ``resp`` onto the ``.part`` (appending at ``start`` or from byte 0, as
    the server answered); returns the checksum and the sha256 of the whole ``.part``. A size that
    cannot be the expected one deletes the ``.part`` (:class:`SizeMismatchError`); a body that ends
    early keeps it for resuming (:class:`DownloadError`)."""
    start, announced, mode = _body_plan(req, resp, start)
    hasher, sha = req.hashers()
    if mode == "ab":
        hash_into(req.part, hasher, sha)
    expected_total = req.size_bytes if req.size_bytes is not None else announced
    with open(req.part, mode) as fh, tqdm(total=expected_total, initial=start, unit="B",
                                          unit_scale=True, unit_divisor=1024,
                                          desc=req.dest.name, disable=not progress,
                                          leave=False) as bar:
        try:
            written = _stream_body(req.url, resp, fh, hasher, sha, chunk_bytes, bar,
                                   expected_total, start)
        except SizeMismatchError:
            fh.close()
            req.part.unlink(missing_ok=True)
            raise
    if expected_total is not None and written < expected_total:
        raise DownloadError(req.url, f"transfer ended after {written} of {expected_total} "
                                     "bytes; the partial file is kept for resuming")
    return hasher.hexdigest(), sha.hexdigest() if sha else None


def _body_plan(req: _Request, resp: requests.Response, start: int) -> tuple[int, int | None, str]:
    """``(first byte, total size the server announced, file mode)``: HTTP 206 resumes the
    ``.part`` at ``start`` (``"ab"``), anything else rewrites it from byte 0 (``"wb"``)."""
    if resp.status_code == 206:
        range_start, remote_total = _content_range(resp)
        if range_start != start:
            raise DownloadError(req.url, f"asked for bytes from {start}, server answered "
                                         f"Content-Range {resp.headers.get('Content-Range')!r}")
        _check_announced(req, remote_total, "remote file size")
        log.info("%s: resuming at byte %d", req.url, start)
        return start, remote_total, "ab"
    if start > 0:
        log.warning("%s: server ignored the Range request (HTTP %d); restarting "
                    "from byte 0", req.url, resp.status_code)
    length = resp.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    _check_announced(req, total, "Content-Length")
    return 0, total, "wb"


def _check_announced(req: _Request, announced: int | None, what: str) -> None:
    """:class:`SizeMismatchError` (deleting the ``.part``) when the server announces a size
    (``what``) other than the expected one."""
    if req.size_bytes is not None and announced is not None and announced != req.size_bytes:
        req.part.unlink(missing_ok=True)
        raise SizeMismatchError(req.url, req.size_bytes, announced, what)


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


# ---------------------------------------------------------------------------------------------
# the verification
# ---------------------------------------------------------------------------------------------
def _verify_part(req: _Request) -> Path:
    """:func:`_finish` for a ``.part`` that is already complete (hashed here, no network)."""
    hasher, sha = req.hashers()
    hash_into(req.part, hasher, sha)
    return _finish(req, hasher.hexdigest(), sha.hexdigest() if sha else None)


def _finish(req: _Request, actual_digest: str, actual_sha256: str | None) -> Path:
    """Verify the complete ``.part`` and rename it onto ``dest`` (or delete it and raise)."""
    url, part = req.url, req.part
    size = part.stat().st_size
    if req.size_bytes is not None and size != req.size_bytes:
        part.unlink(missing_ok=True)
        raise SizeMismatchError(url, req.size_bytes, size)
    if req.checksum is not None and actual_digest != req.checksum:
        part.unlink(missing_ok=True)
        raise ChecksumError(url, req.checksum_algo, req.checksum, actual_digest)
    with open(part, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(part, req.dest)
    observed = actual_digest if req.checksum_algo == "sha256" else actual_sha256
    if req.checksum is None:
        log.warning("%s: downloaded %d bytes WITHOUT verification (no published checksum); "
                    "observed sha256 %s", url, size, observed)
    _write_marker(req.dest, url, req.checksum_algo, req.checksum, observed)
    return req.dest


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
