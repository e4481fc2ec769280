"""The RESULTS table of issue 10: per variant, ours vs the reference code (jik876/hifi-gan,
the ParallelWaveGAN toolkit) — generator max |Δ| and discriminator max |Δ| (outputs and feature
maps, the architecture tests' comparisons), worst loss-term relative difference and worst weight
difference after one training step (relative to the tensor's largest weight; the step tests').

Runs the assertions of tests/reference/test_reference_architecture.py and tests/support/reference_step.py and
records the differences they check. Needs the oracle packages (scripts/test.sh installs them) and
../shared. Usage: python benchmarks/bench_reference_equivalence.py  (prints a Markdown table)
"""

from __future__ import annotations

import inspect
import sys
import tempfile
import warnings
from pathlib import Path

import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.reference import test_reference_architecture as ta  # noqa: E402
from tests.support import oracles  # noqa: E402
from tests.support import reference_step as rs  # noqa: E402
from tests.support.training_data import build_lj  # noqa: E402

WAVS = sorted((REPO.parent / "shared" / "data" / "ljspeech-mini" / "LJSpeech-1.1" / "wavs").glob("LJ*.wav"))


class _Recorder:
    """Wraps the architecture tests' max_diff / compare_discriminator to keep the largest G and D differences."""

    def __init__(self) -> None:
        self.g, self.d, self.in_d = 0.0, 0.0, False
        self._max_diff, self._compare = ta.max_diff, ta.compare_discriminator

    def max_diff(self, a: torch.Tensor, b: torch.Tensor) -> float:
        v = self._max_diff(a, b)
        line = "".join(inspect.stack()[1].code_context or [])  # the test's own line says which network
        if not self.in_d and ("generator" in line or "sub" in line):
            self.g = max(self.g, v)
        else:
            self.d = max(self.d, v)
        return v

    def compare(self, ref, ours) -> float:
        self.in_d = True
        try:
            v = self._compare(ref, ours)
        finally:
            self.in_d = False
        self.d = max(self.d, v)
        return v


def architecture(test, *args) -> tuple[float, float]:
    rec = _Recorder()
    ta.max_diff, ta.compare_discriminator = rec.max_diff, rec.compare
    try:
        test(*args)
    finally:
        ta.max_diff, ta.compare_discriminator = rec._max_diff, rec._compare
    return rec.g, rec.d


def main() -> None:
    warnings.simplefilter("ignore")
    oracles.require_oracles()
    wav, _ = sf.read(WAVS[0], dtype="float32")
    clip = torch.from_numpy(wav[: ta.FRAMES * 256])

    class _Tmp:
        def mktemp(self, name: str) -> Path:
            return Path(tempfile.mkdtemp(prefix=name))

    corpus = build_lj(_Tmp(), WAVS)
    out = Path(tempfile.mkdtemp())
    rows = []
    for variant in ("hifigan_v1", "hifigan_v2", "hifigan_v3"):
        g, _ = architecture(ta.test_jik876_generator_and_discriminators, variant, clip)
        _, d = architecture(ta.test_jik876_generator_and_discriminators, "hifigan_v3", clip)
        step = rs.jik876_step(corpus, out / variant, WAVS, variant) if variant == "hifigan_v1" else None
        rows.append((f"{variant} (jik876 config_{variant[-2:]}.json)", g, d, step))
    toolkit = {"hifigan": ("hifigan_v1 (toolkit hifigan.v1.yaml, train.recipe: pwg)", ta.test_toolkit_hifigan_v1),
               "melgan": ("melgan (toolkit melgan.v1.yaml)", ta.test_toolkit_melgan_v1_generator_and_melgan_discriminator),
               "multiband_melgan": ("multiband_melgan (toolkit multi_band_melgan.v2.yaml)",
                                    ta.test_toolkit_multiband_melgan_v2),
               "parallel_wavegan": ("parallel_wavegan (toolkit parallel_wavegan.v1.yaml)",
                                    ta.test_toolkit_parallel_wavegan_v1)}
    for name, (label, test) in toolkit.items():
        g, d = architecture(test, clip)
        steps = [rs.toolkit_step(corpus, out / f"{name}{a}", WAVS, name, a)
                 for a in ((True,) if name == "hifigan" else (False, True))]
        worst = max(steps, key=lambda c: (c.worst_loss_rel, c.worst_weight_rel))
        worst.worst_loss_rel_all = max(c.worst_loss_rel for c in steps)  # type: ignore[attr-defined]
        worst.worst_weight_rel_all = max(c.worst_weight_rel for c in steps)  # type: ignore[attr-defined]
        rows.append((label, g, d, worst))
    print("| variant (reference config) | generator max abs diff | discriminator max abs diff "
          "| worst loss-term rel. diff (one step) | worst weight diff after one step (rel.) |")
    print("|---|---|---|---|---|")
    for label, g, d, step in rows:
        if step is None:
            loss = weight = "(same train.py as V1)"
        else:
            loss = f"{getattr(step, 'worst_loss_rel_all', step.worst_loss_rel):.1e}"
            weight = f"{getattr(step, 'worst_weight_rel_all', step.worst_weight_rel):.1e}"
        print(f"| {label} | {g:.1e} | {d:.1e} | {loss} | {weight} |")


if __name__ == "__main__":
    main()
