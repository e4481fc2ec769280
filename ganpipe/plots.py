"""Figures people look at: mel spectrograms (reference vs generated) and metric histograms."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_mels(path: Path, ref: np.ndarray, gen: np.ndarray, title: str) -> None:
    """Two log-mels on one colour scale, reference above generated."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 1, figsize=(10, 5), sharex=True)
    lo, hi = float(np.min(ref)), float(np.max(ref))
    im = None
    for ax, m, label in ((axes[0], ref, "reference"), (axes[1], gen, "generated")):
        im = ax.imshow(m, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma")
        ax.set_ylabel(f"{label}\nmel bin")
    axes[1].set_xlabel("frame")
    fig.suptitle(title)
    fig.colorbar(im, ax=axes, shrink=0.8)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_histograms(path: Path, table: pd.DataFrame, columns: list[str], title: str) -> None:
    """One histogram per metric column (NaN values left out), with the mean marked."""
    plt = _pyplot()
    cols = [c for c in columns if c in table.columns]
    n = max(1, len(cols))
    fig, axes = plt.subplots(1, n, figsize=(3.2 * n, 2.8), squeeze=False)
    for ax, col in zip(axes[0], cols):
        vals = table[col].to_numpy(dtype=float)
        vals = vals[np.isfinite(vals)]
        if len(vals):
            ax.hist(vals, bins=min(20, max(3, len(vals))), color="#4c72b0")
            ax.axvline(vals.mean(), color="#c44e52", linestyle="--")
        ax.set_title(f"{col}\nmean {vals.mean():.3g}" if len(vals) else f"{col}\n(no values)", fontsize=9)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
