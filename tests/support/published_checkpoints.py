"""Published-format checkpoints made with the reference packages, saved exactly as each codebase saves
them (for the import tests; nothing is downloaded).

* jik876/hifi-gan (``train.py``): ``g_{steps:08d}`` = ``{'generator': state_dict}`` of a ``Generator``
  built with ``torch.nn.utils.weight_norm`` (old ``weight_g`` / ``weight_v`` names); ``do_{steps:08d}``
  = ``{'mpd', 'msd', 'optim_g', 'optim_d', 'steps', 'epoch'}``; beside them its ``config.json``.
* the ParallelWaveGAN toolkit (``bin/train.py``: ``Trainer.save_checkpoint``):
  ``checkpoint-{steps}steps.pkl`` = ``{'optimizer': {...}, 'scheduler': {...}, 'steps', 'epochs',
  'model': {'generator', 'discriminator'}}`` with the optimisers and schedulers its trainer builds from
  the config; ``config.yml`` as its trainer dumps it (``version`` added); ``stats.h5`` written with
  ``parallel_wavegan.utils.write_hdf5`` (``mean``, ``scale``: the StandardScaler of its
  ``compute_statistics``, here over a few real clips).

Weights are PyTorch's seeded initialisation, each tensor then scaled by ``1 + 0.1 N(0, 1)`` so that no
two layers are alike and weight norm's ``g`` differs from ``||v||``.
"""

from __future__ import annotations

import copy
import json
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch
import yaml

from tests.support import oracles

STEPS = 100


