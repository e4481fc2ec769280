"""Objective evaluation of a trained generator.

Vocoders (copy-synthesis): for every utterance of the chosen split, the project mel of the real
waveform (with the model's own mel configuration and statistics) goes through the generator and the
output is scored against the original with :func:`ganpipe.metrics.score_pair` (MCD, MR-STFT,
log-mel L1, PESQ, F0 RMSE, V/UV F1). Synthesis time gives the real-time factor (audio seconds per
second of synthesis, on the evaluation device).

Baseline (vocoders, ``evaluation.griffin_lim_iterations`` > 0): the same mel of each utterance also
goes through Griffin-Lim (:mod:`ganpipe.griffin_lim`) and is scored against the same reference; the
means are reported beside the model's under ``griffin_lim`` (a vocoder worth its training beats them).

Unconditional variants (no reference pairs): generated clips are compared with the split's real
clips as distributions, in a fixed embedding that needs no download: the per-clip mean and standard
deviation of each log-mel bin (2 x n_mels numbers, the project mel at the model's sample rate).

* ``frechet_mel``: Fréchet distance between Gaussians fitted to the two sets of embeddings (the FID
  formula on this embedding). 0 = same mean and covariance; larger = further apart. Comparable only
  between runs with the same mel, sample rate and number of clips.
* ``ndb``: number of statistically different bins (Richardson & Weiss 2018): the real embeddings are
  clustered into ``ndb_bins`` k-means bins; a bin whose share of generated clips differs from its
  share of real clips (two-proportion z-test, p < 0.05) counts. ``ndb / ndb_bins`` near 0 = the
  generator covers the real modes in the right proportions; near 1 = mode collapse or drift.

Bad pairs (NaN/inf, silent, length mismatch beyond one hop, wrong rate) are skipped and reported with
the reason; they never stop the evaluation half-way.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import linalg

from ganpipe.audio import AudioError, read_audio
from ganpipe.generator_io import LoadedGenerator
from ganpipe.manifest import MANIFEST_FILE, read_manifest
from ganpipe.mel import MelConfig, MelSpectrogram
from ganpipe.metrics import HIGHER_IS_BETTER, METRIC_KEYS, MetricInputError, score_pair


@dataclass
class EvalResult:
    summary: dict[str, Any]
    per_item: pd.DataFrame
    skipped: list[dict[str, str]] = field(default_factory=list)
    samples: list[tuple[str, np.ndarray, np.ndarray | None]] = field(default_factory=list)
    baseline_samples: dict[str, np.ndarray] = field(default_factory=dict)  # utt -> Griffin-Lim wav


# ------------------------------------------------------------------------------------------------
# vocoders
class CopySynthesizer:
    """mel(real waveform) -> generator -> waveform, with the model's mel config and statistics."""

    def __init__(self, loaded: LoadedGenerator, device: str | torch.device = "cpu"):
        self.loaded = loaded
        self.device = torch.device(device)
        self.mel = MelSpectrogram(loaded.mel_config, loaded.mel_stats).to(self.device)
        self.generator = loaded.generator.to(self.device).eval()
        self.min_frames = loaded.bundle.min_frames or 1

    @torch.inference_mode()
    def mel_input(self, wav: np.ndarray) -> torch.Tensor:
        """The generator's input for ``wav``: ``(n_mels, frames)`` (padded to the minimum length)."""
        hop = self.loaded.mel_config.hop_length
        x = torch.from_numpy(np.ascontiguousarray(wav, dtype=np.float32)).to(self.device)
        if x.shape[0] < self.min_frames * hop:
            x = torch.nn.functional.pad(x, (0, self.min_frames * hop - x.shape[0]))
        return self.mel(x)

    @torch.inference_mode()
    def __call__(self, wav: np.ndarray, speaker: int | None = None, mel: torch.Tensor | None = None) -> np.ndarray:
        mel = self.mel_input(wav) if mel is None else mel
        kw = {"speaker": torch.tensor([speaker], device=self.device)} if speaker is not None else {}
        out = self.generator(mel.unsqueeze(0), **kw)[0, 0].float().cpu().numpy()
        return out[: len(wav)]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _means(per_item: pd.DataFrame, prefix: str = "") -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for key in METRIC_KEYS:
        vals = per_item[prefix + key].to_numpy(dtype=float) if len(per_item) else np.array([])
        finite = vals[np.isfinite(vals)]
        out[key] = round(float(finite.mean()), 6) if len(finite) else None
    return out


