"""The model a server answers with, and how it follows the registry.

:func:`load_served` loads a model (``models:/NAME@ALIAS`` resolved to its version, ``models:/NAME/N``,
a model folder or a generator file), refuses one whose generator file does not hash to the version's
registered ``generator_sha256`` tag, warms it up with the server's backend and measures the
vocoder's receptive field (streaming). :class:`ModelSlot` holds the one being served: a request takes
the current :class:`ServedModel` once and keeps it to its end, so a switch never changes a model
under a request in flight. :class:`RegistryFollower` polls the alias and, when it points to another
version, loads that beside the serving one and switches; a failed load keeps the old model, logs
why, and is retried only when the alias or the version's hash tag changes.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ganpipe.serving.contract import SynthesisError
from ganpipe.serving.model import UnconditionalGenerator, Vocoder, load_model
from ganpipe.serving.streaming import ReceptiveField, receptive_field

log = logging.getLogger("ganpipe.serve")

_ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[^/@]+)$")
_VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


@dataclass(frozen=True)
class ServedModel:
    model: Vocoder | UnconditionalGenerator
    uri: str  # what was asked for (models:/NAME@champion)
    version: str  # the registry version, or "file" / "local"
    generator_sha256: str
    field: ReceptiveField | None = None  # vocoders whose receptive field could be measured: streamable
    stream_problem: str | None = None  # why not, otherwise

    @property
    def vocoder(self) -> Vocoder | None:
        return self.model if isinstance(self.model, Vocoder) else None

    @property
    def core(self) -> Any:
        return self.model.model.unwrap_python_model().core


def _client(tracking_uri: str | None) -> Any:
    from mlflow import MlflowClient

    from ganpipe.mlflow_store import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def alias_of(uri: str) -> tuple[str, str] | None:
    """``(name, alias)`` of ``models:/NAME@ALIAS``, else None."""
    m = _ALIAS_URI.match(uri)
    return (m["name"], m["alias"]) if m else None


def _generator_sha(model: Vocoder | UnconditionalGenerator, uri: str) -> str:
    from ganpipe.mlflow_store import file_sha256

    if Path(uri).is_file():
        return file_sha256(uri)
    return file_sha256(model.model.unwrap_python_model().generator_path)


def _check_registered_hash(sha: str, tags: dict[str, str], what: str) -> None:
    registered = tags.get("generator_sha256")
    if not registered:
        raise SynthesisError(f"{what} has no generator_sha256 tag: refusing a model whose generator cannot be checked")
    if sha != registered:
        raise SynthesisError(f"{what}: its generator file hashes to {sha[:12]}..., its registered tag "
                             f"generator_sha256 is {registered[:12]}...: refusing to serve it")


def _warm_up(model: Vocoder | UnconditionalGenerator, backend: str) -> None:
    """One tiny request with the server's backend: builds the ONNX session, fails early without an export."""
    if isinstance(model, Vocoder):
        frames = max(int(model.metadata.get("min_frames", 1)), 8)
        speakers = model.metadata.get("speakers") or []
        model.mel_to_audio(np.full((model.n_mels, frames), -5.0, np.float32), backend=backend, warn_range=False,
                           speaker=speakers[0] if speakers else None)
    else:
        model.generate(n=1, seed=0, label=(model.labels or [None])[0], backend=backend)


def _measure(model: Vocoder | UnconditionalGenerator) -> tuple[ReceptiveField | None, str | None]:
    if not isinstance(model, Vocoder):
        return None, "not a vocoder"
    try:
        core = model.model.unwrap_python_model().core
        speaker = 0 if core.conditional else None
        return receptive_field(core.module, core.n_mels, core.hop, speaker), None
    except Exception as exc:  # noqa: BLE001 - any generator that cannot be measured is served unstreamed
        return None, f"receptive field not measurable ({exc})"


def load_served(uri: str, backend: str, tracking_uri: str | None = None, version: str | None = None,
                tags: dict[str, str] | None = None) -> ServedModel:
    """Load, hash-check, warm up and measure ``uri`` (``version``/``tags``: of an alias already resolved)."""
    target = uri
    if version is None and (parsed := alias_of(uri)):
        mv = _client(tracking_uri).get_model_version_by_alias(*parsed)
        version, tags = str(mv.version), dict(mv.tags)
    if version is not None and (parsed := alias_of(uri)):
        target = f"models:/{parsed[0]}/{version}"
    elif (m := _VERSION_URI.match(uri)) is not None:
        version = m["version"]
        tags = dict(_client(tracking_uri).get_model_version(m["name"], version).tags)
    model = load_model(target, tracking_uri)
    sha = _generator_sha(model, uri)
    if tags is not None:
        _check_registered_hash(sha, tags, f"{uri} (version {version})")
    _warm_up(model, backend)
    measured, problem = _measure(model)
    label = version or ("file" if Path(uri).is_file() else "local")
    return ServedModel(model, uri, label, sha, measured, problem)


class ModelSlot:
    """The model being served; :meth:`switch` replaces it in one assignment."""

    def __init__(self, on_switch: Callable[[ServedModel | None, ServedModel], None] | None = None):
        self._current: ServedModel | None = None
        self._lock = threading.Lock()
        self._on_switch = on_switch

    @property
    def current(self) -> ServedModel | None:
        return self._current

    def switch(self, new: ServedModel) -> None:
        with self._lock:
            old, self._current = self._current, new
        if self._on_switch:
            self._on_switch(old, new)


@dataclass
class RegistryFollower:
    """Polls ``models:/NAME@ALIAS`` every ``period`` seconds and switches ``slot`` to the version it names."""

    slot: ModelSlot
    uri: str
    backend: str
    period: float
    tracking_uri: str | None = None
    on_failure: Callable[[str], None] | None = None
    last_error: str | None = None
    _failed: tuple[str, str] | None = None
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def poll_once(self) -> bool:
        """Look at the alias once; True when the slot switched."""
        name, alias = alias_of(self.uri)  # type: ignore[misc]
        mv = _client(self.tracking_uri).get_model_version_by_alias(name, alias)
        version, tags = str(mv.version), dict(mv.tags)
        current = self.slot.current
        key = (version, tags.get("generator_sha256", ""))
        if (current is not None and current.version == version) or key == self._failed:
            return False
        log.info(json_line(event="model_load", uri=self.uri, version=version))
        try:
            new = load_served(self.uri, self.backend, self.tracking_uri, version, tags)
        except Exception as exc:  # noqa: BLE001 - whatever failed, the old model keeps serving
            self._failed, self.last_error = key, f"version {version}: {exc}"
            log.error(json_line(event="model_load_failed", uri=self.uri, version=version, error=str(exc),
                                serving=current.version if current else None))
            if self.on_failure:
                self.on_failure(self.last_error)
            return False
        self.slot.switch(new)
        self.last_error = None
        log.info(json_line(event="model_switch", uri=self.uri, version=version,
                           previous=current.version if current else None, generator_sha256=new.generator_sha256))
        return True

    def _loop(self) -> None:
        while not self._stop.wait(self.period):
            try:
                self.poll_once()
            except Exception as exc:  # noqa: BLE001 - registry unreachable: keep serving, say so
                self.last_error = f"polling {self.uri}: {exc}"
                log.error(json_line(event="poll_failed", uri=self.uri, error=str(exc)))

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="registry-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)


def json_line(**fields: Any) -> str:
    import json

    return json.dumps(fields, default=str)