def perturb(module: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.parameters():
            tensor.mul_(1 + 0.1 * torch.randn(tensor.shape, generator=g))


# -- jik876/hifi-gan ------------------------------------------------------------------------------
def jik876_checkpoint(folder: Path, config: dict[str, Any], seed: int = 0) -> tuple[Path, Path, Path]:
    """(g_00000100, do_00000100, config.json) of a jik876 model of ``config``."""
    m = oracles.hifigan_models()
    h = oracles.AttrDict(config)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.nn.utils.weight_norm
        generator, mpd, msd = m.Generator(h), m.MultiPeriodDiscriminator(), m.MultiScaleDiscriminator()
    for i, module in enumerate((generator, mpd, msd)):
        perturb(module, seed + i)
    optim_g = torch.optim.AdamW(generator.parameters(), h.learning_rate, betas=[h.adam_b1, h.adam_b2])
    optim_d = torch.optim.AdamW([*msd.parameters(), *mpd.parameters()], h.learning_rate, betas=[h.adam_b1, h.adam_b2])
    folder.mkdir(parents=True, exist_ok=True)
    g_file, do_file, config_file = folder / f"g_{STEPS:08d}", folder / f"do_{STEPS:08d}", folder / "config.json"
    torch.save({"generator": generator.state_dict()}, g_file)
    torch.save({"mpd": mpd.state_dict(), "msd": msd.state_dict(), "optim_g": optim_g.state_dict(),
                "optim_d": optim_d.state_dict(), "steps": STEPS, "epoch": 3}, do_file)
    config_file.write_text(json.dumps(config, indent=4))
    return g_file, do_file, config_file


def jik876_reference(g_file: Path, config: dict[str, Any], wav: np.ndarray) -> tuple[torch.Tensor, np.ndarray]:
    """jik876 ``inference.py``'s way: its mel of the waveform, its generator loaded from the file,
    ``eval()`` + ``remove_weight_norm()``; -> (mel, float waveform before its int16 conversion)."""
    h = oracles.AttrDict(config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        generator = oracles.hifigan_models().Generator(h)
    generator.load_state_dict(torch.load(g_file, map_location="cpu", weights_only=True)["generator"])
    generator.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generator.remove_weight_norm()
    mel_fn = oracles.jik876_mel_spectrogram()
    with torch.no_grad():
        mel = mel_fn(torch.FloatTensor(wav).unsqueeze(0), h.n_fft, h.num_mels, h.sampling_rate, h.hop_size,
                     h.win_size, h.fmin, h.fmax)
        return mel, generator(mel).squeeze().numpy()


# -- the ParallelWaveGAN toolkit ------------------------------------------------------------------
def toolkit_logmelfilterbank() -> Any:
    """The toolkit's ``bin/preprocess.logmelfilterbank`` (its module imports ``kaldiio`` for Kaldi
    scp datasets, which this function does not use: an empty stand-in module is registered when the
    package is absent)."""
    oracles._scipy_kaiser_shim()
    try:
        import kaldiio  # noqa: F401
    except ImportError:
        sys.modules.setdefault("kaldiio", types.ModuleType("kaldiio"))
    from parallel_wavegan.bin.preprocess import logmelfilterbank

    return logmelfilterbank


def toolkit_mel(config: dict[str, Any], audio: np.ndarray) -> np.ndarray:
    """``(frames, num_mels)`` as the toolkit's preprocess stage computes it."""
    return toolkit_logmelfilterbank()(audio, sampling_rate=config["sampling_rate"], hop_size=config["hop_size"],
                                      fft_size=config["fft_size"], win_length=config["win_length"],
                                      window=config["window"], num_mels=config["num_mels"], fmin=config["fmin"],
                                      fmax=config["fmax"])


def toolkit_checkpoint(folder: Path, config: dict[str, Any], stats_wavs: list[Path], seed: int = 0,
                       stats_format: str = "h5") -> Path:
    """``checkpoint-100steps.pkl`` + ``config.yml`` + ``stats.h5`` (or ``stats.npy``) in ``folder``."""
    oracles._scipy_kaiser_shim()
    import parallel_wavegan
    import parallel_wavegan.models
    import parallel_wavegan.optimizers
    from parallel_wavegan.utils import write_hdf5

    config = {**config, "version": parallel_wavegan.__version__, "distributed": False, "outdir": str(folder),
              "rank": 0, "format": "hdf5" if stats_format == "h5" else "npy"}
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "config.yml", "w") as f:  # dumped before the models are built, as its trainer does
        yaml.dump(config, f, Dumper=yaml.Dumper)
    config = copy.deepcopy(config)  # the toolkit's constructors update their params dicts in place
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        generator = getattr(parallel_wavegan.models, config.get("generator_type", "ParallelWaveGANGenerator"))(
            **config["generator_params"])
        discriminator = getattr(parallel_wavegan.models,
                                config.get("discriminator_type", "ParallelWaveGANDiscriminator"))(
            **config["discriminator_params"])
    perturb(generator, seed)
    perturb(discriminator, seed + 1)
    model = {"generator": generator, "discriminator": discriminator}
    optimizer, scheduler = {}, {}
    for name in model:
        opt_class = getattr(parallel_wavegan.optimizers, config.get(f"{name}_optimizer_type", "RAdam"))
        optimizer[name] = opt_class(model[name].parameters(), **config[f"{name}_optimizer_params"])
        sched_class = getattr(torch.optim.lr_scheduler, config.get(f"{name}_scheduler_type", "StepLR"))
        scheduler[name] = sched_class(optimizer=optimizer[name], **config[f"{name}_scheduler_params"])
    state = {"optimizer": {k: v.state_dict() for k, v in optimizer.items()},
             "scheduler": {k: v.state_dict() for k, v in scheduler.items()},
             "steps": STEPS, "epochs": 2,
             "model": {k: v.state_dict() for k, v in model.items()}}
    checkpoint = folder / f"checkpoint-{STEPS}steps.pkl"
    torch.save(state, checkpoint)
    mels = np.concatenate([toolkit_mel(config, sf.read(p)[0]) for p in stats_wavs])
    mean, scale = mels.mean(0), mels.std(0)  # sklearn StandardScaler's mean_ / scale_
    if stats_format == "h5":
        write_hdf5(str(folder / "stats.h5"), "mean", mean.astype(np.float32))
        write_hdf5(str(folder / "stats.h5"), "scale", scale.astype(np.float32))
    else:
        np.save(folder / "stats.npy", np.stack([mean, scale]).astype(np.float32))
    return checkpoint


def toolkit_reference(checkpoint: Path, audio: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The toolkit's decode: ``parallel_wavegan.utils.load_model`` (config and stats beside the
    checkpoint), ``remove_weight_norm()``, ``eval()``, its ``logmelfilterbank`` of the audio and
    ``model.inference(c, normalize_before=True)`` (Parallel WaveGAN's noise drawn under
    ``torch.manual_seed(seed)``) -> (mel (frames, num_mels), waveform)."""
    return toolkit_reference_with(checkpoint, checkpoint.parent / "config.yml", None, audio, seed)


def toolkit_reference_with(checkpoint: Path, config_file: Path, stats: Path | None, audio: np.ndarray,
                           seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """:func:`toolkit_reference` with the config and statistics given (its decode's ``--config``,
    load_model's ``stats``)."""
    oracles._scipy_kaiser_shim()
    from parallel_wavegan.utils import load_model

    with open(config_file) as f:
        config = yaml.load(f, Loader=yaml.Loader)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = load_model(str(checkpoint), config, None if stats is None else str(stats))
        model.remove_weight_norm()
    model.eval()
    c = toolkit_mel(config, audio)
    torch.manual_seed(seed)
    with torch.no_grad():
        y = model.inference(c, normalize_before=True).view(-1).numpy()
    return c, y


def read_reference_yaml(name: str) -> dict[str, Any]:
    """A published toolkit config of ../shared/reference/parallel-wavegan by file name."""
    return yaml.safe_load((oracles.REFERENCE / "parallel-wavegan" / name).read_text())
