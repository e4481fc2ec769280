"""The server's Prometheus metrics (``GET /metrics``), in a registry of their own (one per app)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_RTF_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("ganpipe_serve_requests", "Requests answered", ["path", "status"], registry=r)
        self.latency = Histogram("ganpipe_serve_request_seconds", "Request latency, to the last byte sent",
                                 ["path"], buckets=_LATENCY_BUCKETS, registry=r)
        self.first_audio = Histogram("ganpipe_serve_time_to_first_audio_seconds",
                                     "From request start to the first audio samples handed to the server",
                                     ["path", "stream"], buckets=_LATENCY_BUCKETS, registry=r)
        self.rtf = Histogram("ganpipe_serve_real_time_factor", "Synthesis seconds per audio second",
                             ["path"], buckets=_RTF_BUCKETS, registry=r)
        self.audio_seconds = Counter("ganpipe_serve_audio_seconds", "Audio produced", registry=r)
        self.in_flight = Gauge("ganpipe_serve_in_flight", "Requests admitted and not finished", registry=r)
        self.rejected = Counter("ganpipe_serve_rejected", "Requests refused because the queue was full", registry=r)
        self.model = Gauge("ganpipe_serve_model_info", "The model version being served (value 1)",
                           ["uri", "version", "generator_sha256"], registry=r)
        self.switches = Counter("ganpipe_serve_model_switches", "Times the served model changed", registry=r)
        self.load_failures = Counter("ganpipe_serve_model_load_failures",
                                     "New versions that could not be loaded (the old one kept serving)", registry=r)

    def served(self, uri: str, version: str, sha: str, previous: tuple[str, str, str] | None) -> None:
        if previous is not None:
            self.model.remove(*previous)
            self.switches.inc()
        self.model.labels(uri, version, sha).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)
