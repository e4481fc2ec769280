"""The embedded music corpus: synthetic, piano-like pieces made on the spot (no download).

What it is
    ``pieces`` short pieces of ``min_seconds``-``max_seconds`` each (see :class:`DemoMusicParams`),
    16 kHz mono by default. Each piece has a key (a major or minor scale on a random tonic), a tempo
    drawn from :data:`TEMPOS_BPM`, and a texture: block chords, broken chords (arpeggios) or a melody
    over held chords, following a short diatonic chord progression. Every note is additive synthesis
    of a struck string:

    * partials ``k = 1..K`` at ``k * f0 * sqrt(1 + B k^2)`` (stiff-string inharmonicity; ``B`` grows
      towards the treble), their levels shaped by a hammer-position comb and a velocity-dependent
      spectral tilt (louder notes are brighter); two slightly detuned strings per low partial beat;
    * a two-stage decay (a fast "prompt" decay, then a slow "aftersound"), faster for higher partials
      and higher notes; a short hammer thump (low-passed noise) at the onset; a damper release when
      the note ends;
    * the mix goes through a room-like reverb (exponentially decaying, low-passed noise impulse
      response with a few early reflections) and gets a very low noise floor.

What it is not
    A piano, or music anyone composed. There is no pedal, sympathetic resonance, soundboard or key
    noise, the "compositions" are random walks on a chord progression, and the timbre is a textbook
    model. It exists so that the music path (unconditional WaveGAN/SpecGAN, clipping of long pieces,
    Frechet mel distance / NDB) runs offline in seconds with audio that has tonal, polyphonic,
    decaying structure; never use it for quality claims or comparisons with published numbers.

Determinism
    The same :class:`DemoMusicParams` give byte-identical files. Piece ``i`` draws everything from
    ``(seed, i)``, so changing ``pieces`` leaves the pieces that remain unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import signal

from ganpipe.atomic import write_text
from ganpipe.audio import write_audio
from ganpipe.config import DemoMusicParams

TEMPOS_BPM = (72, 96, 120, 144)
TEXTURES = ("chords", "arpeggio", "melody")
INSTRUMENT = "piano"  # the one sub-folder (= the "speaker" label of every piece)
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)
# Chord progressions as scale degrees (0 = I); each chord lasts a bar.
_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (5, 3, 0, 4), (0, 3, 0, 4), (1, 4, 0, 0))
_PIECE_FILE = re.compile(r"^piece_\d{3,}\.wav$")


@dataclass(frozen=True)
class Note:
    """One note of a piece: MIDI pitch, onset and duration in seconds, velocity in (0, 1]."""

    pitch: int
    onset: float
    duration: float
    velocity: float


@dataclass(frozen=True)
class PieceInfo:
    index: int
    key: str
    tempo_bpm: int
    texture: str
    notes: tuple[Note, ...]
    seconds: float  # the length of the piece (notes still ringing at its end are faded out)


_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def _seed_entropy(seed: int) -> int:
    return seed & (2**64 - 1)


def piece_rng(params: DemoMusicParams, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([_seed_entropy(params.seed), index, 7]))


def midi_hz(pitch: float) -> float:
    return 440.0 * 2.0 ** ((pitch - 69.0) / 12.0)


def compose(params: DemoMusicParams, index: int, rng: np.random.Generator) -> PieceInfo:
    """The notes of piece ``index``: key, tempo, texture and a chord progression filled in."""
    duration = float(rng.uniform(params.min_seconds, params.max_seconds))
    tonic = int(rng.integers(0, 12))
    minor = bool(rng.random() < 0.4)
    scale = _MINOR if minor else _MAJOR
    tempo = int(TEMPOS_BPM[int(rng.integers(len(TEMPOS_BPM)))])
    texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    beat = 60.0 / tempo
    bar = 4 * beat
    base = 48 + tonic  # the left hand around C3..B3
    lead_in = float(rng.uniform(0.05, 0.3))
    end = duration - 1.0  # no onset in the last second: the last notes ring out

    def chord(degree: int, octave: int) -> list[int]:
        pitches = []
        for step in (0, 2, 4) + ((6,) if rng.random() < 0.25 else ()):
            d = degree + step
            pitches.append(base + 12 * (octave + d // 7) + scale[d % 7])
        return pitches

    notes: list[Note] = []
    t = lead_in
    b = 0
    melody_pitch = base + 24 + scale[int(rng.integers(0, 5))]
    while t < end:
        degree = prog[b % len(prog)]
        lh = chord(degree, 0)
        vel_bar = float(rng.uniform(0.45, 0.9))
        if texture == "chords":
            for beat_i in range(0, 4, 2 if rng.random() < 0.5 else 1):
                on = t + beat_i * beat
                if on >= end:
                    break
                dur = beat * (2 if beat_i % 2 == 0 else 1) * 0.95
                for p in lh + [lh[0] - 12]:
                    notes.append(Note(p, on + float(rng.uniform(0, 0.012)), dur,
                                      vel_bar * float(rng.uniform(0.85, 1.0))))
        else:
            notes.append(Note(lh[0] - 12, t, bar * 0.98, vel_bar * 0.8))  # bass note, held
            if texture == "arpeggio":
                pattern = lh + [lh[1] + 12, lh[0] + 12, lh[1] + 12] + lh[::-1]
                for k in range(8):
                    on = t + k * beat / 2
                    if on >= end:
                        break
                    notes.append(Note(pattern[k % len(pattern)] + 12, on, beat * 1.2,
                                      vel_bar * float(rng.uniform(0.7, 1.0))))
            else:  # melody over held chords
                for p in lh:
                    notes.append(Note(p, t, bar * 0.98, vel_bar * 0.55))
                on = t
                while on < t + bar - 1e-6 and on < end:
                    dur = beat * float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
                    dur = min(dur, t + bar - on)
                    # a step or a leap on the scale, pulled towards chord tones
                    pc = (melody_pitch - tonic) % 12
                    deg = min(range(7), key=lambda d: abs(scale[d] - pc))
                    deg += int(rng.choice([-2, -1, -1, 0, 1, 1, 2, 3]))
                    if rng.random() < 0.4:
                        deg = degree + int(rng.choice([0, 2, 4]))
                    octave = (melody_pitch - tonic) // 12
                    cand = tonic + 12 * (octave + deg // 7) + scale[deg % 7]
                    melody_pitch = int(np.clip(cand, base + 17, base + 36))
                    notes.append(Note(melody_pitch, on, dur * 0.95,
                                      min(1.0, vel_bar * float(rng.uniform(0.9, 1.15)))))
                    on += dur
        t += bar
        b += 1
    key = f"{_NAMES[tonic]} {'minor' if minor else 'major'}"
    return PieceInfo(index, key, tempo, texture, tuple(notes), duration)


def _note(rng: np.random.Generator, note: Note, sr: int, tail: float) -> np.ndarray:
    """Samples of one struck, damped string note (its duration plus a release ``tail``)."""
    f0 = midi_hz(note.pitch)
    n = int((note.duration + tail) * sr)
    t64 = np.arange(n) / sr
    t = t64.astype(np.float32)  # envelopes and sines in float32 (phases are reduced in float64)
    treble = (note.pitch - 21) / 87.0  # 0 at A0, 1 at C8
    inharm = 10.0 ** (-4.3 + 1.6 * treble)  # B: ~5e-5 (bass) .. ~2e-3 (treble)
    strike = float(rng.uniform(0.11, 0.14))  # hammer position along the string
    tilt = 1.6 - 0.8 * note.velocity  # louder -> brighter
    tau_prompt = 0.9 * (1.0 - 0.7 * treble) + 0.05
    tau_after = 6.0 * (1.0 - 0.8 * treble) + 0.3
    out = np.zeros(n, dtype=np.float32)
    nyq_limit = 0.45 * sr
    two_pi = np.float32(2 * np.pi)

    def sine(freq: float, phase: float) -> np.ndarray:
        cycles = (freq * t64 + phase) % 1.0
        return np.sin(two_pi * cycles.astype(np.float32))

    for k in range(1, 25):
        fk = k * f0 * np.sqrt(1.0 + inharm * k * k)
        if fk >= nyq_limit:
            break
        amp = abs(np.sin(np.pi * k * strike)) / k ** tilt
        if amp < 1e-4:
            continue
        speed = 1.0 + 0.35 * (k - 1)
        env = (np.float32(0.7) * np.exp(t * np.float32(-speed / tau_prompt))
               + np.float32(0.3) * np.exp(t * np.float32(-speed / tau_after)))
        phase = float(rng.uniform(0, 1))
        if k <= 3:  # two strings a few tenths of a Hz apart: slow beating
            detune = fk * 2.0 ** (float(rng.uniform(0.5, 1.5)) / 1200.0)
            wave = np.float32(0.5) * (sine(fk, phase) + sine(detune, phase))
        else:
            wave = sine(fk, phase)
        out += np.float32(amp) * env * wave
    out = out.astype(np.float64)
    attack = max(1, int(0.002 * sr))
    out[:attack] *= np.linspace(0.0, 1.0, attack)
    thump_n = min(n, int(0.03 * sr))
    sos = signal.butter(2, min(0.45 * sr, 4 * f0 + 300.0) / (sr / 2), output="sos")
    thump = signal.sosfilt(sos, rng.standard_normal(thump_n)) * np.exp(-np.arange(thump_n) / (0.006 * sr))
    out[:thump_n] += 0.08 * thump
    off = int(note.duration * sr)  # damper: a fast release after the key goes up
    if off < n:
        out[off:] *= np.exp(-np.arange(n - off) / (0.06 * sr))
    return out * note.velocity ** 1.5


def _room(rng: np.random.Generator, sr: int, rt60: float) -> np.ndarray:
    """A room-like impulse response: direct sound, a few early reflections, a noise tail."""
    n = int(rt60 * sr)
    t = np.arange(n) / sr
    tail = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
    sos = signal.butter(2, 3500.0 / (sr / 2), output="sos")
    tail = signal.sosfilt(sos, tail)
    tail[: int(0.02 * sr)] = 0.0
    ir = 0.12 * tail / (np.sqrt(np.sum(tail**2)) + 1e-12)
    ir[0] = 1.0
    for delay, gain in zip(rng.uniform(0.004, 0.025, size=4), rng.uniform(0.15, 0.35, size=4)):
        ir[int(delay * sr)] += gain * rng.choice([-1.0, 1.0])
    return ir


def render_piece(params: DemoMusicParams, index: int) -> tuple[np.ndarray, PieceInfo]:
    """Piece ``index`` exactly as :func:`generate` writes it (before 16-bit quantisation)."""
    rng = piece_rng(params, index)
    info = compose(params, index, rng)
    sr = params.sample_rate
    n_total = int(round(info.seconds * sr))
    dry = np.zeros(n_total)
    for note in info.notes:
        s = int(round(note.onset * sr))
        wav = _note(rng, note, sr, tail=0.4)[: n_total - s]
        dry[s:s + wav.size] += wav
    if params.reverb > 0.0:
        ir = _room(rng, sr, rt60=float(rng.uniform(0.5, 1.1)))
        wet = signal.fftconvolve(dry, ir)[:n_total]
        y = (1.0 - params.reverb) * dry + params.reverb * wet
    else:
        y = dry
    fade = int(0.5 * sr)  # the last notes ring into the reverb, then fade out
    y[-fade:] *= np.linspace(1.0, 0.0, fade)
    y += 1e-4 * rng.standard_normal(y.size) * np.max(np.abs(y))
    peak_db = rng.uniform(-6.0, -2.0)
    y *= 10.0 ** (peak_db / 20.0) / (np.max(np.abs(y)) + 1e-12)
    return y.astype(np.float32), info


def piece_path(out_dir: Path, index: int, count: int) -> Path:
    width = max(3, len(str(max(count - 1, 0))))
    return out_dir / INSTRUMENT / f"piece_{index:0{width}d}.wav"


def _readme(params: DemoMusicParams, infos: list[PieceInfo], seconds: float) -> str:
    rows = "\n".join(f"  piece_{i.index:03d}  {i.key:9s}  {i.tempo_bpm:3d} bpm  {i.texture:8s}  "
                     f"{len(i.notes):4d} notes" for i in infos)
    return f"""ganpipe demo music corpus (synthetic)
