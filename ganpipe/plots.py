"""Figures people look at: mel spectrograms (reference vs generated), metric histograms and the
training curves that ``dvc plots show`` displays (PNG image plots: they render with no network)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ganpipe.atomic import atomic_path


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


# What each logged training quantity is (the figure's title); the order is the page's reading order.
CURVE_TITLES = {
    "g_loss": "generator loss (total)",
    "d_loss": "discriminator loss (total)",
    "val_mel_l1": "validation mel L1 (held-out utterances, copy-synthesis)",
    "g_mel_l1": "generator mel L1 (training segments)",
    "g_stft": "generator multi-resolution STFT loss",
    "g_adv": "generator adversarial loss",
    "g_fm": "generator feature-matching loss",
    "g_ac": "generator auxiliary-classifier loss",
    "d_adv": "discriminator adversarial loss",
    "d_gp": "discriminator gradient penalty",
    "d_ac": "discriminator auxiliary-classifier loss",
    "lr_g": "generator learning rate",
    "amp_scale": "fp16 loss scale",
}
CURVE_COLOR = "#1f77b4"  # every curve's colour (scripts/check_plots.sh looks for it in the rendered page)


def plot_training_curves(out_dir: Path, curve: pd.DataFrame) -> list[Path]:
    """One PNG per logged quantity of ``curve`` (a ``step`` column plus one column per quantity),
    each on its own axis, written atomically as ``out_dir/<quantity>.png``; returns the files.

    A column that repeats an earlier one (``d_adv`` when the discriminator loss has no other term)
    and columns without a finite value are left out; PNGs of ``out_dir`` not written by this call
    (quantities of an earlier variant) are removed, so the folder shows this run only."""
    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    columns = [c for c in curve.columns if c != "step"]
    columns.sort(key=lambda c: (list(CURVE_TITLES).index(c) if c in CURVE_TITLES else len(CURVE_TITLES), c))
    written: list[Path] = []
    shown: list[np.ndarray] = []
    for col in columns:
        values = pd.to_numeric(curve[col], errors="coerce").to_numpy(dtype=float)
        keep = np.isfinite(values)
        if not keep.any() or any(np.array_equal(values, s, equal_nan=True) for s in shown):
            continue
        shown.append(values)
        steps = curve["step"].to_numpy(dtype=float)[keep]
        fig, ax = plt.subplots(figsize=(6.4, 3.0))
        ax.plot(steps, values[keep], color=CURVE_COLOR, linewidth=1.5,
                marker="o" if keep.sum() <= 30 else None, markersize=3)
        ax.set_title(CURVE_TITLES.get(col, col), fontsize=10)
        ax.set_xlabel("step")
        ax.set_ylabel(col)
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        path = out_dir / f"{col}.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=80)
        plt.close(fig)
        written.append(path)
    for old in out_dir.glob("*.png"):
        if old not in written:
            old.unlink()
    return written
