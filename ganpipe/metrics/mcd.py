"""Mel-cepstral distortion (MCD, dB) as defined by the ESPnet / ParallelWaveGAN evaluation recipes.

Definition (both :func:`mcd_reference` and :func:`mcd` implement it):

1. audio is scaled to the int16 range (``x * 32768``; float input is scaled, not rounded);
2. frames of ``n_fft = 1024`` samples every ``hop = 256`` samples, no padding
   (``(len - n_fft) // hop + 1`` frames), weighted by SPTK's power-normalised Hamming window;
3. SPTK mel-cepstral analysis of every frame (``mcep``: periodogram + ``eps = 1e-6``
   (``etype = 1``), Newton-Raphson with at least 2 and at most 30 iterations, stopping when the
   relative change of ``r(0)`` is below 1e-3), with the order and all-pass constant chosen by the
   sample rate (:data:`MCEP_PARAMS`; other rates need explicit ``mcep_order`` and ``mcep_alpha``);
4. alignment by DTW with Euclidean frame distance (generated sequence first, as the recipe calls
   ``fastdtw(gen, ref)``); ``c0`` (energy) is included unless ``include_c0=False``, in which case
   it is dropped before alignment *and* distance;
5. per aligned frame pair ``10 / ln(10) * sqrt(2 * sum_d (c_gen[d] - c_ref[d])**2)``, averaged over
   the path.

``use_dtw=False`` skips step 4: both sequences are truncated to the shorter one and compared
frame by frame (only meaningful for sample-aligned signals, e.g. vocoder output vs the waveform
its mel came from).

:func:`mcd_reference` is the recipe written the straightforward way (a ``pysptk.mcep`` call per
frame, ``fastdtw`` with its default radius 1). :func:`mcd` is the fast path: the same SPTK
algorithm vectorised over all frames in numpy (:func:`mel_cepstrum`; each frame keeps its own
convergence test, so frames stop at the same iteration as in SPTK) and a compiled DTW
(:mod:`ganpipe.metrics.dtw`). ``dtw="fastdtw"`` (default) reproduces the recipe's FastDTW path;
``dtw="exact"`` uses the optimal DTW path instead (lower or equal total cost; on real speech the
MCD differs from the recipe's by well under 1 %, see ``tests/evaluation/test_mcd.py``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Iterator
from typing import Any, Literal

import numba
import numpy as np

from ganpipe.metrics.dtw import dtw_path, fastdtw_path

__all__ = [
    "MCEP_PARAMS",
    "mcep_params",
    "mel_cepstrum",
    "mel_cepstrum_reference",
    "mcd",
    "mcd_reference",
    "mcd_from_mcep",
]

#: sample rate -> (mel-cepstrum order, all-pass constant alpha), the recipes' table
MCEP_PARAMS: dict[int, tuple[int, float]] = {
    16000: (23, 0.42),
    22050: (34, 0.45),
    24000: (34, 0.46),
    44100: (39, 0.53),
    48000: (39, 0.55),
}

N_FFT = 1024
HOP = 256
INT16_SCALE = 32768.0
# SPTK mcep settings used by the recipes (pysptk defaults for the iteration control)
_EPS = 1e-6
_MIN_ITER = 2
_MAX_ITER = 30
_THRESHOLD = 1e-3
_DB = 10.0 / math.log(10.0)

DtwMode = Literal["fastdtw", "exact"]


def mcep_params(sample_rate: int, order: int | None = None, alpha: float | None = None) -> tuple[int, float]:
    """``(order, alpha)`` for ``sample_rate``; explicit values override the table.

    Raises ``ValueError`` naming the rate and the supported ones when the rate is not in
    :data:`MCEP_PARAMS` and ``order``/``alpha`` are not both given.
    """
    if order is not None and alpha is not None:
        resolved = (int(order), float(alpha))
    elif sample_rate in MCEP_PARAMS:
        table_order, table_alpha = MCEP_PARAMS[sample_rate]
        resolved = (
            table_order if order is None else int(order),
            table_alpha if alpha is None else float(alpha),
        )
    else:
        supported = ", ".join(str(r) for r in sorted(MCEP_PARAMS))
        raise ValueError(
            f"no mel-cepstrum setting for sample rate {sample_rate} Hz (supported: {supported}); "
            "resample the audio or pass both mcep_order and mcep_alpha"
        )
    if resolved[0] < 1 or 2 * resolved[0] > N_FFT // 2:
        raise ValueError(f"mcep_order must be in [1, {N_FFT // 4}], got {resolved[0]}")
    if not -1.0 < resolved[1] < 1.0:
        raise ValueError(f"mcep_alpha must be in (-1, 1), got {resolved[1]}")
    return resolved


def _check_wave(x: np.ndarray, name: str, n_fft: int) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D waveform, got shape {arr.shape}")
    if arr.shape[0] < n_fft:
        raise ValueError(f"{name} has {arr.shape[0]} samples; MCD needs at least one frame of {n_fft}")
    arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return arr


@functools.lru_cache(maxsize=8)
def _sptk_hamming(n: int) -> np.ndarray:
    """SPTK's Hamming window (symmetric, 0.54/0.46) normalised to unit power."""
    w = 0.54 - 0.46 * np.cos(2.0 * np.pi * np.arange(n) / (n - 1))
    w = w / np.sqrt(np.sum(w * w))
    w.setflags(write=False)
    return w


