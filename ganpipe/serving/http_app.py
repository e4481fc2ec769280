"""The HTTP face of ``ganpipe serve`` (FastAPI): routes, request reading, answers, errors.

========================  ==========================================================================
``POST /v1/vocode``        a mel -> WAV. Body: ``.npy`` bytes (``application/x-npy``) or JSON
                           ``{"mel": [[...]], "mel_config": {...}, "speaker": ..., "stream": ..., "format": ...}``;
                           query ``stream=true`` (chunked, blockwise), ``format=pcm16|float32``,
                           ``speaker``, ``mel_config`` (JSON text)
``POST /v1/copy-synthesis``  a WAV body -> WAV; query ``resample=true`` for audio at another rate
``POST /v1/generate``      unconditional models: JSON ``{"n": 4, "seed": 0, "label": ...}`` -> WAV, one channel per clip
``GET /v1/model``          the served model: URI, version, generator hash, streaming overlap, follower state
``GET /healthz``           the process answers; ``GET /readyz``: a model is loaded
``GET /metrics``           Prometheus text
========================  ==========================================================================

Bad input -> 422 ``{"detail": message}`` (mel parameters that differ: also ``"parameters"``); a mel of
another kind than the model's -> a ``X-Ganpipe-Warning`` header; a body over ``max_request_mb`` -> 413;
the queue full -> 503 + ``Retry-After``; a token set and not given -> 401. Every audio answer says the
model that made it: ``X-Model-Version``, ``X-Generator-Sha256``.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ganpipe.config import ServeParams
from ganpipe.serving import jobs
from ganpipe.serving.admission import Admission, QueueFull, Ticket
from ganpipe.serving.contract import MelConfigMismatch, SynthesisError
from ganpipe.serving.metrics import ServerMetrics
from ganpipe.serving.registry_follower import ModelSlot, RegistryFollower, ServedModel
from ganpipe.serving.wire import NPY_TYPES, json_mel, read_json, read_npy, read_wav, wav_bytes, wav_header, wav_samples

access_log = logging.getLogger("ganpipe.serve.access")
_ROUTES = ("/v1/vocode", "/v1/copy-synthesis", "/v1/generate", "/v1/model", "/healthz", "/readyz", "/metrics")


@dataclass
class Server:
    """What the routes share."""

    settings: ServeParams
    backend: str  # the served backend name (torch | onnxruntime)
    slot: ModelSlot
    admission: Admission
    metrics: ServerMetrics
    follower: RegistryFollower | None = None
    token: str | None = None


def create_app(server: Server) -> FastAPI:
    app = FastAPI(title="ganpipe vocoder service", docs_url=None, redoc_url=None, openapi_url=None)
    if server.settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(server.settings.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"],
                           expose_headers=["X-Model-Version", "X-Generator-Sha256", "X-Ganpipe-Warning"])
    app.add_middleware(AccessLog, server=server)
    _error_handlers(app, server)
    _operations(app, server)
    _synthesis(app, server)
    return app


# -- errors ---------------------------------------------------------------------------------------
def _error_handlers(app: FastAPI, server: Server) -> None:
    @app.exception_handler(MelConfigMismatch)
    async def mismatch(_: Request, exc: MelConfigMismatch) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "parameters": sorted(exc.differences)}, status_code=422)

    @app.exception_handler(SynthesisError)
    async def bad_input(_: Request, exc: SynthesisError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(QueueFull)
    async def full(_: Request, exc: QueueFull) -> JSONResponse:
        server.metrics.rejected.inc()
        return JSONResponse({"detail": f"server busy: {exc}; retry later"}, status_code=503,
                            headers={"Retry-After": str(server.settings.retry_after_seconds)})


def _authorized(server: Server) -> Any:
    async def check(authorization: str | None = Header(None)) -> None:
        if server.token is None:
            return
        given = (authorization or "").encode()
        if not hmac.compare_digest(given, f"Bearer {server.token}".encode()):
            raise HTTPException(401, "missing or wrong bearer token (Authorization: Bearer <token>)",
                                headers={"WWW-Authenticate": "Bearer"})
    return Depends(check)


def _too_big(server: Server) -> HTTPException:
    return HTTPException(413, f"request body larger than serve.max_request_mb = {server.settings.max_request_mb:g} MB")


def _check_declared_size(request: Request, server: Server) -> None:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > server.settings.max_request_mb * 1024 * 1024:
        raise _too_big(server)


async def _body(request: Request, server: Server) -> bytes:
    """The body, refused with 413 as soon as it passes ``max_request_mb`` (a chunked upload too)."""
    limit = int(server.settings.max_request_mb * 1024 * 1024)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_big(server)
        chunks.append(chunk)
    return b"".join(chunks)


def _current(server: Server) -> ServedModel:
    served = server.slot.current
    if served is None:
        raise HTTPException(503, "no model loaded yet", headers={"Retry-After": "1"})
    return served


def _model_headers(served: ServedModel) -> dict[str, str]:
    return {"X-Model-Version": served.version, "X-Generator-Sha256": served.generator_sha256,
            "X-Model-Uri": served.uri}


# -- operations -----------------------------------------------------------------------------------
def _operations(app: FastAPI, server: Server) -> None:
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        served = server.slot.current
        if served is None:
            return JSONResponse({"ready": False, "detail": "no model loaded"}, status_code=503)
        return JSONResponse({"ready": True, "version": served.version})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(server.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/v1/model", dependencies=[_authorized(server)])
    async def model() -> JSONResponse:
        served = _current(server)
        meta = served.model.metadata
        info: dict[str, Any] = {
            "uri": served.uri, "version": served.version, "generator_sha256": served.generator_sha256,
            "kind": meta.get("kind", "vocoder"), "variant": meta.get("variant"), "sample_rate": meta.get("sample_rate"),
            "backend": server.backend, "threads": server.settings.threads,
        }
        if served.vocoder is not None:
            info.update(hop_length=served.vocoder.hop_length, n_mels=served.vocoder.n_mels,
                        mel_config=served.vocoder.mel_config.to_dict())
            info["streaming"] = ({"left_frames": served.field.left, "right_frames": served.field.right,
                                  "overlap_frames": served.field.overlap} if served.field else
                                 {"unavailable": served.stream_problem})
        if server.follower is not None:
            info["following"] = {"alias_uri": server.follower.uri, "poll_seconds": server.follower.period,
                                 "last_error": server.follower.last_error}
        return JSONResponse(info, headers=_model_headers(served))


# -- synthesis ------------------------------------------------------------------------------------
def _flag(value: Any) -> bool:
    return str(value).lower() in ("1", "true", "yes", "on")


def _options(request: Request, data: dict[str, Any] | None = None) -> dict[str, Any]:
    """Query options, overridden by those of a JSON body."""
    q = request.query_params
    opts: dict[str, Any] = {"stream": _flag(q.get("stream", "false")), "format": q.get("format", "pcm16"),
                            "speaker": q.get("speaker"), "mel_config": q.get("mel_config"),
                            "resample": _flag(q.get("resample", "false"))}
    if "chunked" in request.headers.get("accept", ""):
        opts["stream"] = True
    if data:
        opts.update({k: data[k] for k in ("stream", "format", "speaker", "mel_config") if k in data})
        opts["stream"] = _flag(opts["stream"])
    if isinstance(opts["mel_config"], str):
        try:
            opts["mel_config"] = json.loads(opts["mel_config"])
        except json.JSONDecodeError as exc:
            raise SynthesisError(f"mel_config is not valid JSON ({exc})") from None
    if opts["format"] not in ("pcm16", "float32"):
        raise SynthesisError(f"format must be one of ['pcm16', 'float32'], got {opts['format']!r}")
    return opts


def _synthesis(app: FastAPI, server: Server) -> None:
    auth = _authorized(server)

    @app.post("/v1/vocode", dependencies=[auth])
    async def vocode(request: Request) -> Response:
        start = time.perf_counter()
        _check_declared_size(request, server)
        ticket = server.admission.enter()
        try:
            body = await _body(request, server)
            served = _current(server)
            if request.headers.get("content-type", "").split(";")[0].strip() in NPY_TYPES:
                mel, opts = read_npy(body), _options(request)
            else:
                data = read_json(body)
                mel, opts = json_mel(data), _options(request, data)
            job = jobs.mel_job(served, mel, opts["mel_config"], opts["speaker"], server.backend)
            return await _answer(server, ticket, job, opts, "/v1/vocode", start)
        finally:
            if not ticket.streaming:
                ticket.release()

    @app.post("/v1/copy-synthesis", dependencies=[auth])
    async def copy_synthesis(request: Request) -> Response:
        start = time.perf_counter()
        _check_declared_size(request, server)
        ticket = server.admission.enter()
        try:
            body = await _body(request, server)
            served = _current(server)
            opts = _options(request)
            signal, rate = read_wav(body)
            job = jobs.wav_job(served, signal, rate, opts["resample"], opts["speaker"], server.backend)
            return await _answer(server, ticket, job, opts, "/v1/copy-synthesis", start)
        finally:
            if not ticket.streaming:
                ticket.release()

    @app.post("/v1/generate", dependencies=[auth])
    async def generate(request: Request) -> Response:
        start = time.perf_counter()
        _check_declared_size(request, server)
        ticket = server.admission.enter()
        try:
            body = await _body(request, server)
            served = _current(server)
            data = read_json(body) if body.strip() else {}
            q = request.query_params
            n, seed, label = (data.get(k, q.get(k)) for k in ("n", "seed", "label"))
            fmt = data.get("format", q.get("format", "pcm16"))
            clips = await server.admission.run(jobs.generate, served, n, seed, label, server.backend)
        finally:
            ticket.release()
        server.metrics.first_audio.labels("/v1/generate", "false").observe(time.perf_counter() - start)
        return Response(wav_bytes(clips, served.model.sample_rate, fmt), media_type="audio/wav",
                        headers=_model_headers(served))


async def _answer(server: Server, ticket: Ticket, job: jobs.VocodeJob, opts: dict[str, Any], path: str,
                  start: float) -> Response:
    headers = _model_headers(job.served)
    if job.warning:
        headers["X-Ganpipe-Warning"] = job.warning.replace("\n", " ")[:1000]
    sample_rate = job.served.vocoder.sample_rate  # type: ignore[union-attr]
    if opts["stream"] and jobs.streamable(job):
        ticket.streaming = True
        return StreamingResponse(_streamed(server, ticket, job, opts["format"], path, start), media_type="audio/wav",
                                 headers=headers)
    audio = await server.admission.run(jobs.whole, job)
    elapsed = time.perf_counter() - start
    server.metrics.first_audio.labels(path, "false").observe(elapsed)
    _produced(server, path, job, elapsed)
    return Response(wav_bytes(audio, sample_rate, opts["format"]), media_type="audio/wav", headers=headers)


async def _streamed(server: Server, ticket: Ticket, job: jobs.VocodeJob, fmt: str, path: str,
                    start: float) -> AsyncIterator[bytes]:
    settings = server.settings
    try:
        yield wav_header(job.samples, job.served.vocoder.sample_rate, fmt)  # type: ignore[union-attr]
        blocks = jobs.blocks(job, settings.stream_first_frames, settings.stream_block_frames)
        first = True
        while (chunk := await server.admission.run(next, blocks, None)) is not None:
            if first:
                server.metrics.first_audio.labels(path, "true").observe(time.perf_counter() - start)
                first = False
            yield wav_samples(chunk, fmt)
        _produced(server, path, job, time.perf_counter() - start)
    finally:
        ticket.release()


def _produced(server: Server, path: str, job: jobs.VocodeJob, elapsed: float) -> None:
    server.metrics.audio_seconds.inc(job.seconds)
    server.metrics.rtf.labels(path).observe(elapsed / max(job.seconds, 1e-9))


class AccessLog:
    """ASGI middleware: one JSON line per request (method, path, status, bytes, seconds, model
    version), and the request counter and latency histogram (to the last byte of a stream)."""

    def __init__(self, app: Any, server: Server):
        self.app = app
        self.server = server

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, state = time.perf_counter(), {"status": 500, "bytes": 0, "version": None}

        async def counting(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                state["version"] = dict(message.get("headers") or []).get(b"x-model-version", b"").decode() or None
            elif message["type"] == "http.response.body":
                state["bytes"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, counting)
        finally:
            self._record(scope, state, time.perf_counter() - start)

    def _record(self, scope: dict, state: dict, seconds: float) -> None:
        path = scope["path"] if scope["path"] in _ROUTES else "other"
        self.server.metrics.requests.labels(path, str(state["status"])).inc()
        self.server.metrics.latency.labels(path).observe(seconds)
        if self.server.settings.access_log:
            client = scope.get("client") or ("", 0)
            access_log.info(json.dumps({
                "ts": round(time.time(), 3), "client": client[0], "method": scope["method"], "path": scope["path"],
                "status": state["status"], "bytes_out": state["bytes"], "seconds": round(seconds, 4),
                "model_version": state["version"]}))
