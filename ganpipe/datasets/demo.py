"""The embedded default corpus: synthetic, speech-like audio made on the spot (no download).

What it is
    A few "speakers", each with a handful of utterances of 1.5-4 s (see :class:`DemoParams`). Every
    utterance is built from a source-filter model of the voice:

    * a glottal source: Rosenberg-style flow pulses (differentiated for lip radiation) driven by a
      smooth pitch contour -- phrase declination, random pitch accents, slow drift and a little
      jitter -- plus breathy aspiration noise that is strongest in the open phase of each cycle;
    * a cascade of 3-5 time-varying formant resonators that glide between vowel targets; the
      targets are scaled per speaker (vocal-tract length), so speakers differ in timbre as well as
      in mean F0 (spread over roughly 95-240 Hz);
    * unvoiced fricative-like segments (band-passed noise at different centre frequencies), short
      stop closures, pauses with faint inhalation noise, leading and trailing silence, amplitude
      envelopes with soft onsets and offsets, and a very low noise floor.

What it is not
    Speech. There are no words, the "phones" are not intelligible, and the prosody is a caricature.
    It exists so that the whole pipeline runs offline in seconds (data -> prepare -> features ->
    train -> evaluate -> register), and so that a vocoder has genuine harmonic-plus-noise structure
    to learn. Never use it for quality claims or to compare vocoders with published numbers.

Determinism
    The same :class:`DemoParams` give byte-identical files. Speaker ``i`` draws its voice from
    ``(seed, i)`` and utterance ``j`` of speaker ``i`` draws from ``(seed, i, j)``, so changing
    ``utterances_per_speaker`` leaves the utterances that remain unchanged. (Changing
    ``n_speakers`` changes the speakers' voices: mean F0 is spread over the available speakers.)
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from ganpipe.atomic import write_text
from ganpipe.audio import write_audio
from ganpipe.config import DemoParams

F0_RANGE_HZ = (95.0, 240.0)
_CONTROL_SECONDS = 0.005  # spacing of control points (pitch, formants, filter coefficients)

# Reference formant targets (F1, F2, F3 in Hz) of a few vowels for an adult male vocal tract
# (rounded textbook averages); F4/F5 are nearly vowel-independent.
_VOWELS: dict[str, tuple[float, float, float]] = {
    "a": (730.0, 1090.0, 2440.0),
    "i": (270.0, 2290.0, 3010.0),
    "u": (300.0, 870.0, 2240.0),
    "e": (530.0, 1840.0, 2480.0),
    "o": (570.0, 840.0, 2410.0),
    "ae": (660.0, 1720.0, 2410.0),
    "er": (490.0, 1350.0, 1690.0),
}
_F4_F5 = (3400.0, 4300.0)
_BANDWIDTHS = (70.0, 95.0, 140.0, 200.0, 260.0)

# Fricative-like noise bands (low, high) in Hz, and their level relative to the vowels.
_FRICATIVES: dict[str, tuple[float, float, float]] = {
    "s": (4200.0, 9500.0, 0.30),
    "sh": (2000.0, 5500.0, 0.35),
    "f": (1200.0, 8000.0, 0.16),
    "h": (500.0, 3500.0, 0.12),
}

_SPEAKER_DIR = re.compile(r"^spk\d{2}$")
_UTT_FILE = re.compile(r"^spk\d{2}_\d{3,}\.wav$")


@dataclass(frozen=True)
class SpeakerProfile:
    """The voice of one synthetic speaker."""

    name: str
    f0_hz: float  # mean fundamental frequency
    accent_semitones: float  # size of pitch accents
    vtl_scale: float  # formant frequency scale (1.0 = reference adult male vocal tract)
    open_quotient: float  # open phase of the glottal cycle, fraction of the period
    breathiness: float  # aspiration noise relative to the glottal pulses
    syllables_per_second: float


@dataclass(frozen=True)
class Segment:
    """A labelled stretch of a synthesized utterance, in samples ``[start, end)``.

    ``kind``: ``silence`` (only the noise floor), ``breath`` (pause with faint inhalation noise),
    ``voiced`` (vowel), ``unvoiced`` (fricative noise or stop burst), ``closure`` (stop closure).
    """

    kind: str
    start: int
    end: int
    label: str = ""


def _seed_entropy(seed: int) -> int:
    return seed & (2**64 - 1)  # SeedSequence needs a non-negative integer; keeps seeds distinct


def speaker_profiles(params: DemoParams) -> list[SpeakerProfile]:
    """The speakers of the demo corpus: mean F0 spread log-uniformly over :data:`F0_RANGE_HZ`,
    vocal tracts shorter for higher voices, plus per-speaker random details."""
    lo, hi = F0_RANGE_HZ
    profiles: list[SpeakerProfile] = []
    n = params.n_speakers
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence([_seed_entropy(params.seed), i]))
        frac = 0.5 if n == 1 else i / (n - 1)
        jitter = rng.uniform(-0.25, 0.25) / max(n - 1, 1)
        frac_j = float(np.clip(frac + jitter, 0.0, 1.0))
        f0 = lo * (hi / lo) ** frac_j
        profiles.append(SpeakerProfile(
            name=f"spk{i:02d}",
            f0_hz=round(float(f0), 2),
            accent_semitones=round(float(rng.uniform(1.5, 3.5)), 3),
            vtl_scale=round(float(1.0 + 0.22 * frac_j + rng.uniform(-0.03, 0.03)), 4),
            open_quotient=round(float(rng.uniform(0.5, 0.68)), 4),
            breathiness=round(float(rng.uniform(0.03, 0.08) * (1.0 + frac_j)), 4),
            syllables_per_second=round(float(rng.uniform(3.8, 5.5)), 3),
        ))
    return profiles


# --------------------------------------------------------------------------------------------
# utterance layout
# --------------------------------------------------------------------------------------------
@dataclass
class _Syllable:
    vowel: str
    start: float  # seconds, of the vowel
    end: float
    accent: float  # 0 = none, else fraction of the speaker's accent size


def _plan(rng: np.random.Generator, prof: SpeakerProfile, duration: float
          ) -> tuple[list[tuple[str, float, float, str]], list[_Syllable], list[tuple[float, float]]]:
    """Lay out an utterance: ``(kind, start_s, end_s, label)`` segments, vowels and phrase spans."""
    lead = min(rng.uniform(0.08, 0.22), 0.15 * duration)
    tail = min(rng.uniform(0.10, 0.25), 0.15 * duration)
    body = duration - lead - tail
    # Draw events with nominal durations, then stretch them to fill the body exactly.
    events = _events(rng, prof, body)
    scale = body / sum(d for _, d, _ in events)

    segments: list[tuple[str, float, float, str]] = [("silence", 0.0, lead, "lead")]
    syllables: list[_Syllable] = []
    phrases: list[tuple[float, float]] = []
    t = lead
    phrase_start = lead
    for kind, d, label in events:
        d *= scale
        segments.append((kind, t, t + d, label))
        if kind == "voiced":
            accent = float(rng.uniform(0.5, 1.0)) if rng.random() < 0.3 else 0.0
            syllables.append(_Syllable(label, t, t + d, accent))
        if kind == "breath":
            phrases.append((phrase_start, t))
            phrase_start = t + d
        t += d
    phrases.append((phrase_start, t))
    segments.append(("silence", t, duration, "tail"))
    return segments, syllables, phrases


def _events(rng: np.random.Generator, prof: SpeakerProfile, body: float) -> list[tuple[str, float, str]]:
    """``(kind, nominal duration, label)`` events of about ``body`` seconds, ending on a vowel, with
    at least one fricative."""
    syl_len = 1.0 / prof.syllables_per_second
    vowels = list(_VOWELS)
    fricatives = list(_FRICATIVES)
    events: list[tuple[str, float, str]] = []
    total = 0.0
    since_pause = 0
    while total < body or not events:
        if rng.random() < 0.45:
            kind = fricatives[int(rng.integers(len(fricatives)))]
            d = rng.uniform(0.06, 0.13)
            events.append(("unvoiced", d, kind))
            total += d
        elif rng.random() < 0.25:
            d = rng.uniform(0.03, 0.06)
            events.append(("closure", d, "stop"))
            events.append(("unvoiced", rng.uniform(0.008, 0.015), "burst"))
            total += d + events[-1][1]
        d = syl_len * rng.uniform(0.45, 0.85)
        events.append(("voiced", d, vowels[int(rng.integers(len(vowels)))]))
        total += d
        since_pause += 1
        if since_pause >= 3 and rng.random() < 0.22 and total < body - 0.6:
            d = rng.uniform(0.15, 0.32)
            events.append(("breath", d, "pause"))
            total += d
            since_pause = 0
    if not any(k == "unvoiced" and lab in _FRICATIVES for k, _, lab in events):
        # Every utterance gets at least one fricative: put one before a middle vowel.
        voiced_at = [i for i, (k, _, _) in enumerate(events) if k == "voiced"]
        fricative = fricatives[int(rng.integers(len(fricatives)))]
        events.insert(voiced_at[len(voiced_at) // 2], ("unvoiced", 0.09, fricative))
    while events[-1][0] != "voiced":
        events.pop()
    return events


# --------------------------------------------------------------------------------------------
# signal pieces
# --------------------------------------------------------------------------------------------
def _ramp_envelope(n: int, start: int, end: int, ramp: int) -> np.ndarray:
    """A window of ones on ``[start, end)`` with raised-cosine ramps, as a full-length array."""
    env = np.zeros(n, dtype=np.float64)
    length = end - start
    if length <= 0:
        return env
    ramp = max(1, min(ramp, length // 2))
    win = np.ones(length)
    r = 0.5 - 0.5 * np.cos(np.pi * (np.arange(ramp) + 0.5) / ramp)
    win[:ramp] = r
    win[length - ramp:] = r[::-1]
    env[start:end] = win
    return env


def _pitch_contour(rng: np.random.Generator, prof: SpeakerProfile, syllables: list[_Syllable],
                   phrases: list[tuple[float, float]], t: np.ndarray) -> np.ndarray:
    """F0 in Hz at control times ``t`` (seconds)."""
    st = np.zeros_like(t)
    for p0, p1 in phrases:  # declination within each phrase, reset after pauses
        decl = rng.uniform(1.2, 2.5)
        span = max(p1 - p0, 1e-3)
        inside = (t >= p0) & (t < p1)
        st[inside] += decl * (1.0 - 2.0 * (t[inside] - p0) / span)
    for syl in syllables:  # pitch accents on some vowels
        if syl.accent > 0.0:
            centre = 0.5 * (syl.start + syl.end)
            width = 0.6 * (syl.end - syl.start)
            st += prof.accent_semitones * syl.accent * np.exp(-0.5 * ((t - centre) / width) ** 2)
    drift = np.cumsum(rng.normal(0.0, 0.08, size=t.size))
    drift = signal.lfilter([0.02], [1.0, -0.98], drift - drift.mean())
    st += np.clip(drift, -0.6, 0.6)
    st += rng.normal(0.0, 0.06, size=t.size)  # jitter
    st = np.clip(st, -5.0, 6.0)
    return prof.f0_hz * 2.0 ** (st / 12.0)


def _rosenberg(phase: np.ndarray, open_quotient: float) -> np.ndarray:
    """Rosenberg glottal flow pulse at cycle phase in [0, 1)."""
    tp = 0.7 * open_quotient
    tn = 0.3 * open_quotient
    g = np.zeros_like(phase)
    rising = phase < tp
    g[rising] = 0.5 * (1.0 - np.cos(np.pi * phase[rising] / tp))
    falling = (phase >= tp) & (phase < tp + tn)
    g[falling] = np.cos(0.5 * np.pi * (phase[falling] - tp) / tn)
    return g


def _formant_tracks(rng: np.random.Generator, prof: SpeakerProfile, syllables: list[_Syllable],
                    t: np.ndarray, nyquist: float) -> tuple[np.ndarray, np.ndarray]:
    """Formant frequencies and bandwidths (control points x formants) gliding between vowels."""
    keys_t: list[float] = []
    keys_f: list[list[float]] = []
    for syl in syllables:
        f1, f2, f3 = _VOWELS[syl.vowel]
        wobble = rng.uniform(0.95, 1.05, size=5)
        freqs = np.array([f1, f2, f3, *_F4_F5]) * prof.vtl_scale * wobble
        keys_t.append(0.5 * (syl.start + syl.end))
        keys_f.append(list(freqs))
    kf = np.array(keys_f)
    tracks = np.stack([np.interp(t, keys_t, kf[:, k]) for k in range(5)], axis=1)
    bws = np.broadcast_to(np.array(_BANDWIDTHS) * prof.vtl_scale, tracks.shape)
    keep = [k for k in range(5) if k < 3 or tracks[:, k].max() + bws[0, k] < 0.9 * nyquist]
    tracks = np.minimum(tracks[:, keep], 0.9 * nyquist)
    return tracks, np.array(bws[:, keep])


def _formant_filter(x: np.ndarray, freqs: np.ndarray, bws: np.ndarray, sr: int, hop: int
                    ) -> np.ndarray:
    """Cascade of unity-DC-gain two-pole resonators, coefficients updated every control hop."""
    r = np.exp(-np.pi * bws / sr)
    a1 = -2.0 * r * np.cos(2.0 * np.pi * freqs / sr)
    a2 = r * r
    b0 = 1.0 + a1 + a2
    n_blocks, n_sec = freqs.shape
    sos = np.zeros((n_blocks, n_sec, 6))
    sos[:, :, 0] = b0
    sos[:, :, 3] = 1.0
    sos[:, :, 4] = a1
    sos[:, :, 5] = a2
    y = np.empty_like(x)
    zi = np.zeros((n_sec, 2))
    for b in range(n_blocks):
        s = b * hop
        e = min(s + hop, x.size)
        if s >= e:
            break
        y[s:e], zi = signal.sosfilt(sos[b], x[s:e], zi=zi)
    return y


def _band_noise(rng: np.random.Generator, n: int, lo: float, hi: float, sr: int) -> np.ndarray:
    nyq = sr / 2.0
    hi = min(hi, 0.45 * sr)
    lo = min(lo, 0.6 * hi)
    sos = signal.butter(4, [lo / nyq, hi / nyq], btype="bandpass", output="sos")
    pad = 256
    noise = signal.sosfilt(sos, rng.standard_normal(n + pad))[pad:]
    return noise / (np.sqrt(np.mean(noise**2)) + 1e-12)


def render_profile_utterance(prof: SpeakerProfile, duration: float, sample_rate: int,
                             rng: np.random.Generator) -> tuple[np.ndarray, list[Segment]]:
    """One utterance of ``duration`` seconds: float32 samples (peak -6..-2 dBFS) and its segments."""
    sr = sample_rate
    n = int(round(duration * sr))
    plan, syllables, phrases = _plan(rng, prof, n / sr)
    hop = max(16, int(round(_CONTROL_SECONDS * sr)))
    n_ctrl = (n + hop - 1) // hop + 1
    t_ctrl = np.arange(n_ctrl) * hop / sr
    t = np.arange(n) / sr

    # Glottal source with aspiration.
    f0 = np.interp(t, t_ctrl, _pitch_contour(rng, prof, syllables, phrases, t_ctrl))
    phase = np.cumsum(f0 / sr) % 1.0
    flow = _rosenberg(phase, prof.open_quotient)
    pulses = np.diff(flow, prepend=0.0) * (sr / (prof.f0_hz * 8.0))  # ~unit-scale derivative
    aspiration = _band_noise(rng, n, 600.0, 7000.0, sr) * prof.breathiness
    aspiration *= 0.4 + 0.6 * (phase < prof.open_quotient)
    shimmer = np.interp(t, t_ctrl, 1.0 + 0.04 * rng.standard_normal(n_ctrl))

    segments: list[Segment] = []
    voicing = np.zeros(n)
    frication = np.zeros(n)
    breath = np.zeros(n)
    for kind, s_sec, e_sec, label in plan:
        s, e = int(round(s_sec * sr)), int(round(e_sec * sr))
        e = min(e, n)
        if e <= s:
            continue
        segments.append(Segment(kind, s, e, label))
        if kind == "voiced":
            level = rng.uniform(0.65, 0.9)
            ramp = int(rng.uniform(0.012, 0.025) * sr)
            voicing = np.maximum(voicing, level * _ramp_envelope(n, s, e, ramp))
        elif kind == "unvoiced":
            lo, hi, lvl = _FRICATIVES.get(label, (1500.0, 9000.0, 0.25))
            ramp = int((0.002 if label == "burst" else rng.uniform(0.012, 0.025)) * sr)
            env = _ramp_envelope(n, s, e, ramp)
            band = _band_noise(rng, e - s, lo * prof.vtl_scale, hi, sr)
            frication[s:e] += lvl * rng.uniform(0.7, 1.2) * band * env[s:e]
        elif kind == "breath":
            mid = s + (e - s) // 4
            env = _ramp_envelope(n, mid, e, (e - mid) // 2)
            breath[mid:e] += 0.012 * _band_noise(rng, e - mid, 400.0, 3000.0, sr) * env[mid:e]

    freqs, bws = _formant_tracks(rng, prof, syllables, t_ctrl, sr / 2.0)
    source = (pulses + aspiration) * voicing * shimmer
    voiced = _formant_filter(source, freqs, bws, sr, hop)
    voiced /= np.max(np.abs(voiced)) + 1e-12
    floor = 1e-4 * rng.standard_normal(n)
    y = voiced + frication * 0.35 + breath + floor
    peak_db = rng.uniform(-6.0, -2.0)
    y *= 10.0 ** (peak_db / 20.0) / (np.max(np.abs(y)) + 1e-12)
    return y.astype(np.float32), segments


def utterance_path(out_dir: Path, speaker: str, index: int, count: int) -> Path:
    width = max(3, len(str(max(count - 1, 0))))
    return out_dir / speaker / f"{speaker}_{index:0{width}d}.wav"


def utterance_rng(params: DemoParams, speaker_index: int, utt_index: int) -> np.random.Generator:
    """The random stream of one utterance (independent of every other utterance)."""
    return np.random.default_rng(
        np.random.SeedSequence([_seed_entropy(params.seed), speaker_index, utt_index, 1]))


def render_utterance(params: DemoParams, speaker_index: int, utt_index: int,
                     profiles: list[SpeakerProfile] | None = None
                     ) -> tuple[np.ndarray, list[Segment]]:
    """Utterance ``utt_index`` of speaker ``speaker_index`` exactly as :func:`generate` writes it
    (before 16-bit quantisation), with its labelled segments."""
    if profiles is None:
        profiles = speaker_profiles(params)
    rng = utterance_rng(params, speaker_index, utt_index)
    duration = float(rng.uniform(params.min_seconds, params.max_seconds))
    return render_profile_utterance(profiles[speaker_index], duration, params.sample_rate, rng)


def _readme(params: DemoParams, profiles: list[SpeakerProfile], n_files: int) -> str:
    rows = "\n".join(
        f"  {p.name}   {p.f0_hz:7.1f} Hz   x{p.vtl_scale:.3f}        {p.breathiness:.3f}"
        for p in profiles)
    return f"""ganpipe demo corpus (synthetic)