def split_rows(prepared: str | Path, split: str, max_utterances: int | None = None) -> pd.DataFrame:
    """The manifest rows of the prepared corpus' ``split`` (the first ``max_utterances``): what the
    evaluate stage scores. ``ValueError`` when the split has none (a ``ManifestError``, also a
    ``ValueError``, when the manifest is missing or lacks a column)."""
    rows = read_manifest(Path(prepared) / MANIFEST_FILE, required=("utt_id", "speaker", "path", "split"))
    rows = rows[rows["split"] == split]
    if max_utterances:
        rows = rows.head(max_utterances)
    if rows.empty:
        raise ValueError(f"evaluation.split '{split}' has no utterances in {prepared}/manifest.csv")
    return rows


def split_items(prepared: str | Path, split: str, max_utterances: int | None = None) -> list[tuple[str, str, str]]:
    """``(utt_id, wav path, speaker)`` of :func:`split_rows`: the items of :func:`evaluate_vocoder`."""
    rows = split_rows(prepared, split, max_utterances)
    return [(r.utt_id, str(Path(prepared) / r.path), r.speaker) for r in rows.itertuples()]


def folder_items(folder: str | Path) -> list[tuple[str, str, str]]:
    """``(file stem, wav path, "")`` of every ``*.wav`` in ``folder`` (reference audio to score
    copy-synthesis on); ``FileNotFoundError`` when there is none."""
    folder = Path(folder)
    paths = sorted(p for p in folder.glob("*.wav") if not p.name.startswith(".")) if folder.is_dir() else []
    if not paths:
        raise FileNotFoundError(f"no .wav files in {folder}" if folder.is_dir() else f"folder not found: {folder}")
    return [(p.stem, str(p), "") for p in paths]


def evaluate_vocoder(loaded: LoadedGenerator, items: list[tuple[str, str, str]], device: str = "cpu",
                     keep_samples: int = 4, griffin_lim_iterations: int = 0) -> EvalResult:
    """``items``: (utt_id, wav path, speaker name). Scores copy-synthesis of each utterance and, with
    ``griffin_lim_iterations`` > 0, Griffin-Lim from the same mel (``summary["griffin_lim"]``,
    per-item columns ``griffin_lim_<metric>``)."""
    from ganpipe.griffin_lim import GriffinLimVocoder

    synth = CopySynthesizer(loaded, device)
    baseline = GriffinLimVocoder(loaded.mel_config, loaded.mel_stats, griffin_lim_iterations) \
        if griffin_lim_iterations > 0 else None
    baseline_samples: dict[str, np.ndarray] = {}
    sr = loaded.mel_config.sample_rate
    metric_mel = MelSpectrogram(MelConfig.from_dict({**loaded.mel_config.to_dict(), "normalize": "none"}))
    label_of = {n: i for i, n in enumerate(loaded.label_names)}
    labels = label_of if loaded.bundle.conditioning != "none" else None
    rows, skipped, samples = [], [], []
    synth_seconds, audio_seconds = 0.0, 0.0
    for utt, path, speaker in items:
        ref, reason = _reference(path, speaker, sr, labels)
        if ref is None:
            skipped.append({"utt_id": utt, "path": path, "reason": reason})
            continue
        t0 = time.perf_counter()
        mel = synth.mel_input(ref)
        gen = synth(ref, labels.get(speaker) if labels is not None else None, mel=mel)
        _sync(synth.device)
        synth_seconds += time.perf_counter() - t0
        audio_seconds += len(ref) / sr
        gen = as_pcm16(gen, sr)  # scored as written (samples, `synthesize -o`): --ref/--gen scores the same
        try:
            scores, gl = _score_copy(ref, gen, mel, sr, metric_mel, baseline, utt)
        except MetricInputError as exc:
            skipped.append({"utt_id": utt, "path": path, "reason": str(exc)})
            continue
        rows.append({"utt_id": utt, "speaker": speaker, "seconds": round(len(ref) / sr, 4), **scores})
        if len(samples) < keep_samples:
            samples.append((utt, gen, ref))
            if gl is not None:
                baseline_samples[utt] = gl
    per_item, summary = _vocoder_summary(rows, len(skipped), audio_seconds, synth_seconds, synth.device,
                                         griffin_lim_iterations if baseline is not None else 0)
    return EvalResult(summary, per_item, skipped, samples, baseline_samples)


