"""``ganpipe serve`` vs ``mlflow models serve`` on the same registered model, in one run (issue 25).

A temporary project registers the given generator file (default: the trained demo Vocos of the
main checkout, ``models/generator.pt``; ``--model-file`` for another, e.g. an imported HiFi-GAN V1)
as ``models:/<name>@champion``. Each server runs alone on 127.0.0.1 (started, measured, stopped: the
2 cores are not shared between them), the same backend (``--backend torch|onnx``: the ONNX export
inside the model) and 2 intra-op threads, one inference worker:

* latency p50 / p95 of whole answers for 2 s, 10 s and 60 s utterances (real speech: LJSpeech clips
  joined, mel computed with the model's mel configuration);
* time to first audio: ganpipe streamed (``stream=true``: first byte after the 44-byte WAV header),
  whole answers for both (nothing comes back before the end);
* throughput (audio seconds per second) with 1 and 4 concurrent clients on 10 s utterances, and the
  single-process offline throughput of the same backend (``Vocoder.mel_to_audio`` in this process);
* bytes on the wire (request + answer) for a 10 s utterance.

    .venv/bin/python benchmarks/bench_serving.py [--model-file F --variant V] [--seconds 2,10,60] [--repeats 5]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
LJ = Path("/work/shared/data/ljspeech-mini/LJSpeech-1.1/wavs")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def register(generator: Path, root: Path, variant: str) -> str:
    import yaml

    from ganpipe.config import load_params
    from ganpipe.model_registry import register_generator

    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["tracking"].update(tracking_uri="sqlite:///.mlflow/mlflow.db", artifact_location=".mlflow/artifacts")
    data["registry"].update(export_onnx=True, retries=0, model_name=f"bench-{variant}")
    (root / ".mlflow").mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(data))
    shutil.copy(generator, root / "generator.pt")
    from ganpipe.generator_io import load_generator

    step = load_generator(generator).meta.get("step")
    metrics = {"kind": "vocoder", "variant": variant, "step": step, "split": "test", "mcd": 7.0}
    reg = register_generator(root / "generator.pt", metrics, load_params(root / "params.yaml"), root, promote=True)
    return f"models:/{reg.model_name}@champion"


def speech_mels(model_file: Path, seconds: list[float]) -> tuple[dict[float, np.ndarray], object]:
    import soundfile as sf

    from ganpipe.serving.model import load_model

    voc = load_model(str(model_file))
    clips = [sf.read(p, dtype="float32")[0] for p in sorted(LJ.glob("*.wav"))]
    speech = np.concatenate(clips * (1 + int(max(seconds) * voc.sample_rate) // sum(map(len, clips))))
    return {s: voc.compute_mel(speech[: int(s * voc.sample_rate)], voc.sample_rate) for s in seconds}, voc


def npy(mel: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, mel.astype(np.float32))
    return buffer.getvalue()


class Server:
    """One server process (its own process group) and how to ask it for a whole answer."""

    def __init__(self, kind: str, uri: str, root: Path, threads: int, backend: str):
        self.kind, self.port, self.backend = kind, free_port(), backend
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / '.mlflow' / 'mlflow.db'}",
               "OMP_NUM_THREADS": str(threads), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        if kind == "ganpipe":
            cmd = [sys.executable, "-m", "ganpipe.cli", "serve", "--model", uri, "--port", str(self.port),
                   "--threads", str(threads), "--workers", "1", "--queue", "64", "--poll-seconds", "0",
                   "--max-request-mb", "512", "--backend", backend]
            self.ready_path = "/readyz"
        else:
            cmd = [sys.executable, "-m", "mlflow", "models", "serve", "-m", uri, "--env-manager", "local",
                   "-h", "127.0.0.1", "-p", str(self.port), "-w", "1"]
            self.ready_path = "/ping"
        self.log = open(root / f"{kind}.log", "w")
        self.proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        self.base = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {Path(self.log.name).read_text()[-2000:]}")
            try:
                if httpx.get(self.base + self.ready_path, timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.kind} not ready")

    def request(self, mel: np.ndarray) -> tuple[str, bytes, dict[str, str]]:
        if self.kind == "ganpipe":
            return "/v1/vocode", npy(mel), {"Content-Type": "application/x-npy"}
        backend = "onnxruntime" if self.backend == "onnx" else self.backend
        body = json.dumps({"inputs": mel[None].tolist(), "params": {"backend": backend}}).encode()
        return "/invocations", body, {"Content-Type": "application/json"}

    def whole(self, http: httpx.Client, mel: np.ndarray) -> tuple[float, int]:
        path, body, headers = self.request(mel)
        start = time.perf_counter()
        answer = http.post(self.base + path, content=body, headers=headers)
        elapsed = time.perf_counter() - start
        answer.raise_for_status()
        return elapsed, len(body) + len(answer.content)

    def first_audio(self, http: httpx.Client, mel: np.ndarray) -> float:
        """Seconds to the first audio byte of a streamed answer, read to its end (a client that leaves
        early would leave the block being computed to delay the next request)."""
        path, body, headers = self.request(mel)
        start, first, got = time.perf_counter(), None, 0
        with http.stream("POST", self.base + path, content=body, headers=headers,
                         params={"stream": "true"}) as answer:
            for chunk in answer.iter_raw():
                got += len(chunk)
                if first is None and got > 44:
                    first = time.perf_counter() - start
        if first is None:
            raise RuntimeError("no audio")
        return first

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def throughput(server: Server, mel: np.ndarray, seconds: float, clients: int, per_client: int) -> float:
    """Audio seconds per second of the answers that succeeded; failures are printed (MLflow's
    uvicorn answers 504 after its 60 s request timeout)."""
    done, failed = [], []

    def client() -> None:
        with httpx.Client(timeout=600) as http:
            for _ in range(per_client):
                try:
                    server.whole(http, mel)
                    done.append(1)
                except httpx.HTTPError as exc:
                    failed.append(repr(exc)[:120])

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failed:
        print(f"{server.kind}, {clients} clients: {len(failed)} of {clients * per_client} requests failed: {failed[0]}")
    return len(done) * seconds / (time.perf_counter() - start)


def measure(server: Server, mels: dict[float, np.ndarray], repeats: int, requests: int) -> dict:
    out: dict = {"latency": {}, "first_audio": {}}
    with httpx.Client(timeout=600) as http:
        server.whole(http, mels[min(mels)])  # warm-up
        for seconds, mel in mels.items():
            times = [server.whole(http, mel)[0] for _ in range(repeats if seconds < 30 else max(2, repeats // 2))]
            out["latency"][seconds] = (statistics.median(times), float(np.percentile(times, 95)))
        if server.kind == "ganpipe":
            longest = mels[max(mels)]
            out["first_audio"] = [server.first_audio(http, longest) for _ in range(repeats)]
        mid = mels[10.0] if 10.0 in mels else mels[min(mels)]
        out["wire_bytes"] = server.whole(http, mid)[1]
    mid_s = 10.0 if 10.0 in mels else min(mels)
    out["throughput"] = {c: throughput(server, mels[mid_s], mid_s, c, max(1, requests // c)) for c in (1, 4)}
    return out


def offline_throughput(voc: object, mel: np.ndarray, seconds: float, repeats: int, backend: str) -> float:
    voc.mel_to_audio(mel, warn_range=False, backend=backend)  # type: ignore[attr-defined]
    start = time.perf_counter()
    for _ in range(repeats):
        voc.mel_to_audio(mel, warn_range=False, backend=backend)  # type: ignore[attr-defined]
    return repeats * seconds / (time.perf_counter() - start)


def report(results: dict, offline: float, seconds: list[float]) -> None:
    ours, theirs = results["ganpipe"], results["mlflow"]
    print("| measure | mlflow models serve | ganpipe serve | ratio (mlflow / ganpipe) |")
    print("| --- | --- | --- | --- |")
    for s in seconds:
        for i, q in enumerate(("p50", "p95")):
            a, b = theirs["latency"][s][i], ours["latency"][s][i]
            print(f"| {s:g} s utterance, latency {q} | {a * 1000:.0f} ms | {b * 1000:.0f} ms | {a / b:.1f}x |")
    longest = max(seconds)
    tfa = statistics.median(ours["first_audio"])
    a = theirs["latency"][longest][0]
    print(f"| {longest:g} s, time to first audio (median) | {a * 1000:.0f} ms (whole answer) | "
          f"{tfa * 1000:.0f} ms streamed (max {max(ours['first_audio']) * 1000:.0f} ms) | {a / tfa:.0f}x |")
    for c in (1, 4):
        a, b = theirs["throughput"][c], ours["throughput"][c]
        print(f"| throughput, {c} client(s), audio s/s | {a:.1f} | {b:.1f} | {b / a:.2f}x (ours/theirs) |")
    print(f"| offline single-process throughput (same backend and threads) | | {offline:.1f} | 4 clients / offline: "
          f"{ours['throughput'][4] / offline:.2f} |")
    a, b = theirs["wire_bytes"], ours["wire_bytes"]
    print(f"| bytes on the wire, 10 s utterance | {a / 1e6:.2f} MB | {b / 1e6:.2f} MB | {a / b:.1f}x |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model-file", type=Path, default=Path("/work/main/models/generator.pt"))
    ap.add_argument("--variant", default="vocos")
    ap.add_argument("--seconds", default="2,10,60")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backend", default="torch", choices=["torch", "onnx"], help="the same for both servers")
    ap.add_argument("--requests", type=int, default=8, help="requests per throughput measurement (all clients)")
    args = ap.parse_args()
    seconds = [float(s) for s in args.seconds.split(",")]
    import torch

    torch.set_num_threads(args.threads)
    root = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    uri = register(args.model_file, root, args.variant)
    from ganpipe.serving.model import load_model

    mels, _ = speech_mels(args.model_file, seconds)
    voc = load_model(uri, f"sqlite:///{root / '.mlflow' / 'mlflow.db'}")  # the registered model, its ONNX export
    mid = 10.0 if 10.0 in mels else min(mels)
    offline = offline_throughput(voc, mels[mid], mid, 4, "onnxruntime" if args.backend == "onnx" else "torch")
    print(f"model {uri} ({args.model_file}), offline throughput {offline:.1f} audio s/s, "
          f"load {os.getloadavg()[0]:.1f}", flush=True)
    results = {}
    for kind in ("ganpipe", "mlflow"):
        server = Server(kind, uri, root, args.threads, args.backend)
        try:
            results[kind] = measure(server, mels, args.repeats, args.requests)
            print(kind, json.dumps(results[kind], default=str), f"load {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            server.stop()
    report(results, offline, seconds)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
