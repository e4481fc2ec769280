"""Is a given mel the kind a model takes? (``ganpipe synthesize --mel``, ``Vocoder.mel_to_audio``.)

A vocoder takes the un-normalised log-mel of its own definition (:class:`~ganpipe.mel.MelConfig`: log
base, clamp floor, filterbank; a ``meanvar`` model normalises it itself). Three kinds of wrong mel are
common and make garbage audio without any error: the other log base (natural log vs log10), a
mean/variance-normalised mel, and either at the wrong floor. They are told apart by two numbers of the
array, its level (mean) and its spread (standard deviation of all values):

* the spread of a speech log-mel is about :data:`SPEECH_SPREAD_NEPERS` nepers (natural-log units)
  whatever the loudness and the mel's parameters (measured 1.9-2.2 on LJSpeech for the hifigan, pwg
  and Vocos mels); log10 divides it by ln 10, normalisation makes it ~1;
* the level is the model's: its train-split statistics when it has real ones, else the level its own
  mel definition gives a speech-like reference signal at -20 dBFS (:func:`reference_level`: filterbank
  normalisation, log base and floor included; within 0.15 of real LJSpeech's for those three mels).
  Loudness moves it by ~1.15 nepers per 10 dB; the other log base scales it by ln 10; normalised is 0.

Each kind is a point (level, spread); the array is classified to the nearest (level distance in units
of 1.5 spreads, spread distance in factors of 1.5) and a warning is given only when it is clearly
nearer another kind than the model's. Values below the model's floor (``log(clamp)``) give it away too.
Models imported from published checkpoints (no statistics of their own) are checked the same way.
"""

from __future__ import annotations

import functools
import json
import math

import numpy as np

from ganpipe.mel import MelConfig

SPEECH_SPREAD_NEPERS = 2.0
_LN10 = math.log(10.0)
_HINT = "; compute it with the model's mel (`ganpipe mel --model MODEL in.wav -o x.npy`, Vocoder.compute_mel) or " \
        "give --wav"


def _units(base: str) -> float:
    """Nepers per unit of a log in ``base``."""
    return 1.0 if base == "e" else _LN10


def kind_name(base: str, normalised: bool = False) -> str:
    if normalised:
        return "a mean/variance-normalised mel"
    return "a natural-log mel" if base == "e" else "a log10 mel"


def reference_signal(sample_rate: int) -> np.ndarray:
    """2 s of a speech-like signal at -20 dBFS RMS: harmonics (1/k) of a gliding 100-180 Hz F0, breath
    noise, and pauses with a -60 dB noise floor (seeded: the same samples every time)."""
    rng = np.random.default_rng(0)
    n = int(sample_rate * 2.0)
    t = np.arange(n) / sample_rate
    f0 = 140.0 + 40.0 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    x = np.zeros(n)
    for k in range(1, 60):
        x += np.where(k * f0 < sample_rate / 2 - 200, np.sin(k * phase) / k, 0.0)
    x += 0.05 * rng.standard_normal(n)
    x = x * (np.sin(2 * np.pi * 1.5 * t) > -0.3) + 1e-3 * rng.standard_normal(n)
    return (x / np.sqrt(np.mean(x ** 2)) * 0.1).astype(np.float32)


@functools.lru_cache(maxsize=32)
def _reference_level(config_json: str) -> float:
    import torch

    from ganpipe.mel import MelSpectrogram

    cfg = MelConfig.from_dict({**MelConfig.from_dict(json.loads(config_json)).to_dict(),
                               "normalize": "none"})
    with torch.inference_mode():
        return float(MelSpectrogram(cfg)(torch.from_numpy(reference_signal(cfg.sample_rate))).mean())


def reference_level(config: MelConfig) -> float:
    """The level (mean, in the mel's log base) the model's own mel gives speech at -20 dBFS."""
    return _reference_level(config.to_json())


def _real_statistics(mean: np.ndarray | None, std: np.ndarray | None) -> bool:
    if mean is None or std is None:
        return False
    mu, sigma = float(np.mean(mean)), float(np.mean(std))
    placeholder = abs(mu) < 1e-6 and abs(sigma - 1) < 1e-6  # imported models without statistics: zeros / ones
    return math.isfinite(mu) and math.isfinite(sigma) and sigma > 0 and not placeholder


def mel_range_warning(mel: np.ndarray, config: MelConfig, train_mean: np.ndarray | None = None,
                      train_std: np.ndarray | None = None) -> str | None:
    """Why ``mel`` clearly is another kind of mel than the model of ``config`` takes, or ``None``.
    ``train_mean`` / ``train_std``: the model's per-bin statistics of its un-normalised log-mel, when
    it has real ones (placeholder zeros / ones are ignored: the level then comes from ``config``)."""
    mel = np.asarray(mel, dtype=np.float64)
    finite = mel[np.isfinite(mel)]
    if finite.size < 2:
        return None
    base = config.log_base
    other = "e" if base == "10" else "10"
    floor = math.log(config.clamp) / _units(base)
    expects = (f"the model expects {kind_name(base)} (log_base {base}, floor log(clamp={config.clamp:g}) = "
               f"{floor:.2f}" + (", un-normalised: it applies its own mean/variance normalisation"
                                 if config.normalize == "meanvar" else "") + ")")
    level, spread = float(finite.mean()), float(finite.std())
    low, high = float(finite.min()), float(finite.max())
    seen = f"values mean {level:.2f}, spread (std) {spread:.2f}, range {low:.2f} .. {high:.2f}"
    if low < floor - max(0.05 * abs(floor), 0.1):
        other_floor = math.log(config.clamp) / _units(other)
        guess = f" ({kind_name(other)}?)" if low >= other_floor - 0.5 else ""
        return f"the mel's values go below the floor of the model's mel{guess}: {seen}, but {expects}{_HINT}"
    if spread <= 0:
        return None
    real = _real_statistics(train_mean, train_std)
    own_level = float(np.mean(train_mean)) if real else reference_level(config)
    own_spread = SPEECH_SPREAD_NEPERS / _units(base)
    to_other = _units(base) / _units(other)
    kinds = {  # kind -> (level, spread) expected of speech
        kind_name(base): (own_level, own_spread),
        kind_name(other): (own_level * to_other, own_spread * to_other),
        kind_name(base, normalised=True): (0.0, 1.0),
    }

    def distance(kind: str) -> float:
        mu, sigma = kinds[kind]
        return ((level - mu) / (1.5 * sigma)) ** 2 + (math.log(spread / sigma) / math.log(1.5)) ** 2

    own = distance(kind_name(base))
    name = min(kinds, key=distance)
    if name != kind_name(base) and own > 2.0 and distance(name) * 3 < own:
        where = f"train-split mean {own_level:.2f}" if real else \
            f"its own mel of speech at -20 dBFS: mean {own_level:.2f}, spread {own_spread:.2f}"
        return f"the mel looks like {name}: {seen}, but {expects}, {where}{_HINT}"
    return None
