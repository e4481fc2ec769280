"""Where does a vocoder lose MCD to Griffin-Lim? Two diagnostics on the evaluation split, for a
generator file (default models/generator.pt) and Griffin-Lim from the same mel (the evaluate stage's
copy-synthesis and baseline code):

1. band swap: MCD of the reference with one band (below / above a crossover, 8th-order Butterworth,
   zero phase) replaced by the vocoder's output. "model low" = the model's band below the
   crossover + the reference above it, so its MCD is what the model's low band alone costs.
2. frame-rate comb: the long-term spectrum (Welch, 8192 points) of the output over the reference's,
   in dB, at multiples of the mel frame rate (sample_rate / hop_length, 86.1 Hz at 22.05 kHz) and
   half-way between them. A generator whose output repeats every mel frame shows peaks on the
   multiples and troughs between them whatever the speakers' pitch; Griffin-Lim shows neither.

Needs data/prepared (``dvc repro prepare``); diagnosis only, nothing is written.

    .venv/bin/python benchmarks/diagnose_demo_mcd.py [--generator models/generator.pt]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from scipy import signal


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--generator", default="models/generator.pt")
    ap.add_argument("--prepared", default="data/prepared")
    ap.add_argument("--split", default="test")
    ap.add_argument("--iterations", type=int, default=32, help="Griffin-Lim iterations")
    ap.add_argument("--crossovers", default="1000,4000", help="Hz, comma-separated")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from ganpipe.audio import read_audio
    from ganpipe.evaluation import CopySynthesizer
    from ganpipe.generator_io import load_generator
    from ganpipe.griffin_lim import GriffinLimVocoder
    from ganpipe.manifest import read_manifest
    from ganpipe.metrics.mcd import mcd

    loaded = load_generator(Path(args.generator))
    sr, hop = loaded.mel_config.sample_rate, loaded.mel_config.hop_length
    synth = CopySynthesizer(loaded)
    griffin_lim = GriffinLimVocoder(loaded.mel_config, loaded.mel_stats, args.iterations)
    manifest = read_manifest(Path(args.prepared) / "manifest.csv")
    crossovers = [float(x) for x in args.crossovers.split(",")]
    swaps: dict[str, list[float]] = {}
    power = {"reference": 0.0, "model": 0.0, "griffin_lim": 0.0}
    for row in manifest[manifest["split"] == args.split].itertuples():
        ref, _ = read_audio(str(Path(args.prepared) / row.path))
        mel = synth.mel_input(ref)
        outs = {"model": synth(ref, mel=mel), "griffin_lim": griffin_lim(mel)}
        n = min(len(ref), *(len(o) for o in outs.values()))
        ref = ref[:n].astype(np.float64)
        outs = {k: o[:n].astype(np.float64) for k, o in outs.items()}
        swaps.setdefault("as it is: model", []).append(mcd(ref, outs["model"], sr))
        swaps.setdefault("as it is: griffin_lim", []).append(mcd(ref, outs["griffin_lim"], sr))
        for fc in crossovers:
            sos = signal.butter(8, fc, fs=sr, output="sos")
            ref_low = signal.sosfiltfilt(sos, ref)
            for name, out in outs.items():
                low = signal.sosfiltfilt(sos, out)
                swaps.setdefault(f"{name} below {fc:.0f} Hz + reference above", []).append(
                    mcd(ref, low + (ref - ref_low), sr))
                swaps.setdefault(f"reference below {fc:.0f} Hz + {name} above", []).append(
                    mcd(ref, ref_low + (out - low), sr))
        for name, x in (("reference", ref), *outs.items()):
            freqs, p = signal.welch(x, sr, nperseg=8192)
            power[name] = power[name] + p
    print(f"MCD dB, mean over {len(swaps['as it is: model'])} clips of the {args.split} split")
    for name, values in swaps.items():
        print(f"  {name:48s} {np.mean(values):6.3f}")
    rate = sr / hop
    on = [int(np.argmin(abs(freqs - k * rate))) for k in range(1, 12)]
    off = [int(np.argmin(abs(freqs - (k + 0.5) * rate))) for k in range(1, 12)]
    print(f"long-term spectrum over the reference's, dB, at k x {rate:.1f} Hz (k = 1..11) / half-way between")
    for name in ("model", "griffin_lim"):
        ratio = 10 * np.log10(power[name] / power["reference"])
        print(f"  {name:12s} on  {np.array2string(ratio[on], precision=1, max_line_width=200)}")
        print(f"  {'':12s} off {np.array2string(ratio[off], precision=1, max_line_width=200)}")


if __name__ == "__main__":
    main()
