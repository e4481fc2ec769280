"""F0 RMSE of a near-transparent vocoder by three trackers on the same real pairs (issue 23, item 7).

Copy-synthesis of the first N ljspeech-mini clips by a generator file (e.g. jik876's published LJ V1
imported with ``ganpipe import-model``), then per clip the F0 error (cents, frames voiced in both) by
WORLD Harvest (``ganpipe/metrics/pitch.py``'s default), WORLD DIO + StoneMask and librosa's pYIN (HMM
voicing, octave-jump penalties; 10-cent bins), with the share of gross (> 100 cents) and octave
(> 600 cents) errors, and the MCD of the float output vs the written 16-bit WAV.

    python benchmarks/check_f0_trackers.py models/lj_v1.pt [N]

Measured (LJ V1, 5 clips, 2-core CPU): Harvest 65-235 cents (8-18 % of frames > 100 cents, 0-3 % octave
jumps, mostly at voicing onsets/offsets), DIO 43-120, pYIN 18-24 (median 10 = one bin).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np

warnings.simplefilter("ignore")
ROOT = Path(__file__).resolve().parents[1]
WAVS = ROOT.parent / "shared" / "data" / "ljspeech-mini" / "LJSpeech-1.1" / "wavs"


def cents(a: np.ndarray, b: np.ndarray, va: np.ndarray, vb: np.ndarray) -> str:
    both = va & vb & np.isfinite(a) & np.isfinite(b)
    c = 1200 * np.log2(b[both] / a[both])
    return (f"rmse {np.sqrt(np.mean(c ** 2)):6.1f}  median {np.median(np.abs(c)):5.1f}  "
            f"gross {100 * np.mean(np.abs(c) > 100):4.1f}%  octave {100 * np.mean(np.abs(c) > 600):4.1f}%")


def main() -> None:
    import librosa
    import pyworld

    from ganpipe.audio import read_audio
    from ganpipe.evaluation import CopySynthesizer, as_pcm16
    from ganpipe.generator_io import load_generator
    from ganpipe.metrics.mcd import mcd
    from ganpipe.metrics.pitch import extract_f0

    synth = CopySynthesizer(load_generator(sys.argv[1]))
    for path in sorted(WAVS.glob("*.wav"))[: int(sys.argv[2]) if len(sys.argv) > 2 else 5]:
        ref, sr = read_audio(path)
        gen = synth(ref)
        n = min(len(ref), len(gen))
        r, g = ref[:n].astype(np.float64), gen[:n].astype(np.float64)
        print(f"{path.stem}: mcd float {mcd(r, g, sr):.4f}, 16-bit WAV {mcd(r, as_pcm16(g, sr)[:n], sr):.4f}")
        hr, hg = extract_f0(r, sr), extract_f0(g, sr)
        print("  harvest", cents(hr, hg, hr > 0, hg > 0))
        d = []
        for x in (r, g):
            f0, t = pyworld.dio(x, sr, f0_floor=70, f0_ceil=800, frame_period=5.0)
            d.append(pyworld.stonemask(x, f0, t, sr))
        print("  dio    ", cents(d[0], d[1], d[0] > 0, d[1] > 0))
        kw = dict(fmin=70, fmax=800, sr=sr, frame_length=1024, hop_length=110)
        (pr, vr, _), (pg, vg, _) = (librosa.pyin(x.astype(np.float32), **kw) for x in (r, g))
        print("  pyin   ", cents(pr, pg, vr, vg))


if __name__ == "__main__":
    main()
