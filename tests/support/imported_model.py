"""A published jik876/hifi-gan checkpoint "imported" into a ganpipe generator file, written the way
``ganpipe import-model --format jik876 G --config config_v1.json --discriminator DO`` writes one: the
reference's ``Generator``, ``MultiPeriodDiscriminator`` and ``MultiScaleDiscriminator`` (the ``hifi-gan``
package, seeded random weights) built from a small config derived from ../shared/reference's
config_v1.json, mapped with ganpipe.models.reference_weights and saved with
``save_generator(..., discriminators=..., source=...)``, its mel taken from the config.

Test size: the generator ``upsample_initial_channel`` is 16 (V1: 512) and, to keep CPU steps short,
the reference discriminators hold their first period / scale only (jik876's ``DiscriminatorP(2)``
and spectral-norm ``DiscriminatorS`` in its ``MultiPeriodDiscriminator`` / ``MultiScaleDiscriminator``:
the published layers and forward passes); :attr:`ImportedModel.overrides` are the ``model.overrides``
that build the same architecture.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganpipe.generator_io import save_generator
from ganpipe.mel import MelConfig
from ganpipe.models import build
from ganpipe.models import reference_weights as rw
from tests.support import oracles

WIDTH = 16


@dataclass
class ImportedModel:
    path: Path
    overrides: dict[str, Any]  # model.overrides (variant hifigan_v1) of its architecture
    config: dict[str, Any]  # the jik876 config it was made from
    reference_state: dict[str, dict[str, torch.Tensor]]  # generator / mpd / msd: the reference weights it holds
    mel: MelConfig
    stats: dict[str, np.ndarray]

    def reference_modules(self) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
        """Fresh jik876 (Generator, MultiPeriodDiscriminator, MultiScaleDiscriminator) with its weights."""
        g, mpd, msd = _reference(self.config)
        for module, name in ((g, "generator"), (mpd, "mpd"), (msd, "msd")):
            module.load_state_dict(self.reference_state[name])
        return g, mpd, msd


def jik876_mel(config: dict[str, Any], **changes: Any) -> MelConfig:
    """The mel of a jik876 config (its meldataset: natural log, clamp 1e-5, no normalisation)."""
    mel = {"sample_rate": config["sampling_rate"], "n_fft": config["n_fft"], "hop_length": config["hop_size"],
           "win_length": config["win_size"], "n_mels": config["num_mels"], "fmin": float(config["fmin"]),
           "fmax": float(config["fmax"]), "log_base": "e", "clamp": 1e-5, "normalize": "none"}
    return MelConfig.from_dict({**mel, **changes})


def seeded_stats(n_mels: int, seed: int) -> dict[str, np.ndarray]:
    g = np.random.default_rng(seed)
    return {"mean": (-5.0 + g.standard_normal(n_mels)).astype(np.float32),
            "std": (1.0 + g.random(n_mels)).astype(np.float32)}


def _container(cls: type, part: torch.nn.Module) -> torch.nn.Module:
    """An instance of jik876's ``cls`` (its forward) holding ``part`` alone: its ``__init__``, which
    builds all five periods / three scales, is not run."""
    container = cls.__new__(cls)
    torch.nn.Module.__init__(container)
    container.discriminators = torch.nn.ModuleList([part])
    container.meanpools = torch.nn.ModuleList()  # MultiScaleDiscriminator: pooling before scales 2 and 3
    return container


def _reference(h: dict[str, Any]) -> tuple[torch.nn.Module, torch.nn.Module, torch.nn.Module]:
    m = oracles.hifigan_models()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.nn.utils.weight_norm is deprecated
        return (m.Generator(h), _container(m.MultiPeriodDiscriminator, m.DiscriminatorP(2)),  # its first period
                _container(m.MultiScaleDiscriminator, m.DiscriminatorS(use_spectral_norm=True)))  # its first scale


def jik876_imported(path: Path, seed: int = 0, discriminators: bool = True, mel: dict[str, Any] | None = None,
                    stats: dict[str, np.ndarray] | None = None) -> ImportedModel:
    """Write an imported jik876 HiFi-GAN V1 (test size) to ``path``; ``mel``: changes to config_v1's mel."""
    oracles.require_oracles()
    h = oracles.jik876_config("hifigan_v1")
    h["upsample_initial_channel"] = WIDTH
    torch.manual_seed(seed)
    generator, mpd, msd = _reference(h)
    with torch.no_grad():  # a trained discriminator's scores are not the ~0 of a fresh initialisation
        for d in (*mpd.discriminators, *msd.discriminators):
            d.conv_post.bias.normal_(2.0, 0.1)
    overrides = {"upsample_initial_channel": WIDTH, "mpd_periods": [2], "msd_scales": 1}
    bundle = build("hifigan_v1", **overrides)
    bundle.generator.load_state_dict(rw.from_jik876_generator(generator.state_dict(), bundle.generator))
    bundle.discriminators.load_state_dict(
        rw.from_jik876_discriminators(mpd.state_dict(), msd.state_dict(), bundle.discriminators))
    mel_config = jik876_mel(h, **(mel or {}))
    stats = stats if stats is not None else seeded_stats(mel_config.n_mels, seed)
    save_generator(path, bundle, bundle.generator, mel_config, stats, [], step=100, run_id=None,
                   discriminators=bundle.discriminators if discriminators else None,
                   source={"format": "jik876", "file": "g_00000100", "sha256": "0" * 64, "steps": 100})
    state = {name: {k: v.detach().clone() for k, v in module.state_dict().items()}
             for name, module in (("generator", generator), ("mpd", mpd), ("msd", msd))}
    return ImportedModel(path, overrides, h, state, mel_config, stats)