def _reference(path: str, speaker: str, sr: int,
               labels: dict[str, int] | None) -> tuple[np.ndarray | None, str]:
    """``(reference audio, "")``, or ``(None, why it cannot be scored)``: unreadable, another sample
    rate, or (``labels``: a conditional model's speakers) a speaker the model does not know."""
    try:
        ref, file_sr = read_audio(path)
    except AudioError as exc:
        return None, exc.reason
    if file_sr != sr:
        return None, f"sample rate {file_sr} Hz, model expects {sr} Hz"
    if labels is not None and speaker not in labels:
        return None, f"speaker {speaker!r} unknown to the model"
    return ref, ""


def _score_copy(ref: np.ndarray, gen: np.ndarray, mel: torch.Tensor, sr: int, metric_mel: MelSpectrogram,
                baseline: Any, utt: str) -> tuple[dict[str, float], np.ndarray | None]:
    """The metrics of ``gen`` and, with a ``baseline`` vocoder, ``griffin_lim_<metric>`` of its
    waveform from the same mel against the same reference (returned with the scores)."""
    scores = score_pair(ref, gen, sr, metric_mel, utt=utt)
    if baseline is None:
        return scores, None
    gl = baseline(mel)[: len(ref)]
    scores.update({f"griffin_lim_{k}": v for k, v in score_pair(ref, gl, sr, metric_mel, utt=utt).items()})
    return scores, gl