===============================

{n_files} WAV files (16-bit PCM, {params.sample_rate} Hz, mono): {params.n_speakers} speakers x
{params.utterances_per_speaker} utterances of {params.min_seconds:g}-{params.max_seconds:g} s, generated by
ganpipe.datasets.demo with seed {params.seed}. Layout: <speaker>/<speaker>_<NNN>.wav

What it is: speech-LIKE audio from a source-filter model. A glottal pulse train with a moving
pitch contour (declination, accents, jitter) and breathy aspiration goes through 3-5 formant
resonators that glide between vowel targets; fricative-like noise bursts, stop closures,
pauses and silences are interleaved. Speakers differ in mean pitch, vocal-tract length
(formant scaling), breathiness and speaking rate.

What it is not: speech. Nothing in it is intelligible and it carries no text. It is meant for
checking that the pipeline runs end to end (offline, in seconds) and gives a vocoder real
harmonic-plus-noise structure to learn. Do not use it for quality claims or comparisons.

Regenerating with the same parameters gives byte-identical files.

  speaker   mean F0      formant scale  breathiness
{rows}
"""


def generate(out_dir: Path, params: DemoParams) -> list[Path]:
    """Write the demo corpus under ``out_dir``; return the WAV paths (sorted).

    Files: ``out_dir/<speaker>/<speaker>_<NNN>.wav`` (16-bit PCM at ``params.sample_rate``) and
    ``out_dir/README.txt``. Demo files of an earlier generation that are not part of this one are
    removed (only files that follow the demo naming scheme are touched).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    profiles = speaker_profiles(params)
    count = params.utterances_per_speaker
    paths: list[Path] = []
    for i, prof in enumerate(profiles):
        for j in range(count):
            wav, _ = render_utterance(params, i, j, profiles)
            path = utterance_path(out_dir, prof.name, j, count)
            write_audio(path, wav, params.sample_rate, fmt="pcm16")
            paths.append(path)
    _remove_stale(out_dir, set(paths))
    write_text(out_dir / "README.txt", _readme(params, profiles, len(paths)))
    return sorted(paths)


def _remove_stale(out_dir: Path, keep: set[Path]) -> None:
    for spk_dir in out_dir.iterdir():
        if not (spk_dir.is_dir() and _SPEAKER_DIR.match(spk_dir.name)):
            continue
        for f in spk_dir.iterdir():
            if f.is_file() and _UTT_FILE.match(f.name) and f not in keep:
                f.unlink()
        if not any(spk_dir.iterdir()):
            shutil.rmtree(spk_dir)
