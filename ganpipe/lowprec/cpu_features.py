"""CPU instruction-set features of the low-precision backends, detected, never guessed.

:func:`cpu_flags` reads the ``flags`` (x86) or ``Features`` (Arm) line of ``/proc/cpuinfo``; where
there is none (macOS, Windows) it maps ``torch.backends.cpu.get_cpu_capability()`` (``AVX2``,
``AVX512``) to the flags that capability implies, which never include a bf16 or VNNI one.

A feature can be masked, as if the CPU lacked it, by listing it in ``$GANPIPE_CPU_MASK``
(comma-separated, e.g. ``GANPIPE_CPU_MASK=avx512_bf16,avx512_vnni``), or the whole probe replaced
with :func:`use_probe` (tests: a CPU without the instructions, on any machine).

:data:`NEEDS` says what each low-precision backend needs to be worth running; :func:`missing_feature`
names what is absent (``None``: all there).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from functools import lru_cache

MASK_ENV = "GANPIPE_CPU_MASK"

# backend -> (any one of these flags suffices, the name a warning gives when none is present)
NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    # bf16 dot products in hardware: AVX-512 BF16 (Zen 4, Cooper Lake, Sapphire Rapids), AMX-BF16, Arm BF16.
    # Without them oneDNN emulates bf16 with fp32 arithmetic plus conversions: slower than fp32.
    "bf16": (("avx512_bf16", "amx_bf16", "bf16"), "avx512_bf16"),
    # ONNX Runtime's MLAS int8 GEMM: AVX2 (vpmaddubsw) at least, faster with VNNI / AMX; Arm dot product.
    "onnx-int8": (("avx2", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp"), "avx2"),
}


@lru_cache(maxsize=1)
def _proc_cpuinfo_flags() -> frozenset[str]:
    try:
        text = open("/proc/cpuinfo", encoding="utf-8", errors="replace").read()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def _torch_capability_flags() -> frozenset[str]:
    try:
        import torch

        capability = str(torch.backends.cpu.get_cpu_capability()).upper()
    except Exception:  # noqa: BLE001 - no torch, or an old one: nothing known
        return frozenset()
    if "AVX512" in capability:
        return frozenset({"avx2", "avx512f"})
    if "AVX2" in capability:
        return frozenset({"avx2"})
    return frozenset()


def detected_flags() -> frozenset[str]:
    """The CPU's flags as the system reports them (no mask applied)."""
    return _proc_cpuinfo_flags() or _torch_capability_flags()


_probe: Callable[[], frozenset[str]] = detected_flags


@contextlib.contextmanager
def use_probe(probe: Callable[[], frozenset[str] | set[str]]) -> Iterator[None]:
    """Within the block, :func:`cpu_flags` asks ``probe`` instead of the system."""
    global _probe
    previous = _probe
    _probe = lambda: frozenset(probe())  # noqa: E731
    try:
        yield
    finally:
        _probe = previous


def masked() -> frozenset[str]:
    return frozenset(f.strip().lower() for f in os.environ.get(MASK_ENV, "").split(",") if f.strip())


def cpu_flags() -> frozenset[str]:
    """The CPU's flags (probe), less those masked by ``$GANPIPE_CPU_MASK``."""
    return frozenset(_probe()) - masked()


def missing_feature(backend: str) -> str | None:
    """The feature ``backend`` needs that this CPU lacks (its usual flag name), or ``None``."""
    if backend not in NEEDS:
        return None
    any_of, name = NEEDS[backend]
    flags = cpu_flags()
    return None if any(f in flags for f in any_of) else name


def flags_summary() -> str:
    """One line: the low-precision flags present, for logs and benchmark headers."""
    flags = cpu_flags()
    shown = [f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
             if f in flags]
    return " ".join(shown) or "none of avx2/avx512/vnni/bf16/amx"
