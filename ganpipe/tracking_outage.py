"""A tracking server that is down: found out within a bounded time, and said so plainly.

MLflow retries an HTTP request 7 times with a doubling back-off (minutes when the server is down),
and Prefect retried that again: the register stage blocked ~17 min. Here

* :func:`bounded_http` sets MLflow's HTTP settings (``MLFLOW_HTTP_REQUEST_MAX_RETRIES``,
  ``..._TIMEOUT``, ``..._BACKOFF_FACTOR``) from ``tracking.server_timeout_seconds`` for the time of
  a block, unless the user set them;
* :func:`check_server` asks the server's ``/health`` first: "connection refused" fails at once, a
  server that does not answer fails when the budget is spent;
* the failure is a :class:`TrackingServerUnavailable`: it names the server (password redacted), is
  not retried by Prefect (``transient = False``), and re-running later completes the registration
  (a registration is idempotent: ganpipe/model_registry.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ganpipe.redaction import redact

HTTP_RETRIES = 2  # MLflow's own retries of one request inside the budget
# Failures that mean "the server is not there" (requests/urllib3 wording inside MLflow's messages).
_OUTAGE_MARKERS = ("connection refused", "failed to establish a new connection", "max retries exceeded",
                   "remotedisconnected", "connection aborted", "read timed out", "connect timeout",
                   "name or service not known", "bad gateway", "service unavailable")


class TrackingServerUnavailable(RuntimeError):
    """The tracking server did not answer within ``tracking.server_timeout_seconds``."""

    transient = False  # a retry now would wait on the same outage (ganpipe.mlflow_store.is_transient)


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the tracking server could not be reached."""
    if isinstance(exc, TrackingServerUnavailable):
        return True
    text = f"{type(exc).__name__}: {exc}".lower()
    return any(marker in text for marker in _OUTAGE_MARKERS)


def http_settings(budget_s: float) -> dict[str, str]:
    """MLflow's HTTP settings so that one request, retries included, ends within about ``budget_s``."""
    per_try = max(1, int(budget_s / (HTTP_RETRIES + 1)))
    return {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": str(HTTP_RETRIES), "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_HTTP_REQUEST_TIMEOUT": str(per_try)}


@contextmanager
def bounded_http(budget_s: float) -> Iterator[None]:
    """MLflow's HTTP requests bounded by ``budget_s`` inside the block (a variable the user set wins)."""
    added = {k: v for k, v in http_settings(budget_s).items() if k not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def unavailable(uri: str, why: object, waited_s: float, budget_s: float) -> TrackingServerUnavailable:
    return TrackingServerUnavailable(
        f"MLflow tracking server {redact(uri)} is not reachable ({redact(why)}; gave up after {waited_s:.1f} s, "
        f"tracking.server_timeout_seconds={budget_s:g}). Start the server or fix $MLFLOW_TRACKING_URI, then "
        "run the step again (a registration is completed where it stopped, never duplicated)")


def check_server(uri: str, budget_s: float) -> None:
    """Wait (at most ``budget_s``) for a tracking server's ``/health`` to answer; a refused
    connection fails at once. Other stores (sqlite, a database URI) are not checked."""
    import requests

    from ganpipe.mlflow_store import is_server

    if not is_server(uri):
        return
    started = time.monotonic()
    deadline = started + budget_s
    while True:
        left = deadline - time.monotonic()
        try:
            reply = requests.get(uri.rstrip("/") + "/health", timeout=max(0.5, min(left, 10.0)))
            if reply.status_code < 500:
                return
            why: object = f"HTTP {reply.status_code}"
        except requests.ConnectionError as exc:
            if "refused" in str(exc).lower():
                raise unavailable(uri, "connection refused", time.monotonic() - started, budget_s) from None
            why = exc
        except requests.Timeout as exc:
            why = exc
        if time.monotonic() + 1.0 > deadline:
            raise unavailable(uri, why, time.monotonic() - started, budget_s) from None
        time.sleep(1.0)  # a server that is starting or overloaded: ask again within the budget
