"""Dynamic time warping of two feature sequences (numba-compiled, exact and FastDTW-compatible).

Both functions align ``x`` (``N x D``) with ``y`` (``M x D``) under the same model as the
``fastdtw`` package that the ESPnet / ParallelWaveGAN MCD recipes call:

* local cost: Euclidean distance between frames, ``d(i, j) = ||x[i] - y[j]||_2``;
* steps ``(i-1, j)``, ``(i, j-1)``, ``(i-1, j-1)``, each adding ``d(i, j)`` once (no diagonal
  weight), the path runs from ``(0, 0)`` to ``(N-1, M-1)``;
* ties between predecessors are broken in the order ``(i-1, j)``, ``(i, j-1)``, ``(i-1, j-1)``
  (what ``fastdtw``'s ``min`` does).

:func:`dtw_path` is the exact optimum of that model (full dynamic programme, ``O(N*M)`` time, one
byte of memory per cell for the back-pointers). :func:`fastdtw_path` reproduces the approximate
multi-resolution search of ``fastdtw.fastdtw`` (Salvador & Chan's FastDTW: halve both sequences by
averaging frame pairs, solve the coarse problem recursively, project the coarse path with a
``radius`` neighbourhood, and run the DP inside that window) step for step, so it returns the same
path as ``fastdtw.fastdtw(x, y, radius, dist=euclidean)`` up to floating-point ties. Its cost is at
least the exact one.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["dtw_path", "fastdtw_path", "path_cost"]

# back-pointer codes stored per cell: 0 = came from (i-1, j), 1 = from (i, j-1), 2 = from (i-1, j-1)


@numba.njit(cache=True, nogil=True)
def _frame_distance(x: np.ndarray, y: np.ndarray, i: int, j: int) -> float:
    acc = 0.0
    for k in range(x.shape[1]):
        diff = x[i, k] - y[j, k]
        acc += diff * diff
    return np.sqrt(acc)


@numba.njit(cache=True, nogil=True)
def _backtrack(back: np.ndarray, lo: np.ndarray, n: int, m: int) -> np.ndarray:
    """Follow back-pointers from (n-1, m-1); ``back[i, j - lo[i]]`` holds the code of cell (i, j)."""
    path = np.empty((n + m, 2), dtype=np.int64)
    k = 0
    i, j = n - 1, m - 1
    while True:
        path[k, 0] = i
        path[k, 1] = j
        k += 1
        if i == 0 and j == 0:
            break
        code = back[i, j - lo[i]]
        if code == 0:
            i -= 1
        elif code == 1:
            j -= 1
        else:
            i -= 1
            j -= 1
    return path[:k][::-1].copy()


@numba.njit(cache=True, nogil=True)
def _windowed_dtw(x: np.ndarray, y: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[float, np.ndarray]:
    """DP restricted to cells ``lo[i] <= j < hi[i]`` (contiguous per row, rows monotone).

    Cells outside the window cost +inf, exactly like the default dict in ``fastdtw``.
    """
    n = x.shape[0]
    m = y.shape[0]
    width = 1
    for i in range(n):
        if hi[i] - lo[i] > width:
            width = hi[i] - lo[i]
    back = np.zeros((n, width), dtype=np.uint8)
    inf = np.inf
    prev = np.full(m + 1, inf)  # prev[j + 1] = D[i-1, j]; prev[0] is the virtual column j = -1
    cur = np.full(m + 1, inf)
    for i in range(n):
        for j in range(m + 1):
            cur[j] = inf
        for j in range(lo[i], hi[i]):
            dt = _frame_distance(x, y, i, j)
            if i == 0 and j == 0:
                cur[1] = dt
                back[0, 0] = 2
                continue
            up = prev[j + 1] if i > 0 else inf
            left = cur[j]
            diag = prev[j] if i > 0 else inf
            best = up
            code = 0
            if left < best:
                best = left
                code = 1
            if diag < best:
                best = diag
                code = 2
            cur[j + 1] = best + dt
            back[i, j - lo[i]] = code
        tmp = prev
        prev = cur
        cur = tmp
    total = float(prev[m])
    return total, _backtrack(back, lo, n, m)


def _as_features(a: np.ndarray, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (frames, dims) array, got shape {np.shape(a)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or inf")
    return np.ascontiguousarray(arr)


def _check_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = _as_features(x, "x")
    y = _as_features(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"feature dimensions differ: x has {x.shape[1]}, y has {y.shape[1]}")
    return x, y


def dtw_path(x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Exact DTW between ``x`` (N x D) and ``y`` (M x D).

    Returns ``(cost, path)``: the summed Euclidean distance along the optimal path and the path as
    an ``(K, 2)`` int64 array of ``(i, j)`` pairs from ``(0, 0)`` to ``(N-1, M-1)``.
    """
    x, y = _check_pair(x, y)
    n, m = x.shape[0], y.shape[0]
    lo = np.zeros(n, dtype=np.int64)
    hi = np.full(n, m, dtype=np.int64)
    cost, path = _windowed_dtw(x, y, lo, hi)
    return float(cost), path