=====================================

{len(infos)} WAV files (16-bit PCM, {params.sample_rate} Hz, mono), {seconds / 60:.1f} minutes in all,
generated by ganpipe.datasets.demo_music with seed {params.seed}. Layout: {INSTRUMENT}/piece_<NNN>.wav

What it is: piano-LIKE audio. Additive synthesis of struck strings (inharmonic partials,
hammer-position comb, two-stage decay faster for higher partials, detuned string pairs,
hammer thump, damper release) playing block chords, broken chords or a melody over held
chords on a diatonic progression, at {", ".join(map(str, TEMPOS_BPM))} bpm, through a room-like reverb.

What it is not: a piano or composed music (no pedal, soundboard, sympathetic resonance;
random note choices on a chord progression). It is meant for running the music path of the
pipeline offline; do not use it for quality claims or comparisons.

Regenerating with the same parameters gives byte-identical files.

{rows}
"""


def generate(out_dir: Path, params: DemoMusicParams) -> list[Path]:
    """Write the corpus under ``out_dir``; return the WAV paths (sorted).

    Files: ``out_dir/piano/piece_<NNN>.wav`` and ``out_dir/README.txt``. Pieces of an earlier
    generation that are not part of this one are removed (only files named like pieces).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    infos: list[PieceInfo] = []
    seconds = 0.0
    for i in range(params.pieces):
        wav, info = render_piece(params, i)
        path = piece_path(out_dir, i, params.pieces)
        write_audio(path, wav, params.sample_rate, fmt="pcm16")
        paths.append(path)
        infos.append(info)
        seconds += wav.size / params.sample_rate
    folder = out_dir / INSTRUMENT
    for f in folder.iterdir():
        if f.is_file() and _PIECE_FILE.match(f.name) and f not in set(paths):
            f.unlink()
    write_text(out_dir / "README.txt", _readme(params, infos, seconds))
    return sorted(paths)
