"""``ganpipe serve``: settings (params.yaml ``serve:`` + command-line overrides), the model loaded and
followed, the app (:mod:`ganpipe.serving.http_app`) run by uvicorn.

The bearer token is read from the environment variable that ``serve.api_key_env`` names; it is never
logged. Threads: torch's intra-op threads (and so ONNX Runtime's, see ``backends.onnx_session``) are
set before the model loads.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from ganpipe.config import Params, ServeParams
from ganpipe.serving.contract import SynthesisError, served_backend

log = logging.getLogger("ganpipe.serve")


def settings_with(params: Params, overrides: dict[str, Any]) -> ServeParams:
    """``params.serve`` with the given (non-None) overrides, validated: a ConfigError names the key
    (``serve.backend``) and the allowed values."""
    from ganpipe.config import parse_params

    merged = {**params.serve.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    return parse_params({"serve": merged}, "serve settings (params.yaml + flags)").serve


def default_model_uri(params: Params) -> str:
    """The project's champion: ``models:/<registered name>@<champion alias>``."""
    name = params.registry.registered_name(params.dataset.name, params.model.variant)
    return f"models:/{name}@{params.registry.champion_alias}"


def _configure_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    for name in ("ganpipe.serve", "ganpipe.serve.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.INFO)
        logger.propagate = False


def build_server(settings: ServeParams, model_uri: str, tracking_uri: str | None = None) -> Any:
    """Load the model (failing before the port opens), start following its alias; the app's Server."""
    import torch

    from ganpipe.serving.admission import Admission
    from ganpipe.serving.http_app import Server
    from ganpipe.serving.metrics import ServerMetrics
    from ganpipe.serving.registry_follower import ModelSlot, RegistryFollower, alias_of, json_line, load_served

    torch.set_num_threads(settings.threads)
    backend = served_backend(settings.backend)
    metrics = ServerMetrics()

    def switched(old: Any, new: Any) -> None:
        previous = (old.uri, old.version, old.generator_sha256) if old else None
        metrics.served(new.uri, new.version, new.generator_sha256, previous)

    slot = ModelSlot(on_switch=switched)
    first = load_served(model_uri, backend, tracking_uri)
    slot.switch(first)
    log.info(json_line(event="serving", uri=model_uri, version=first.version, generator_sha256=first.generator_sha256,
                       backend=backend, threads=settings.threads,
                       overlap_frames=first.field.overlap if first.field else None))
    follower = None
    if alias_of(model_uri) and settings.poll_seconds > 0:
        follower = RegistryFollower(slot, model_uri, backend, settings.poll_seconds, tracking_uri,
                                    on_failure=lambda _: metrics.load_failures.inc())
        follower.start()
    token = os.environ.get(settings.api_key_env) or None
    admission = Admission(settings.workers, settings.queue, on_change=metrics.in_flight.set)
    return Server(settings, backend, slot, admission, metrics, follower, token)


def serve(settings: ServeParams, model_uri: str, tracking_uri: str | None = None) -> None:
    """Run until interrupted."""
    import uvicorn

    from ganpipe.serving.http_app import create_app
    from ganpipe.serving.registry_follower import json_line

    _configure_logging()
    server = build_server(settings, model_uri, tracking_uri)
    if server.token:
        log.info(json_line(event="auth", detail=f"bearer token required (from ${settings.api_key_env})"))
    try:
        uvicorn.run(create_app(server), host=settings.host, port=settings.port, access_log=False,
                    log_level="warning", timeout_graceful_shutdown=10)
    finally:
        if server.follower is not None:
            server.follower.stop()
        server.admission.close()


def run_command(params_path: Any, overrides: dict[str, Any], tracking_uri: str | None) -> int:
    """``ganpipe serve``: 0 after a clean shutdown, 2 (with the reason on stderr) when it cannot start."""
    from ganpipe.config import ConfigError, load_params

    try:
        params = load_params(params_path)
        settings = settings_with(params, overrides)
        serve(settings, settings.model or default_model_uri(params), tracking_uri)
    except (ConfigError, SynthesisError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def synthesize_remote(url: str, **request: Any) -> tuple[Any, int]:
    """``ganpipe synthesize --server URL``: the server's answer; refusals as :class:`SynthesisError`."""
    from ganpipe.client import ServerError, synthesize

    try:
        return synthesize(url, **request)
    except ServerError as exc:
        raise SynthesisError(f"{url}: {exc}") from None
    except OSError as exc:
        raise SynthesisError(f"{url}: cannot reach the server ({exc})") from None
