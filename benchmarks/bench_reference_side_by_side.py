"""Side by side on real speech (issue 10, item 7): HiFi-GAN V1 at reduced width, trained N CPU
steps by our :class:`~ganpipe.training.trainer.Trainer` and by jik876's ``train.py`` loop built
from the oracle package (``hifi-gan==0.0.2``: its ``Generator``, ``MultiPeriodDiscriminator``,
``MultiScaleDiscriminator``, ``feature_loss``, ``generator_loss``, ``discriminator_loss``, its
``meldataset.mel_spectrogram`` with ``fmax_for_loss: null``, AdamW(lr, (b1, b2)) and
ExponentialLR(lr_decay) stepped after every epoch, D updated before G) — from the same initial
weights (the reference's, mapped into ours by ``ganpipe.models.reference_weights``) on the same
batches (each batch our Trainer's loader yields goes to both; the reference's schedulers step when
our loader starts a new epoch, as jik876's do at the end of one).

Recorded: the validation mel L1 of both generators on the same held-out clips with the same mel
(the Trainer's ``validate``: copy synthesis of the first 4 validation clips, up to 4 s, feature mel)
every ``--validate-every`` steps, and each side's seconds per step, CPU time
(``time.process_time``) and wall time, measured in one process with the two steps interleaved
(the order alternates every step) so machine load affects both alike. Data loading and
validation are not timed (both sides get the same ready batches). ``--control`` adds a second
reference loop whose starting weights differ by a relative 1e-7 (float32 rounding size): how far
rounding alone carries two runs of the *same* code apart over N adversarial steps, the yardstick
for the ours-vs-reference gap.

Corpus: 24 clips of ../shared/data/ljspeech-mini (20 train / 4 valid) through the real features
stage, in a temporary folder. Needs the oracle packages (scripts/test.sh installs them).

    python benchmarks/bench_reference_side_by_side.py --steps 60 --width 128   # prints a Markdown table
"""

from __future__ import annotations

import argparse
import itertools
import platform
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ganpipe.models import reference_weights as rw  # noqa: E402
from ganpipe.training.trainer import Trainer  # noqa: E402
from tests.support import oracles  # noqa: E402
from tests.support import reference_step as rs  # noqa: E402
from tests.support.training_data import build_lj  # noqa: E402

WAVS = sorted((REPO.parent / "shared" / "data" / "ljspeech-mini" / "LJSpeech-1.1" / "wavs").glob("LJ*.wav"))


