"""CPU inference of Vocos vs HiFi-GAN V1 / V3, ours and the reference code's, in one run (issue 14).

Paths, all on the same 5 s LJSpeech mel (80 bands, the project mel; 2 threads by default):
``vocos ours`` (ganpipe.serving.backends.prepare_for_inference: ONNX Runtime, checked against torch),
``vocos ours torch`` (the weight-norm-free module under inference_mode), ``vocos reference``
(vocos==0.1.0 ``VocosBackbone`` + ``ISTFTHead(padding="same")`` at vocos.yaml's sizes, input 80
bands, the same mapped weights: its waveform is compared with ours), and for HiFi-GAN V1 and V3
``ours`` (the fast path) and ``jik876`` (hifi-gan==0.0.2's Generator, weight norm removed, eval,
no_grad: jik876's inference.py). Calls alternate round-robin (bench_inference.alternate); printed:
best and median seconds, x real time (audio seconds / best wall seconds), each path's speed over
jik876's HiFi-GAN V1 and the machine load. Weights are random (the architecture fixes the cost).

    .venv/bin/python benchmarks/bench_vocos_inference.py [--seconds 5] [--threads 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inference import CpuLoad, alternate, describe_load, load_mel, machine_info

from ganpipe.models import build
from ganpipe.models import reference_weights as rw
from ganpipe.serving.backends import prepare_for_inference, reference_module

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=REFERENCE.parent / "data" / "ljspeech-mini" / "LJSpeech-1.1")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")
    import yaml
    from hifi_gan.models import Generator as Jik876Generator
    from vocos.heads import ISTFTHead
    from vocos.models import VocosBackbone

    mel, clip, config = load_mel(args.data, args.seconds, None)
    seconds = mel.shape[-1] * config.hop_length / config.sample_rate
    fns = {}

    # Vocos: the reference package at vocos.yaml's sizes (80 input bands, 'same' padding), ours mapped from it
    y = yaml.safe_load((REFERENCE / "vocos" / "vocos.yaml").read_text())["model"]["init_args"]
    b = dict(y["backbone"]["init_args"], input_channels=config.n_mels)
    backbone, head = VocosBackbone(**b), ISTFTHead(**dict(y["head"]["init_args"], padding="same"))
    backbone.eval(), head.eval()
    ours = build("vocos", n_mels=config.n_mels, sample_rate=config.sample_rate, dim=b["dim"],
                 intermediate_dim=b["intermediate_dim"], num_layers=b["num_layers"]).generator
    state = {**{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
             **{f"head.{k}": v for k, v in head.state_dict().items()}}
    ours.load_state_dict(rw.from_vocos_generator(state, ours))
    fast = prepare_for_inference(ours, threads=args.threads)
    plain = reference_module(ours)

    def vocos_ref() -> torch.Tensor:
        with torch.no_grad():
            return head(backbone(mel))

    def vocos_torch() -> torch.Tensor:
        with torch.inference_mode():
            return plain(mel)

    fns["vocos ours"] = lambda: fast(mel)
    fns["vocos ours torch"] = vocos_torch
    fns["vocos reference"] = vocos_ref

    from tests.support.oracles import AttrDict

    for variant, name in (("hifigan_v1", "config_v1.json"), ("hifigan_v3", "config_v3.json")):
        h = AttrDict(json.loads((REFERENCE / "hifi-gan" / name).read_text()))
        jik = Jik876Generator(h)
        jik.remove_weight_norm()
        jik.eval()
        g = build(variant).generator
        fast_h = prepare_for_inference(g, threads=args.threads)

        def run_jik(jik=jik) -> torch.Tensor:
            with torch.no_grad():
                return jik(mel)

        fns[f"{variant} ours"] = lambda f=fast_h: f(mel)
        fns[f"{variant} jik876"] = run_jik

    for fn in fns.values():  # warm-up
        fn()
    load = CpuLoad()
    times, _ = alternate(fns, args.repeats, torch.device("cpu"))
    summary = load.summary()
    diff = float((fns["vocos ours"]()[:, 0] - vocos_ref()).abs().max())
    base = min(times["hifigan_v1 jik876"])
    rows = {}
    print(f"{clip}: {seconds:.2f} s of audio ({mel.shape[-1]} frames), {args.threads} threads, "
          f"{args.repeats} rounds; {describe_load(summary)}")
    print(f"{'path':22s} {'best s':>8s} {'median s':>9s} {'x real time':>12s} {'vs jik876 V1':>13s}")
    for name, ts in times.items():
        best = min(ts)
        rows[name] = {"best_s": best, "median_s": statistics.median(ts), "rtf": seconds / best,
                      "speedup_vs_jik876_v1": base / best}
        print(f"{name:22s} {best:8.3f} {statistics.median(ts):9.3f} {seconds / best:12.1f} {base / best:13.1f}")
    print(f"vocos ours / vocos reference: {min(times['vocos reference']) / min(times['vocos ours']):.2f}x; "
          f"max |ours - reference| waveform: {diff:.2g}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_info(torch.device('cpu')), "load": summary,
                                         "rows": rows, "max_abs_diff_vocos": diff}, indent=2))


if __name__ == "__main__":
    main()
