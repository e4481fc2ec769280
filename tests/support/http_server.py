"""A small threaded HTTP file server on 127.0.0.1 for download tests.

Serves in-memory bytes with ``Range`` support (206 / 416), logs every request (path, Range header,
status, body bytes sent) and can, on request, misbehave: ignore ``Range`` (answer 200 with the
whole file), cut the connection after N body bytes, or answer a 5xx. ``HEAD`` answers the
validators (ETag, Content-Length) of the file as it is now (``add`` again to replace it).
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
_BLOCK = 64 * 1024


@dataclass
class RequestRecord:
    method: str
    path: str
    range: str | None
    status: int = 0
    bytes_sent: int = 0


@dataclass
class _Resource:
    data: bytes
    ignore_range: bool = False
    cuts: list[int] = field(default_factory=list)  # one entry per upcoming request to cut
    failures: list[int] = field(default_factory=list)  # statuses for upcoming requests


class FileServer:
    """Start with :meth:`start` (or as a context manager); ``url(path)`` gives a file's URL."""

    def __init__(self) -> None:
        self._resources: dict[str, _Resource] = {}
        self._lock = threading.Lock()
        self.requests: list[RequestRecord] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- configuration ------------------------------------------------------------------------
    def add(self, path: str, data: bytes, *, ignore_range: bool = False) -> str:
        with self._lock:
            self._resources[path] = _Resource(data, ignore_range)
        return self.url(path)

    def cut_next(self, path: str, after_bytes: int, times: int = 1) -> None:
        """The next ``times`` requests for ``path`` close the connection after ``after_bytes``."""
        with self._lock:
            self._resources[path].cuts.extend([after_bytes] * times)

    def fail_next(self, path: str, status: int = 503, times: int = 1) -> None:
        with self._lock:
            self._resources[path].failures.extend([status] * times)

    def url(self, path: str) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}{path}"

    def requests_for(self, path: str) -> list[RequestRecord]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FileServer:
        handler = _make_handler(self)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,),
                                        daemon=True, name="test-file-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- used by the handler --------------------------------------------------------------------
    def _take(self, path: str) -> tuple[_Resource | None, int | None, int | None]:
        with self._lock:
            res = self._resources.get(path)
            if res is None:
                return None, None, None
            fail = res.failures.pop(0) if res.failures else None
            cut = res.cuts.pop(0) if res.cuts and fail is None else None
            return res, fail, cut

    def _record(self, rec: RequestRecord) -> None:
        with self._lock:
            self.requests.append(rec)


def _make_handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:
            rec = RequestRecord("GET", self.path, self.headers.get("Range"))
            server._record(rec)
            res, fail, cut = server._take(self.path)
            if res is None:
                self._empty(rec, 404)
                return
            if fail is not None:
                self._empty(rec, fail)
                return
            data = res.data
            start, end, status = 0, len(data) - 1, 200
            if rec.range and not res.ignore_range:
                m = _RANGE.match(rec.range.strip())
                if m:
                    start = int(m.group(1))
                    if start >= len(data):
                        self._empty(rec, 416, {"Content-Range": f"bytes */{len(data)}"})
                        return
                    if m.group(2):
                        end = min(int(m.group(2)), len(data) - 1)
                    status = 206
            body = memoryview(data)[start:end + 1]
            rec.status = status
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "none" if res.ignore_range else "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.end_headers()
            limit = len(body) if cut is None else min(cut, len(body))
            pos = 0
            try:
                while pos < limit:
                    block = body[pos:min(pos + _BLOCK, limit)]
                    rec.bytes_sent += len(block)  # counted before the client can see it
                    self.wfile.write(block)
                    pos += len(block)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
            if cut is not None:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

        def do_HEAD(self) -> None:
            """The validators of a file: ETag (a hash of its bytes) and Content-Length; no body."""
            import hashlib

            rec = RequestRecord("HEAD", self.path, None)
            server._record(rec)
            res = server._resources.get(self.path)
            if res is None:
                self._empty(rec, 404)
                return
            rec.status = 200
            self.send_response(200)
            self.send_header("ETag", '"' + hashlib.sha256(res.data).hexdigest()[:16] + '"')
            self.send_header("Content-Length", str(len(res.data)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()

        def _empty(self, rec: RequestRecord, status: int,
                   headers: dict[str, str] | None = None) -> None:
            rec.status = status
            self.send_response(status)
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.send_header("Content-Length", "0")
            self.end_headers()

    return Handler