def _frames(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    n_frames = (x.shape[0] - n_fft) // hop + 1
    view = np.lib.stride_tricks.sliding_window_view(x, n_fft)[: (n_frames - 1) * hop + 1 : hop]
    return view * _sptk_hamming(n_fft)


def _warp_matrix(in_order: int, out_order: int, alpha: float, first_order_scaled: bool) -> np.ndarray:
    """Matrix of SPTK's recursive frequency transform: ``out = A @ in``.

    ``first_order_scaled=True`` is ``freqt`` (cepstrum warping, coefficient 1 scaled by
    ``1 - alpha^2``); ``False`` is ``frqtr`` (the transform of the autocorrelation-like ``r(k)``
    used in the Newton step). The recursion is run on all unit vectors at once, so the matrix is
    exactly the linear map the C code applies.
    """
    k = in_order + 1
    beta = 1.0 - alpha * alpha
    g = np.zeros((out_order + 1, k))
    for step in range(in_order, -1, -1):  # the C loop feeds c1[m1], c1[m1-1], ..., c1[0]
        d = g.copy()
        if first_order_scaled:
            g[0] = alpha * d[0]
            g[0, step] += 1.0
            if out_order >= 1:
                g[1] = beta * d[0] + alpha * d[1]
        else:
            g[0] = 0.0
            g[0, step] = 1.0
            if out_order >= 1:
                g[1] = d[0] + alpha * (d[1] - g[0])
        for j in range(2, out_order + 1):
            g[j] = d[j - 1] + alpha * (d[j] - g[j - 1])
    return g


def _cosine_matrices(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """Real-FFT operators on even sequences, as ``(half+1, half+1)`` matrices.

    ``fwd``: the real part of the ``n_fft``-point FFT of a sequence that is zero beyond index
    ``half`` (``y = x @ fwd``). ``inv``: the first ``half+1`` samples of the inverse FFT of an even
    (symmetric) spectrum given by its bins ``0..half`` (``y = X @ inv``).
    """
    half = n_fft // 2
    idx = np.arange(half + 1)
    cos = np.cos(2.0 * np.pi * np.outer(idx, idx) / n_fft)
    weights = np.full(half + 1, 2.0)
    weights[0] = weights[half] = 1.0
    return cos, (weights[:, None] * cos) / n_fft


@functools.lru_cache(maxsize=16)
def _analysis_matrices(
    n_fft: int, order: int, alpha: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Composite linear maps of the analysis, each applied as one matrix product per step.

    * ``init``  (half+1, order+1): log periodogram -> initial mel-cepstrum (inverse FFT, halve
      ``c(0)`` and ``c(half)``, ``freqt`` with ``alpha``);
    * ``init_r0`` (half+1,): log periodogram -> halved ``c(0)``, SPTK's first convergence reference;
    * ``model`` (order+1, half+1): mel-cepstrum -> log amplitude of the model spectrum
      (``freqt`` with ``-alpha`` to ``half``, real part of the FFT);
    * ``r``     (half+1, 2*order+1): ratio spectrum -> ``r(0..2M)`` (inverse FFT, ``frqtr``).
    """
    half = n_fft // 2
    fwd, inv = _cosine_matrices(n_fft)
    halve = np.ones(half + 1)
    halve[0] = halve[half] = 0.5
    to_mel = _warp_matrix(half, order, alpha, first_order_scaled=True)  # (order+1, half+1)
    to_lin = _warp_matrix(order, half, -alpha, first_order_scaled=True)  # (half+1, order+1)
    r_warp = _warp_matrix(half, 2 * order, alpha, first_order_scaled=False)  # (2*order+1, half+1)
    init = (inv * halve[None, :]) @ to_mel.T
    init_r0 = 0.5 * inv[:, 0]
    model = to_lin.T @ fwd
    r = inv @ r_warp.T
    mats = tuple(np.ascontiguousarray(mat) for mat in (init, init_r0, model, r))
    for mat in mats:
        mat.setflags(write=False)
    return mats  # type: ignore[return-value]


_BLAS_CONTROLLER: Any = None


@contextlib.contextmanager
def _single_threaded_blas() -> Iterator[None]:
    """Run BLAS on one thread: the products here are small, and on a loaded machine a second
    spinning BLAS thread costs far more than it brings (measured 2x slower on the 2-core CI box).
    Without ``threadpoolctl`` the results are the same, only the speed may differ."""
    global _BLAS_CONTROLLER
    try:
        if _BLAS_CONTROLLER is None:
            from threadpoolctl import ThreadpoolController

            _BLAS_CONTROLLER = ThreadpoolController()
        limiter = _BLAS_CONTROLLER.limit(limits=1, user_api="blas")
    except ImportError:
        limiter = contextlib.nullcontext()
    with limiter:
        yield


def mel_cepstrum(frames: np.ndarray, order: int, alpha: float, *, eps: float = _EPS) -> np.ndarray:
    """SPTK ``mcep`` (etype 1) of windowed frames ``(N, n_fft)`` at once -> ``(N, order + 1)``.

    Same algorithm and stopping rule as SPTK, run on a batch: the initial estimate is the warped
    cepstrum of the log periodogram; each Newton-Raphson step solves the Toeplitz-plus-Hankel
    system ``(R + Q) d = r - a`` (``R[i, j] = r(|i-j|)``, ``Q[i, j] = r(i+j)``); a frame leaves the
    batch when ``|(r0 - r0_prev) / r0| < 1e-3`` (from the 2nd iteration on) or after 30 steps.
    The FFTs and frequency warpings between steps are linear, so they are folded into three
    precomputed matrices (:func:`_analysis_matrices`).
    """
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2:
        raise ValueError(f"frames must be (N, n_fft), got shape {frames.shape}")
    n_frames, n_fft = frames.shape
    if n_fft < 4 or n_fft & (n_fft - 1):
        raise ValueError(f"frame length must be a power of two (SPTK FFT), got {n_fft}")
    if n_fft < 4 * order:
        raise ValueError(f"order {order} too high for {n_fft}-point frames (needs 2*order <= n_fft/2)")
    m = int(order)
    init, init_r0, model_mat, r_mat = _analysis_matrices(n_fft, m, float(alpha))
    with _single_threaded_blas():
        return _newton_raphson(frames, m, float(alpha), eps, init, init_r0, model_mat, r_mat)


def _newton_raphson(
    frames: np.ndarray,
    m: int,
    alpha: float,
    eps: float,
    init: np.ndarray,
    init_r0: np.ndarray,
    model_mat: np.ndarray,
    r_mat: np.ndarray,
) -> np.ndarray:
    n_frames = frames.shape[0]

    spec = np.fft.rfft(frames, axis=1)
    log_power = np.log(spec.real**2 + spec.imag**2 + eps)  # (N, half+1)
    out = log_power @ init
    # SPTK keeps c(0) of the (halved) initial cepstrum as the first convergence reference
    prev_r0 = log_power @ init_r0
    al = (-alpha) ** np.arange(m + 1)

    # working set: the frames still iterating, compacted whenever some of them converge
    active = np.arange(n_frames)
    mc = out.copy()
    for it in range(1, _MAX_ITER + 1):
        ratio = np.exp(log_power - 2.0 * (mc @ model_mat))
        r = ratio @ r_mat  # (A, 2m+1)
        r0 = r[:, 0]
        if it >= _MIN_ITER:
            done = np.abs((r0 - prev_r0) / r0) < _THRESHOLD
            if done.any():
                out[active[done]] = mc[done]
                keep = ~done
                active, mc, r, r0, log_power = active[keep], mc[keep], r[keep], r0[keep], log_power[keep]
                if active.size == 0:
                    break
            prev_r0 = r0
        mc += _solve_toeplitz_plus_hankel(r, al)
    else:
        out[active] = mc  # frames that hit the iteration limit keep their last estimate (as SPTK)
    return out


@numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract", "arcp", "nsz"})
def _solve_toeplitz_plus_hankel(r: np.ndarray, al: np.ndarray) -> np.ndarray:
    """Solve ``(R + Q) d = r[:M+1] - al`` for every row of ``r`` (A, 2M+1).

    ``R[i, j] = r(|i-j|)``, ``Q[i, j] = r(i+j)``: the Hessian of the mel-cepstral criterion, which
    is symmetric positive definite, so a Cholesky factorisation is used; a row whose matrix is not
    numerically positive definite falls back to Gaussian elimination with partial pivoting.
    """
    n_rows = r.shape[0]
    n = al.shape[0]
    out = np.empty((n_rows, n))
    a = np.empty((n, n))
    b = np.empty(n)
    for row in range(n_rows):
        for i in range(n):
            b[i] = r[row, i] - al[i]
            for j in range(n):
                a[i, j] = r[row, abs(i - j)] + r[row, i + j]
        ok = True
        # Cholesky, lower triangle in place
        for j in range(n):
            acc = a[j, j]
            for k in range(j):
                acc -= a[j, k] * a[j, k]
            if acc <= 0.0:
                ok = False
                break
            diag = np.sqrt(acc)
            a[j, j] = diag
            for i in range(j + 1, n):
                acc = a[i, j]
                for k in range(j):
                    acc -= a[i, k] * a[j, k]
                a[i, j] = acc / diag
        if ok:
            for i in range(n):  # L y = b
                acc = b[i]
                for k in range(i):
                    acc -= a[i, k] * b[k]
                b[i] = acc / a[i, i]
            for i in range(n - 1, -1, -1):  # L^T x = y
                acc = b[i]
                for k in range(i + 1, n):
                    acc -= a[k, i] * b[k]
                b[i] = acc / a[i, i]
        else:
            for i in range(n):
                b[i] = r[row, i] - al[i]
                for j in range(n):
                    a[i, j] = r[row, abs(i - j)] + r[row, i + j]
            b[:] = np.linalg.solve(a, b)
        out[row] = b
    return out


def mel_cepstrum_reference(frames: np.ndarray, order: int, alpha: float, *, eps: float = _EPS) -> np.ndarray:
    """The recipe's way: one ``pysptk.mcep`` call per windowed frame."""
    pysptk = _import_pysptk()
    return np.stack(
        [pysptk.mcep(f, order, alpha, eps=eps, etype=1) for f in np.asarray(frames, dtype=np.float64)]
    )


def _import_pysptk():  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pysptk imports the deprecated pkg_resources
        import pysptk
    return pysptk


def _distortion_db(gen: np.ndarray, ref: np.ndarray) -> float:
    """Mean over paired rows of ``10 / ln 10 * sqrt(2 * ||gen - ref||^2)``."""
    sq = np.sum((gen - ref) ** 2, axis=1)
    return float(np.mean(_DB * np.sqrt(2.0 * sq)))


def mcd_from_mcep(
    ref_mcep: np.ndarray,
    gen_mcep: np.ndarray,
    *,
    use_dtw: bool = True,
    include_c0: bool = True,
    dtw: DtwMode = "fastdtw",
) -> float:
    """MCD (dB) between two mel-cepstrum sequences ``(frames, order + 1)`` (steps 4-5 above)."""
    ref = np.asarray(ref_mcep, dtype=np.float64)
    gen = np.asarray(gen_mcep, dtype=np.float64)
    if not include_c0:
        ref, gen = ref[:, 1:], gen[:, 1:]
    if not use_dtw:
        n = min(ref.shape[0], gen.shape[0])
        return _distortion_db(gen[:n], ref[:n])
    if dtw == "fastdtw":
        _, path = fastdtw_path(gen, ref, radius=1)
    elif dtw == "exact":
        _, path = dtw_path(gen, ref)
    else:
        raise ValueError(f"dtw must be 'fastdtw' or 'exact', got {dtw!r}")
    return _distortion_db(gen[path[:, 0]], ref[path[:, 1]])


def mcd(
    ref: np.ndarray,
    gen: np.ndarray,
    sr: int,
    *,
    use_dtw: bool = True,
    include_c0: bool = True,
    dtw: DtwMode = "fastdtw",
    mcep_order: int | None = None,
    mcep_alpha: float | None = None,
) -> float:
    """MCD in dB between reference and generated waveforms (float, [-1, 1]) at ``sr`` (fast path)."""
    order, alpha = mcep_params(sr, mcep_order, mcep_alpha)
    ref_w = _check_wave(ref, "ref", N_FFT) * INT16_SCALE
    gen_w = _check_wave(gen, "gen", N_FFT) * INT16_SCALE
    ref_mc = mel_cepstrum(_frames(ref_w, N_FFT, HOP), order, alpha)
    gen_mc = mel_cepstrum(_frames(gen_w, N_FFT, HOP), order, alpha)
    return mcd_from_mcep(ref_mc, gen_mc, use_dtw=use_dtw, include_c0=include_c0, dtw=dtw)


def mcd_reference(
    ref: np.ndarray,
    gen: np.ndarray,
    sr: int,
    *,
    use_dtw: bool = True,
    include_c0: bool = True,
    mcep_order: int | None = None,
    mcep_alpha: float | None = None,
) -> float:
    """The baseline: the recipe computed the plain way, with the libraries it uses.

    One ``pysptk.mcep`` call per frame (window from ``pysptk.sptk.hamming``), alignment by
    ``fastdtw.fastdtw`` (default radius 1, ``scipy`` Euclidean distance). Slow (about 2 ms per
    frame); kept to check :func:`mcd` against and as the benchmark baseline.
    """
    pysptk = _import_pysptk()
    from fastdtw import fastdtw
    from scipy.spatial.distance import euclidean

    order, alpha = mcep_params(sr, mcep_order, mcep_alpha)
    window = pysptk.sptk.hamming(N_FFT)

    def analyse(wave: np.ndarray) -> np.ndarray:
        starts = range(0, wave.shape[0] - N_FFT + 1, HOP)
        return np.array(
            [pysptk.mcep(wave[s : s + N_FFT] * window, order, alpha, eps=_EPS, etype=1) for s in starts]
        )

    ref_mc = analyse(_check_wave(ref, "ref", N_FFT) * INT16_SCALE)
    gen_mc = analyse(_check_wave(gen, "gen", N_FFT) * INT16_SCALE)
    first = 0 if include_c0 else 1
    ref_mc, gen_mc = ref_mc[:, first:], gen_mc[:, first:]
    if use_dtw:
        _, pairs = fastdtw(gen_mc, ref_mc, dist=euclidean)
        steps = np.asarray(pairs, dtype=np.int64)
        return _distortion_db(gen_mc[steps[:, 0]], ref_mc[steps[:, 1]])
    n = min(ref_mc.shape[0], gen_mc.shape[0])
    return _distortion_db(gen_mc[:n], ref_mc[:n])
