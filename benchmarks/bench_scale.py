"""Scale benchmark (issue 16): download(local) -> prepare -> features through the real flows and
`dvc repro`, with one Prefect server, on corpora of N utterances of real speech.

    python benchmarks/bench_scale.py --sizes 500 2000 [--workdir /tmp/ganpipe-bench-scale]
                                     [--compare-cache-type reflink,hardlink,copy] [--keep]

Each corpus is built from ../shared/data/ljspeech-mini (32 LJSpeech clips): utterance i is clip
i mod 32 at a gain that depends on i, mixed with a 10 % cut of another clip at an offset that
depends on i, so every file is distinct real speech of LJSpeech's durations (22.05 kHz, PCM16).
Corpora and DVC projects (a copy of this checkout's tracked files) live under --workdir, outside
the repo, and are deleted at the end unless --keep.

Per stage it records: `dvc repro <stage>` wall time, the flow's own wall time (the stage command
runs under a timing wrapper) and peak RSS, DVC's overhead (the difference), and at the end a no-op
`dvc repro features`, the disk used by the outputs, by the cache and by both together (hardlinks counted
once), and the share of output files hardlinked into the cache. Growth exponents are log-log slopes
between consecutive sizes. With --compare-cache-type the same corpus also runs in a project with
that `cache.type` (e.g. DVC's default, which copies on ext4), for the commit-time comparison.
A DVC-level check follows at the smallest size: one wav is edited in place keeping its size, and
`dvc repro features` must re-run prepare and features (the raw corpus' identity includes content).
Timings on a shared machine are noisy: read ratios, not absolute numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
LJ_MINI = REPO.parent / "shared" / "data" / "ljspeech-mini" / "LJSpeech-1.1"
STAGES = ("download", "prepare", "features")
OUTPUTS = {"download": "data/raw", "prepare": "data/prepared", "features": "data/features"}


# ------------------------------------------------------------------------------------------------
# corpus and project
# ------------------------------------------------------------------------------------------------
def build_corpus(root: Path, n: int) -> dict:
    clips = [sf.read(str(p), dtype="float32")[0] for p in sorted((LJ_MINI / "wavs").glob("*.wav"))]
    sr = sf.info(str(next((LJ_MINI / "wavs").glob("*.wav")))).samplerate
    out = root / "LJ"
    out.mkdir(parents=True, exist_ok=True)
    seconds = 0.0
    for i in range(n):
        a = clips[i % len(clips)]
        b = clips[(i * 7 + 3 + i // len(clips)) % len(clips)]
        gain = 0.6 + 0.35 * ((i * 0.6180339887) % 1.0)
        off = (i * 2311) % max(1, b.size - 1)
        cut = np.roll(b, -off)[:a.size]
        if cut.size < a.size:
            cut = np.pad(cut, (0, a.size - cut.size))
        x = np.clip(gain * a + 0.1 * cut, -1, 1)
        sf.write(str(out / f"utt{i:06d}.wav"), x, sr, subtype="PCM_16")
        seconds += a.size / sr
    return {"utterances": n, "hours": seconds / 3600}


def make_project(proj: Path, corpus: Path, cache_type: str) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for rel in filter(None, files.decode().split("\0")):
        src = REPO / rel
        if rel.startswith(("data/", "models/", "metrics/", "plots/", "reports/")) or rel == "dvc.lock":
            continue
        if src.is_file():
            (proj / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, proj / rel)
    import yaml

    params = yaml.safe_load((proj / "params.yaml").read_text())
    params["dataset"].update(name="local", local_dir=str(corpus))
    params["tracking"]["enabled"] = False
    (proj / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    # every stage command runs under the timing wrapper (flow wall time and peak RSS)
    dvc = yaml.safe_load((proj / "dvc.yaml").read_text())
    for stage in STAGES:
        dvc["stages"][stage]["cmd"] = (f"python {REPO / 'benchmarks' / 'bench_scale.py'} --timed "
                                       f".bench/{stage}.json -- {dvc['stages'][stage]['cmd']}")
    (proj / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    for cmd in (["git", "init", "-q"], ["dvc", "config", "cache.type", cache_type],
                ["dvc", "config", "--unset", "core.remote"], ["git", "add", "-A"],
                ["git", "-c", "user.email=b@e", "-c", "user.name=bench", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=proj, check=True, capture_output=True)


# ------------------------------------------------------------------------------------------------
# measurements
# ------------------------------------------------------------------------------------------------
def timed_child(out: Path, cmd: list[str]) -> int:
    t0 = time.perf_counter()
    rc = subprocess.call(cmd)
    wall = time.perf_counter() - t0
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"wall_s": wall, "peak_rss_mb": ru.ru_maxrss / 1024, "rc": rc,
                               "cpu_s": ru.ru_utime + ru.ru_stime}))
    return rc


def disk(paths: list[Path]) -> int:
    """Bytes on disk of ``paths`` together, each inode counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for root in paths:
        for dirpath, _, files in os.walk(root):
            for name in files:
                st = os.lstat(os.path.join(dirpath, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_blocks * 512
    return total


def linked_share(path: Path) -> float:
    n = linked = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            n += 1
            linked += os.lstat(os.path.join(dirpath, name)).st_nlink >= 2
    return linked / max(1, n)


def dvc(proj: Path, env: dict, *args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    res = subprocess.run(["dvc", *args], cwd=proj, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode:
        raise SystemExit(f"dvc {' '.join(args)} failed in {proj}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}")
    return wall, res.stdout


def run_size(workdir: Path, n: int, env: dict, cache_type: str, corpus: Path) -> dict:
    proj = workdir / f"proj-{n}-{cache_type.replace(',', '_')}"
    shutil.rmtree(proj, ignore_errors=True)
    make_project(proj, corpus, cache_type)
    row: dict = {"n": n, "cache_type": cache_type}
    dvc(proj, env, "repro", "-s", "validate")  # every stage depends on its output
    for stage in STAGES:
        wall, _ = dvc(proj, env, "repro", "-s", stage)
        flow = json.loads((proj / ".bench" / f"{stage}.json").read_text())
        row[stage] = {"repro_s": round(wall, 2), "flow_s": round(flow["wall_s"], 2),
                      "dvc_overhead_s": round(wall - flow["wall_s"], 2),
                      "peak_rss_mb": round(flow["peak_rss_mb"]),
                      "cores_used": round(flow["cpu_s"] / flow["wall_s"], 2),
                      "outputs_mb": round(disk([proj / OUTPUTS[stage]]) / 1e6, 1),
                      "linked_share": round(linked_share(proj / OUTPUTS[stage]), 3)}
        print(f"  N={n} {cache_type} {stage}: {row[stage]}", flush=True)
    wall, out = dvc(proj, env, "repro", "features")
    row["noop_repro_s"] = round(wall, 2)
    row["noop_ran"] = [s for s in STAGES if f"Running stage '{s}'" in out]
    outs = [proj / OUTPUTS[s] for s in STAGES]
    row["disk_outputs_mb"] = round(disk(outs) / 1e6, 1)
    row["disk_cache_mb"] = round(disk([proj / ".dvc" / "cache"]) / 1e6, 1)
    row["disk_total_mb"] = round(disk([*outs, proj / ".dvc" / "cache"]) / 1e6, 1)
    row["total_ratio"] = round(row["disk_total_mb"] / max(row["disk_outputs_mb"], 1e-9), 3)
    row["project"] = proj
    return row


def edit_check(proj: Path, corpus: Path, env: dict) -> dict:
    """Edit one wav in place keeping its size; `dvc repro features` must re-run prepare and features."""
    wav = sorted((corpus / "LJ").glob("*.wav"))[0]
    size = wav.stat().st_size
    x, sr = sf.read(str(wav), dtype="int16")
    x[: sr // 10] //= 2  # quieter first 100 ms
    with sf.SoundFile(str(wav), "r+") as fh:
        fh.seek(0)
        fh.write(x)
    assert wav.stat().st_size == size
    _, out = dvc(proj, env, "repro", "features")
    ran = [s for s in STAGES if f"Running stage '{s}'" in out]
    return {"edited": wav.name, "same_size": wav.stat().st_size == size, "stages_rerun": ran,
            "ok": {"prepare", "features"} <= set(ran)}


def cache_intact(proj: Path) -> bool:
    """Every cache object still hashes to its name (nothing was written through a hardlink)."""
    import hashlib

    for path in (proj / ".dvc" / "cache" / "files" / "md5").rglob("*"):
        if path.is_file() and not path.name.endswith(".dir"):
            if hashlib.md5(path.read_bytes()).hexdigest() != path.parent.name + path.name:
                return False
    return True


def resampling_report(seconds: float = 600.0) -> dict:
    """LibriTTS-style 24 kHz -> 22.05 kHz with soxr VHQ vs HQ: CPU time per hour of audio (one core),
    passband ripple (tones 50 Hz - 9.9 kHz), alias rejection (tones 11.1 - 12 kHz, above the new
    Nyquist, must vanish) and how far HQ's output is from VHQ's on speech."""
    import soxr

    rng = np.random.default_rng(0)
    src_sr, dst_sr = 24000, 22050
    noise = (0.3 * rng.standard_normal(int(seconds * src_sr))).astype(np.float32)
    speech = np.concatenate([sf.read(str(p), dtype="float32")[0] for p in sorted((LJ_MINI / "wavs").glob("*.wav"))])
    speech24 = soxr.resample(speech, 22050, src_sr, quality="VHQ").astype(np.float32)
    t = np.arange(src_sr * 2) / src_sr
    report: dict = {}
    for q in ("VHQ", "HQ"):
        soxr.resample(noise[:src_sr], src_sr, dst_sr, quality=q)  # warm-up
        t0 = time.process_time()
        soxr.resample(noise, src_sr, dst_sr, quality=q)
        cpu = time.process_time() - t0
        gains = []
        for f in np.geomspace(50, 9900, 40):
            y = soxr.resample(np.sin(2 * np.pi * f * t).astype(np.float32), src_sr, dst_sr, quality=q)
            mid = y[dst_sr // 2: -dst_sr // 2]
            gains.append(20 * np.log10(np.sqrt(2) * np.sqrt(np.mean(mid.astype(np.float64) ** 2))))
        alias = []
        for f in np.linspace(11100, 11990, 10):
            y = soxr.resample(np.sin(2 * np.pi * f * t).astype(np.float32), src_sr, dst_sr, quality=q)
            mid = y[dst_sr // 2: -dst_sr // 2]
            alias.append(20 * np.log10(max(np.sqrt(2 * np.mean(mid.astype(np.float64) ** 2)), 1e-12)))
        report[q] = {"cpu_s_per_audio_hour": round(cpu * 3600 / seconds, 2),
                     "passband_ripple_db": round(max(gains) - min(gains), 5),
                     "worst_alias_db": round(max(alias), 1)}
    vhq = soxr.resample(speech24, src_sr, dst_sr, quality="VHQ").astype(np.float64)
    hq = soxr.resample(speech24, src_sr, dst_sr, quality="HQ").astype(np.float64)
    n = min(vhq.size, hq.size)
    report["hq_vs_vhq_speech_snr_db"] = round(10 * np.log10(np.sum(vhq[:n] ** 2) / np.sum((vhq[:n] - hq[:n]) ** 2)), 1)
    report["hq_vs_vhq_max_abs_diff_pcm16_lsb"] = round(float(np.max(np.abs(vhq[:n] - hq[:n]))) * 32768, 2)
    return report


def exponents(rows: list[dict], key) -> list[float]:
    out = []
    for a, b in zip(rows, rows[1:]):
        va, vb = key(a), key(b)
        out.append(round(math.log(vb / va) / math.log(b["n"] / a["n"]), 2) if va > 0 and vb > 0 else float("nan"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 2000])
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/ganpipe-bench-scale"))
    ap.add_argument("--cache-type", default=None, help="default: the repo's .dvc/config")
    ap.add_argument("--compare-cache-type", default=None)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--resampling", action="store_true", help="only the 24 -> 22.05 kHz soxr VHQ/HQ report")
    ap.add_argument("--timed", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("cmd", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.timed:
        raise SystemExit(timed_child(args.timed, [a for a in args.cmd if a != "--"]))
    if args.resampling:
        print(json.dumps(resampling_report(), indent=2))
        return
    if REPO in args.workdir.resolve().parents or args.workdir.resolve() == REPO:
        raise SystemExit("--workdir must be outside the repository")

    from _prefect_server import start_server, stop, wait_healthy

    cache_type = args.cache_type or subprocess.run(["dvc", "config", "cache.type"], cwd=REPO, capture_output=True,
                                                   text=True).stdout.strip()
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DO_NOT_TRACK": "1", "PYTHONPATH": str(REPO)}
    proc, api, log = start_server(args.workdir, env)
    results: list[dict] = []
    try:
        wait_healthy(proc, api, log)
        for n in args.sizes:
            corpus = args.workdir / f"corpus-{n}"
            shutil.rmtree(corpus, ignore_errors=True)
            info = build_corpus(corpus, n)
            print(f"corpus N={n}: {info['hours']:.2f} h, {disk([corpus]) / 1e6:.0f} MB", flush=True)
            types = [cache_type] + ([args.compare_cache_type] if args.compare_cache_type else [])
            for ct in types:
                row = run_size(args.workdir, n, env, ct, corpus)
                row["hours"] = round(info["hours"], 3)
                row["corpus_mb"] = round(disk([corpus]) / 1e6, 1)
                if ct == cache_type and n == min(args.sizes):
                    row["edit_check"] = edit_check(row["project"], corpus, env)
                    row["cache_intact"] = cache_intact(row["project"])
                    print(f"  edit check: {row['edit_check']}, cache intact: {row['cache_intact']}", flush=True)
                proj = row.pop("project")
                if not args.keep:
                    shutil.rmtree(proj, ignore_errors=True)
                results.append(row)
            if not args.keep:
                shutil.rmtree(corpus, ignore_errors=True)
    finally:
        stop(proc)
        if not args.keep:
            shutil.rmtree(args.workdir / "prefect-home", ignore_errors=True)
    main_rows = [r for r in results if r["cache_type"] == cache_type]
    summary = {"rows": results, "exponents": {
        f"{s}.{k}": exponents(main_rows, lambda r, s=s, k=k: r[s][k])
        for s in ("prepare", "features") for k in ("flow_s", "dvc_overhead_s", "peak_rss_mb")}}
    summary["exponents"]["noop_repro_s"] = exponents(main_rows, lambda r: r["noop_repro_s"])
    (args.workdir / "bench_scale.json").write_text(json.dumps(summary, indent=2, default=str))
    print(json.dumps(summary, indent=2, default=str))


if __name__ == "__main__":
    main()
