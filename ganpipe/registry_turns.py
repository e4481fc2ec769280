"""Registrations and promotions of one registered model take turns, across clones and machines.

A project whose store is its own sqlite database takes turns with a lock file beside the database
(``ganpipe.mlflow_store.file_lock``: threads and processes on this machine). A shared store (a
tracking server, a database URI) is written by clones on other machines, which no local file can
stop: there the turn is a **lease in the store itself**, a registered model named
``<model>.ganpipe-lease``. Creating a registered model is atomic in MLflow's SQL store (the name is
its primary key: a second create fails with ``RESOURCE_ALREADY_EXISTS``), so exactly one writer
holds the lease; the others wait (``registry.lock_timeout_seconds``) and then read the champion
the holder left. The holder deletes the lease when done; a lease older than
``registry.lock_timeout_seconds`` belongs to a writer that died and is broken (only the one that
was seen: its holder token is compared first).

Inside the turn the decision reads the champion, moves the alias and reads it back
(ganpipe/model_registry.py: a champion alias moved by someone outside the turn, e.g. by hand in
the MLflow UI, fails the registration as transient, and the retry decides again).
"""

from __future__ import annotations

import os
import random
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ganpipe.config import Params
from ganpipe.mlflow_store import TransientError, file_lock, lock_path, project_tracking

LEASE_SUFFIX = ".ganpipe-lease"
_POLL_S = (0.05, 0.4)  # a waiting writer asks again after a random pause in this range


def is_shared(uri: str) -> bool:
    """Whether other machines write to the store at ``uri`` (anything but a local sqlite/file store)."""
    scheme = uri.split(":", 1)[0].lower() if "://" in uri else "file"
    return scheme not in ("sqlite", "file")


def lease_name(model: str) -> str:
    return model + LEASE_SUFFIX


@contextmanager
def registry_turn(params: Params, project_dir: str | Path, model: str) -> Iterator[None]:
    """This process's turn at writing ``model``'s versions and aliases (module doc)."""
    tp = project_tracking(params.tracking, project_dir)
    timeout = params.registry.lock_timeout_seconds
    if not is_shared(tp.tracking_uri):
        with file_lock(lock_path(params.tracking, project_dir), timeout):
            yield
        return
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tp.tracking_uri, registry_uri=tp.tracking_uri)
    token = _acquire(client, lease_name(model), timeout)
    try:
        yield
    finally:
        _release(client, lease_name(model), token)


def _acquire(client: Any, lease: str, timeout: float) -> str:
    from mlflow.exceptions import MlflowException

    token = uuid.uuid4().hex
    tags = {"holder": token, "host": socket.gethostname(), "pid": str(os.getpid())}
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.create_registered_model(lease, tags=tags, description="ganpipe: a registration in progress")
            return token
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        holder = _holder(client, lease)
        if holder is not None and _age_s(holder) > timeout:
            _break(client, lease, holder)
            continue
        if time.monotonic() > deadline:
            who = holder.tags if holder is not None else {}
            raise TransientError(f"registry lease {lease} is held by {who.get('host', '?')} pid {who.get('pid', '?')} "
                                 f"for more than registry.lock_timeout_seconds={timeout:g}")
        time.sleep(random.uniform(*_POLL_S))


def _holder(client: Any, lease: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    try:
        return client.get_registered_model(lease)
    except MlflowException:
        return None  # released between our create and this read


def _age_s(holder: Any) -> float:
    return time.time() - (holder.creation_timestamp or 0) / 1000.0


def _break(client: Any, lease: str, stale: Any) -> None:
    """Delete a dead writer's lease, unless another writer took it meanwhile."""
    now = _holder(client, lease)
    if now is not None and now.tags.get("holder") == stale.tags.get("holder"):
        _delete(client, lease)


def _release(client: Any, lease: str, token: str) -> None:
    holder = _holder(client, lease)
    if holder is not None and holder.tags.get("holder") == token:
        _delete(client, lease)


def _delete(client: Any, lease: str) -> None:
    from mlflow.exceptions import MlflowException

    try:
        client.delete_registered_model(lease)
    except MlflowException:
        pass  # deleted by the writer that broke it