def _reduce_by_half(a: np.ndarray) -> np.ndarray:
    even = a.shape[0] - a.shape[0] % 2
    return (a[0:even:2] + a[1:even:2]) / 2


def _expand_window(path: np.ndarray, n: int, m: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """Project a coarse path onto the fine grid (as ``fastdtw`` does) as per-row ``[lo, hi)``."""
    coarse_n = int(path[:, 0].max()) + radius + 1
    coarse_m = int(path[:, 1].max()) + radius + 1
    mark = np.zeros((coarse_n + 1, coarse_m + 1), dtype=bool)
    # every (i + a, j + b) with a, b in [-radius, radius]; cells with a negative index never map
    # into the fine grid, so they are dropped here
    offsets = np.arange(-radius, radius + 1)
    da = np.repeat(offsets, offsets.size)
    db = np.tile(offsets, offsets.size)
    ci = (path[:, 0:1] + da[None, :]).reshape(-1)
    cj = (path[:, 1:2] + db[None, :]).reshape(-1)
    keep = (ci >= 0) & (cj >= 0)
    mark[ci[keep], cj[keep]] = True
    fine = np.zeros((n, m), dtype=bool)
    fi_max = min(n, 2 * mark.shape[0])
    fj_max = min(m, 2 * mark.shape[1])
    up = np.repeat(np.repeat(mark, 2, axis=0), 2, axis=1)
    fine[:fi_max, :fj_max] = up[:fi_max, :fj_max]
    return _scan_window(fine)


@numba.njit(cache=True, nogil=True)
def _scan_window_impl(fine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # fastdtw walks each row from the previous row's first in-window column and keeps the first
    # contiguous run of marked cells; reproduce that (it also handles a row with no marked cell).
    n, m = fine.shape
    lo = np.zeros(n, dtype=np.int64)
    hi = np.zeros(n, dtype=np.int64)
    start = 0
    for i in range(n):
        first = -1
        end = -1
        for j in range(start, m):
            if fine[i, j]:
                if first < 0:
                    first = j
                end = j + 1
            elif first >= 0:
                break
        if first < 0:
            # fastdtw would set its start to None here and fail on the next row; a projected
            # FastDTW window is never empty in a row, so this is unreachable for valid input.
            lo[i] = start
            hi[i] = start
        else:
            lo[i] = first
            hi[i] = end
            start = first
    return lo, hi


def _scan_window(fine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = _scan_window_impl(fine)
    if np.any(hi <= lo):
        raise RuntimeError("internal error: empty FastDTW window row")
    return lo, hi


def _fastdtw(x: np.ndarray, y: np.ndarray, radius: int) -> tuple[float, np.ndarray]:
    min_size = radius + 2
    n, m = x.shape[0], y.shape[0]
    if n < min_size or m < min_size:
        return _windowed_dtw(x, y, np.zeros(n, dtype=np.int64), np.full(n, m, dtype=np.int64))
    _, coarse = _fastdtw(_reduce_by_half(x), _reduce_by_half(y), radius)
    lo, hi = _expand_window(coarse, n, m, radius)
    return _windowed_dtw(x, y, lo, hi)


def fastdtw_path(x: np.ndarray, y: np.ndarray, radius: int = 1) -> tuple[float, np.ndarray]:
    """FastDTW (the ``fastdtw`` package's algorithm, compiled): ``(cost, path)`` like :func:`dtw_path`.

    ``radius`` is the neighbourhood kept around the projected coarse path (``fastdtw``'s default
    is 1). A radius as large as the sequences gives the exact result.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    x, y = _check_pair(x, y)
    cost, path = _fastdtw(x, y, int(radius))
    return float(cost), path


def path_cost(x: np.ndarray, y: np.ndarray, path: np.ndarray) -> np.ndarray:
    """Per-step Euclidean distances ``||x[i] - y[j]||`` along ``path`` (K x 2)."""
    x, y = _check_pair(x, y)
    diff = x[path[:, 0]] - y[path[:, 1]]
    return np.sqrt(np.sum(diff * diff, axis=1))
