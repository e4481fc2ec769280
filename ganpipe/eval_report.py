"""The evaluate stage's report of a vocoder or generator (``reports/eval/``; also what the register run
of an imported model logs): ``per_utterance.csv``, ``skipped.csv``, ``metrics_histograms.png`` and, in
``samples/``, the generated, Griffin-Lim and reference wavs and their mel plots."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from ganpipe import evaluation as E
from ganpipe.atomic import atomic_path
from ganpipe.mel import MelConfig, MelSpectrogram
from ganpipe.metrics import METRIC_KEYS
from ganpipe.plots import plot_histograms, plot_mels


def write_report(result: E.EvalResult, out_dir: Path, loaded_sr: int, mel_config: MelConfig | None) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / "samples").mkdir(parents=True)
    with atomic_path(out_dir / "per_utterance.csv") as tmp:
        result.per_item.to_csv(tmp, index=False)
    with atomic_path(out_dir / "skipped.csv") as tmp:
        import pandas as pd

        pd.DataFrame(result.skipped, columns=["utt_id", "path", "reason"]).to_csv(tmp, index=False)
    cols = [c for c in METRIC_KEYS if c in result.per_item.columns] or ["rms_db"]
    plot_histograms(out_dir / "metrics_histograms.png", result.per_item, cols, "per-utterance metrics")
    mel = MelSpectrogram(mel_config) if mel_config is not None else None
    import torch

    for name, gen, ref in result.samples:
        E.write_wav(out_dir / "samples" / f"{name}_generated.wav", gen, loaded_sr)
        if name in result.baseline_samples:
            E.write_wav(out_dir / "samples" / f"{name}_griffin_lim.wav", result.baseline_samples[name], loaded_sr)
        if ref is not None:
            E.write_wav(out_dir / "samples" / f"{name}_reference.wav", ref, loaded_sr)
            if mel is not None:
                with torch.inference_mode():
                    plot_mels(out_dir / "samples" / f"{name}_mel.png", mel(torch.from_numpy(ref)).numpy(),
                              mel(torch.from_numpy(gen.astype(np.float32))).numpy(), title=name)