def _vocoder_summary(rows: list[dict[str, Any]], skipped: int, audio_seconds: float, synth_seconds: float,
                     device: torch.device, griffin_lim_iterations: int) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The per-utterance table and the summary of :func:`evaluate_vocoder` (Griffin-Lim's where
    ``griffin_lim_iterations`` > 0)."""
    columns = [*METRIC_KEYS, *([f"griffin_lim_{k}" for k in METRIC_KEYS] if griffin_lim_iterations else [])]
    per_item = pd.DataFrame(rows, columns=["utt_id", "speaker", "seconds", *columns])
    summary: dict[str, Any] = {"kind": "vocoder", "utterances": len(rows), "skipped": skipped}
    summary.update(_means(per_item))
    summary["rtf"] = round(audio_seconds / synth_seconds, 3) if synth_seconds > 0 else None
    summary["device"] = str(device)
    if griffin_lim_iterations:
        summary["griffin_lim"] = {"iterations": griffin_lim_iterations, **_means(per_item, "griffin_lim_")}
    return per_item, summary


# ------------------------------------------------------------------------------------------------
# unconditional
def mel_embedding(clips: np.ndarray, config: MelConfig) -> np.ndarray:
    """``(N, T)`` clips -> ``(N, 2 * n_mels)``: per-bin mean and std of the project log-mel."""
    mel = MelSpectrogram(config)
    with torch.inference_mode():
        m = mel(torch.from_numpy(clips.astype(np.float32)))  # (N, n_mels, frames)
    return torch.cat([m.mean(dim=-1), m.std(dim=-1)], dim=-1).numpy().astype(np.float64)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance of two ``(N, D)`` embedding sets; each needs >= 2 rows (a covariance)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"the Frechet distance needs at least 2 clips on each side (got {len(a)} and {len(b)})")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(covmean).all():
        eps = np.eye(len(cov_a)) * 1e-6
        covmean = linalg.sqrtm((cov_a + eps) @ (cov_b + eps))
    covmean = np.real(covmean)
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))


def ndb(real: np.ndarray, gen: np.ndarray, bins: int, seed: int = 0) -> int:
    """Number of k-means bins (fitted on ``real``) whose generated share differs (z-test, p<0.05)."""
    from scipy.cluster.vq import kmeans2
    from scipy.stats import norm

    scale = real.std(axis=0) + 1e-8
    r, g = real / scale, gen / scale
    k = min(bins, len(r))
    centroids, labels_r = kmeans2(r, k, minit="++", seed=seed)
    labels_g = np.argmin(((g[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    n_r, n_g = len(r), len(g)
    different = 0
    for b in range(k):
        p_r, p_g = np.mean(labels_r == b), np.mean(labels_g == b)
        p = (p_r * n_r + p_g * n_g) / (n_r + n_g)
        se = np.sqrt(p * (1 - p) * (1 / n_r + 1 / n_g))
        if se > 0 and 2 * (1 - norm.cdf(abs(p_r - p_g) / se)) < 0.05:
            different += 1
    return different


def evaluate_unconditional(loaded: LoadedGenerator, real_clips: np.ndarray, n_generated: int, bins: int,
                           device: str = "cpu", keep_samples: int = 4, seed: int = 0) -> EvalResult:
    """``real_clips``: ``(N, T)`` at the model's sample rate, T = the generator's clip length."""
    if len(real_clips) < 2 or n_generated < 2:
        raise ValueError(f"unconditional evaluation needs at least 2 real and 2 generated clips (got "
                         f"{len(real_clips)} real: enlarge evaluation.split / evaluation.max_utterances; "
                         f"{n_generated} generated: evaluation.generated_clips)")
    gen_module = loaded.generator.to(device).eval()
    torch.manual_seed(seed)
    out = []
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, n_generated, 16):
            n = min(16, n_generated - start)
            z = gen_module.sample_latent(n, device=device)
            kw = {}
            if loaded.bundle.conditioning != "none":
                kw["labels"] = torch.arange(start, start + n, device=device) % max(1, len(loaded.label_names))
            x = gen_module(z, **kw)
            x = loaded.bundle.description.to_audio(gen_module, x)
            out.append(x[:, 0].float().cpu().numpy())
    seconds = time.perf_counter() - t0
    gen = np.concatenate(out)
    sr = loaded.bundle.sample_rate
    config = MelConfig(sample_rate=sr, fmax=min(8000.0, sr / 2))
    real_emb, gen_emb = mel_embedding(real_clips, config), mel_embedding(gen, config)
    summary = {
        "kind": "unconditional", "real_clips": len(real_clips), "generated_clips": len(gen),
        "frechet_mel": round(frechet_distance(real_emb, gen_emb), 4),
        "ndb": ndb(real_emb, gen_emb, bins, seed), "ndb_bins": min(bins, len(real_clips)),
        "rtf": round(len(gen) * gen.shape[1] / sr / seconds, 3) if seconds > 0 else None,
        "device": str(device),
    }
    summary["ndb_fraction"] = round(summary["ndb"] / summary["ndb_bins"], 4)
    per_item = pd.DataFrame({"clip": [f"generated_{i:03d}" for i in range(len(gen))],
                             "rms_db": 20 * np.log10(np.sqrt(np.mean(gen ** 2, axis=1)) + 1e-12)})
    samples = [(f"generated_{i:03d}", gen[i], None) for i in range(min(keep_samples, len(gen)))]
    return EvalResult(summary, per_item, [], samples)


# ------------------------------------------------------------------------------------------------
# two folders of wavs
class NoPairsError(ValueError):
    """Folder mode found nothing to score (no common file names, or every pair was unusable)."""


def score_folders(ref_dir: str | Path, gen_dir: str | Path) -> dict[str, Any]:
    """Score every ``gen_dir`` wav against the ``ref_dir`` wav of the same name.

    Returns ``{"means": {...}, "per_utterance": {name: {...}}, "skipped": [{file, reason}], ...}``.
    Unmatched files, unreadable audio, different sample rates and unusable signals are skipped
    with their reason; when no pair is left, :class:`NoPairsError` names both folders.
    """
    ref_dir, gen_dir = Path(ref_dir), Path(gen_dir)
    for d in (ref_dir, gen_dir):
        if not d.is_dir():
            raise FileNotFoundError(f"folder not found: {d}")
    refs = {p.name: p for p in sorted(ref_dir.glob("*.wav")) if not p.name.startswith(".")}
    gens = {p.name: p for p in sorted(gen_dir.glob("*.wav")) if not p.name.startswith(".")}
    skipped = [{"file": str(gen_dir / n), "reason": "no reference with this name"}
               for n in sorted(set(gens) - set(refs))]
    skipped += [{"file": str(ref_dir / n), "reason": "no generated file with this name"}
                for n in sorted(set(refs) - set(gens))]
    per: dict[str, dict[str, float]] = {}
    mels: dict[int, MelSpectrogram] = {}
    for name in sorted(set(refs) & set(gens)):
        try:
            ref, sr_r = read_audio(refs[name])
            gen, sr_g = read_audio(gens[name])
        except AudioError as exc:
            skipped.append({"file": exc.path, "reason": exc.reason})
            continue
        if sr_r != sr_g:
            skipped.append({"file": name, "reason": f"sample rates differ: ref {sr_r} Hz, gen {sr_g} Hz"})
            continue
        if sr_r not in mels:
            mels[sr_r] = MelSpectrogram(MelConfig(sample_rate=sr_r, fmax=min(8000.0, sr_r / 2)))
        try:
            per[name] = score_pair(ref, gen, sr_r, mels[sr_r], utt=name)
        except MetricInputError as exc:
            skipped.append({"file": name, "reason": str(exc)})
    if not per:
        reasons = "; ".join(f"{Path(s['file']).name}: {s['reason']}" for s in skipped[:5])
        raise NoPairsError(
            f"no scorable pairs of wavs between --ref {ref_dir} ({len(refs)} wav) and --gen {gen_dir} "
            f"({len(gens)} wav): files are matched by name"
            + (f"; skipped {len(skipped)}: {reasons}" + (" ..." if len(skipped) > 5 else "") if skipped else ""))
    means: dict[str, float | None] = {}
    for key in METRIC_KEYS:
        vals = np.array([v[key] for v in per.values()], dtype=float)
        vals = vals[np.isfinite(vals)]
        means[key] = round(float(vals.mean()), 6) if len(vals) else None
    return {"means": means, "per_utterance": per, "skipped": skipped, "pairs": len(per),
            "higher_is_better": HIGHER_IS_BETTER, "ref_dir": str(ref_dir), "gen_dir": str(gen_dir)}


def as_pcm16(wav: np.ndarray, sr: int) -> np.ndarray:
    """``wav`` as a 16-bit PCM WAV file holds it (clipped, quantised, read back as float): what every
    written output is, so the in-memory scores equal those of the written files (``evaluate --ref/--gen``)."""
    import io

    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, np.clip(np.asarray(wav, dtype=np.float64), -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
    buf.seek(0)
    return sf.read(buf, dtype="float32")[0]


def write_wav(path: Path, wav: np.ndarray, sr: int) -> None:
    from ganpipe.audio import write_audio

    write_audio(path, np.clip(wav, -1, 1), sr, "pcm16")


def read_clip(path: str, length: int, sr: int) -> np.ndarray:
    """The centre ``length`` samples of a file at ``sr`` (zero-padded when shorter)."""
    from ganpipe.audio import resample

    wav, file_sr = read_audio(path)
    wav = resample(wav, file_sr, sr)
    if len(wav) >= length:
        s = (len(wav) - length) // 2
        return wav[s:s + length]
    return np.pad(wav, (0, length - len(wav)))