class Jik876Loop:
    """jik876/hifi-gan train.py's iteration, as written there, on a given (mel, wave segment) batch."""

    def __init__(self, h: Any, generator: Any, mpd: Any, msd: Any) -> None:
        self.m = oracles.hifigan_models()
        self.h, self.generator, self.mpd, self.msd = h, generator, mpd, msd
        self.optim_g = torch.optim.AdamW(generator.parameters(), h.learning_rate, betas=[h.adam_b1, h.adam_b2])
        self.optim_d = torch.optim.AdamW(itertools.chain(msd.parameters(), mpd.parameters()), h.learning_rate,
                                         betas=[h.adam_b1, h.adam_b2])
        self.scheduler_g = torch.optim.lr_scheduler.ExponentialLR(self.optim_g, gamma=h.lr_decay)
        self.scheduler_d = torch.optim.lr_scheduler.ExponentialLR(self.optim_d, gamma=h.lr_decay)
        self.mel_spectrogram = oracles.jik876_mel_spectrogram()
        for net in (generator, mpd, msd):
            net.train()

    def loss_mel(self, w: torch.Tensor) -> torch.Tensor:
        h = self.h
        return self.mel_spectrogram(w, h.n_fft, h.num_mels, h.sampling_rate, h.hop_size, h.win_size, h.fmin,
                                    h.fmax_for_loss)

    def end_of_epoch(self) -> None:
        self.scheduler_g.step()
        self.scheduler_d.step()

    def step(self, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        ref = rs.jik876_iteration(self.m, self.generator, self.mpd, self.msd, self.optim_g, self.optim_d,
                                  self.loss_mel, x, y)
        return {"d_loss": ref["d_loss"], "g_loss": ref["g_loss"], "mel": ref["mel_x45"] / 45}


@torch.no_grad()
def val_mel_l1(t: Trainer, generator: Callable[[torch.Tensor], torch.Tensor], max_items: int = 4,
               max_seconds: float = 4.0) -> float:
    """The Trainer's validation metric (``Trainer.validate``) for any generator: copy synthesis of the
    first ``max_items`` validation clips (up to ``max_seconds``), L1 between feature mels."""
    corpus, hop, sr = t.valid_corpus, t.mel_config.hop_length, t.mel_config.sample_rate
    assert t.mel_config.normalize != "meanvar", "this benchmark feeds the feature mel as it is"
    errs = []
    for i in range(min(max_items, len(corpus))):
        wav, _ = sf.read(corpus.wavs[i], dtype="float32")
        n = min(len(wav), int(max_seconds * sr)) // hop * hop
        wav_t = torch.from_numpy(np.pad(wav, (0, max(0, n - len(wav))))[:n])
        ref = t.mel_fn(wav_t)
        gen = generator(ref.unsqueeze(0)).float()[0, 0, :n]
        errs.append(torch.mean(torch.abs(t.mel_fn(gen) - ref)).item())
    return float(np.mean(errs))


def _eval(net: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    def run(mel: torch.Tensor) -> torch.Tensor:
        net.eval()
        try:
            return net(mel)
        finally:
            net.train()
    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--width", type=int, default=128, help="upsample_initial_channel of both generators")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--segment", type=int, default=8192)
    ap.add_argument("--validate-every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--control", action="store_true",
                    help="also train a second reference loop from the same weights times (1 + 1e-7 noise): "
                         "how far float32 rounding alone moves the curve (not timed)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if len(WAVS) < 24:
        sys.exit(f"need 24 LJSpeech clips in ../shared/data/ljspeech-mini, found {len(WAVS)}")
    try:
        import hifi_gan.models  # noqa: F401
    except ImportError:
        sys.exit("hifi-gan==0.0.2 is not installed (scripts/test.sh installs the oracles)")

    class _Tmp:
        def mktemp(self, name: str) -> Path:
            return Path(tempfile.mkdtemp(prefix=name))

    corpus = build_lj(_Tmp(), WAVS)
    out = Path(tempfile.mkdtemp(prefix="side_by_side"))
    t = rs.trainer(corpus, out, "hifigan_v1", {"upsample_initial_channel": args.width},
                   {"steps": args.steps, "batch_size": args.batch, "segment_samples": args.segment,
                    "threads": args.threads, "seed": args.seed})
    torch.set_num_threads(args.threads)
    m = oracles.hifigan_models()
    h = oracles.jik876_config("hifigan_v1")
    h["upsample_initial_channel"] = args.width
    torch.manual_seed(args.seed)
    generator, mpd, msd = m.Generator(h), m.MultiPeriodDiscriminator(), m.MultiScaleDiscriminator()
    t.G.load_state_dict(rw.from_jik876_generator(generator.state_dict(), t.G))
    t.D.parts.load_state_dict(rw.from_jik876_discriminators(mpd.state_dict(), msd.state_dict(), t.D.parts))
    ref = Jik876Loop(h, generator, mpd, msd)
    control = None
    if args.control:
        # rebuilt and loaded, not deep-copied (old-style weight_norm modules refuse deepcopy)
        nets = [m.Generator(h), m.MultiPeriodDiscriminator(), m.MultiScaleDiscriminator()]
        for net, src in zip(nets, (generator, mpd, msd)):
            net.load_state_dict(src.state_dict())
        g = torch.Generator().manual_seed(args.seed + 1)
        with torch.no_grad():
            for net in nets:
                for w in net.parameters():
                    w.mul_(1 + 1e-7 * torch.randn(w.shape, generator=g))
        control = Jik876Loop(h, *nets)
    r = t.recipe
    assert (r.optimizer, r.adam_betas, r.lr_generator, r.lr_gamma, r.update_order, r.mel_loss_fmax) == (
        "adamw", (h.adam_b1, h.adam_b2), h.learning_rate, h.lr_decay, "d_first", h.fmax_for_loss), r

    def validation(step: int) -> tuple[float, ...]:
        row = (step, val_mel_l1(t, _eval(t.G)), val_mel_l1(t, _eval(generator)))
        return row + (val_mel_l1(t, _eval(control.generator)),) if control else row

    curve = [validation(0)]
    assert abs(curve[0][1] - t.validate()["val_mel_l1"]) < 1e-6  # the same metric as Trainer.validate
    cpu = {"ours": [], "reference": []}
    wall = {"ours": [], "reference": []}
    last: dict[str, dict[str, float]] = {}
    batches = t.batches()
    epoch = t.epoch
    for step in range(args.steps):
        batch = next(batches)  # our loader: our schedulers step at a new epoch, the reference's here
        if t.epoch != epoch:
            ref.end_of_epoch()
            if control:
                control.end_of_epoch()
            epoch = t.epoch
        x, y = batch["mel"], batch["wav"]

        def ours() -> None:
            logs = t.vocoder_step(batch)  # what Trainer.run calls per step
            assert "nonfinite" not in logs, logs
            t.ema_update()
            t.step += 1
            last["ours"] = {"d_loss": float(logs["d_loss"]), "g_loss": float(logs["g_loss"]),
                            "mel": float(logs["g_mel_l1"])}

        def reference() -> None:
            last["reference"] = ref.step(x, y)

        for name, fn in ((("ours", ours), ("reference", reference)) if step % 2 == 0
                         else (("reference", reference), ("ours", ours))):
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
        if control:
            control.step(x, y)
        if (step + 1) % args.validate_every == 0 or step + 1 == args.steps:
            curve.append(validation(step + 1))
            print(f"step {step + 1}: val mel L1 ours {curve[-1][1]:.5f} reference {curve[-1][2]:.5f}; "
                  f"train g_loss ours {last['ours']['g_loss']:.5f} reference {last['reference']['g_loss']:.5f}",
                  file=sys.stderr, flush=True)

    g_rel, _ = rs.weight_diff(t.G.state_dict(), rw.from_jik876_generator(generator.state_dict(), t.G),
                              h.learning_rate)
    timed = slice(1, None)  # the first step of each (allocations, first-call overheads) is left out

    def med(xs: list[float]) -> float:
        return statistics.median(xs[timed])

    print(f"\nMachine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
          f"torch {torch.__version__}; HiFi-GAN V1 upsample_initial_channel {args.width} (jik876 MPD + MSD "
          f"full size), batch {args.batch} x {args.segment} samples, {args.steps} steps, seed {args.seed}\n")
    extra = " val mel L1, reference from weights x (1 + 1e-7 noise) | |Δ| reference vs that |" if control else ""
    print(f"| step | val mel L1, ours (Trainer) | val mel L1, reference (jik876 loop) | |Δ| ours vs reference |"
          f"{extra}")
    print("|---:|---:|---:|---:|" + ("---:|---:|" if control else ""))
    for s, a, b, *c in curve:
        more = f" {c[0]:.5f} | {abs(b - c[0]):.1e} |" if c else ""
        print(f"| {s} | {a:.5f} | {b:.5f} | {abs(a - b):.1e} |{more}")
    print(f"\nGenerator weights after {args.steps} steps: largest difference {g_rel:.1e} of the tensor's "
          f"largest weight.\n")
    print("| seconds per step (median, step 1 excluded) | ours | reference | ours / reference |")
    print("|---|---:|---:|---:|")
    for label, d in (("CPU time (process_time)", cpu), ("wall time", wall)):
        a, b = med(d["ours"]), med(d["reference"])
        print(f"| {label} | {a:.3f} | {b:.3f} | {a / b:.3f} |")
    tot_o, tot_r = sum(cpu["ours"][timed]), sum(cpu["reference"][timed])
    print(f"| CPU time, total of steps 2-{args.steps} | {tot_o:.1f} | {tot_r:.1f} | {tot_o / tot_r:.3f} |")


if __name__ == "__main__":
    main()
