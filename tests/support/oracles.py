"""The reference implementations as test oracles: jik876/hifi-gan (the package ``hifi-gan``) and
kan-bayashi/ParallelWaveGAN (``parallel-wavegan``), both pinned in requirements-test.lock and
installed by scripts/test.sh only. Each reference model is built from its *published* config in
``../shared/reference/`` (read in place). Tests get them through :func:`require_oracles`, which
skips with the reason when the packages or the configs are absent (under ``CI=true`` it fails instead).

Two shims, nothing else patched: ``parallel_wavegan.layers.pqmf`` imports ``scipy.signal.kaiser``,
which scipy >= 1.13 moved to ``scipy.signal.windows`` (the old name is restored first); jik876's
``meldataset.mel_spectrogram`` (its mel loss) calls ``librosa.filters.mel`` positionally (keyword-only
since librosa 0.10) and ``torch.stft`` without ``return_complex`` (required since torch 2.0):
:func:`jik876_mel_spectrogram` gives it those two calls in their old form and runs its code unchanged.
"""

from __future__ import annotations

import importlib
import json
import warnings
from types import ModuleType
from typing import Any

import yaml

from tests.conftest import REPO_ROOT, missing_shared

REFERENCE = REPO_ROOT.parent / "shared" / "reference"
JIK876_CONFIGS = {"hifigan_v1": "config_v1.json", "hifigan_v2": "config_v2.json", "hifigan_v3": "config_v3.json"}
TOOLKIT_CONFIGS = {"hifigan": "hifigan.v1.yaml", "melgan": "melgan.v1.yaml",
                   "multiband_melgan": "multi_band_melgan.v2.yaml", "parallel_wavegan": "parallel_wavegan.v1.yaml"}


def _scipy_kaiser_shim() -> None:
    import scipy.signal
    import scipy.signal.windows

    if not hasattr(scipy.signal, "kaiser"):
        scipy.signal.kaiser = scipy.signal.windows.kaiser


def require_oracles() -> None:
    """Skip the calling test unless both reference packages and the published configs are here
    (under ``CI=true``: fail, naming what is missing)."""
    if not REFERENCE.is_dir():
        missing_shared(f"published reference configs not found at {REFERENCE} (expected ../shared beside the repo)")
    for module, package in (("hifi_gan.models", "hifi-gan==0.0.2"), ("parallel_wavegan.models", "parallel-wavegan==0.6.1")):
        _scipy_kaiser_shim()
        try:
            importlib.import_module(module)
        except ImportError as exc:
            missing_shared(f"{package} is not installed (scripts/test.sh installs it from requirements-test.lock): {exc}")


def hifigan_models() -> ModuleType:
    import hifi_gan.models

    return hifi_gan.models


def parallel_wavegan_models() -> ModuleType:
    _scipy_kaiser_shim()
    import parallel_wavegan.models

    return parallel_wavegan.models


def parallel_wavegan_losses() -> ModuleType:
    _scipy_kaiser_shim()
    import parallel_wavegan.losses

    return parallel_wavegan.losses


class _TorchWithRealStft:
    """``torch`` as jik876's meldataset saw it (1.x): ``stft`` returns real/imaginary in a last axis."""

    def __getattr__(self, name: str) -> Any:
        import torch

        if name == "stft":
            return lambda *args, **kwargs: torch.view_as_real(torch.stft(*args, return_complex=True, **kwargs))
        return getattr(torch, name)


def jik876_mel_spectrogram() -> Any:
    """jik876's ``mel_spectrogram(y, n_fft, num_mels, sampling_rate, hop_size, win_size, fmin, fmax)``."""
    import hifi_gan.meldataset as md
    from librosa.filters import mel

    if not isinstance(md.torch, _TorchWithRealStft):
        md.librosa_mel_fn = lambda sr, n_fft, n_mels, fmin, fmax: mel(sr=sr, n_fft=n_fft, n_mels=n_mels,
                                                                      fmin=fmin, fmax=fmax)
        md.torch = _TorchWithRealStft()
    return md.mel_spectrogram


class AttrDict(dict):
    """jik876's ``env.AttrDict``: the models read ``h.upsample_rates`` etc."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def jik876_config(variant: str) -> AttrDict:
    return AttrDict(json.loads((REFERENCE / "hifi-gan" / JIK876_CONFIGS[variant]).read_text()))


def toolkit_config(name: str) -> dict[str, Any]:
    return yaml.safe_load((REFERENCE / "parallel-wavegan" / TOOLKIT_CONFIGS[name]).read_text())


def jik876_models(variant: str) -> tuple[Any, Any, Any]:
    """(Generator, MultiPeriodDiscriminator, MultiScaleDiscriminator) of jik876's ``config_vN.json``."""
    m = hifigan_models()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.nn.utils.weight_norm is deprecated
        return m.Generator(jik876_config(variant)), m.MultiPeriodDiscriminator(), m.MultiScaleDiscriminator()


def toolkit_models(name: str) -> tuple[Any, Any, dict[str, Any]]:
    """(generator, discriminator, config) of the toolkit's LJSpeech recipe ``name``, as its trainer builds them."""
    m = parallel_wavegan_models()
    config = toolkit_config(name)
    g_type = config.get("generator_type", "ParallelWaveGANGenerator")
    d_type = config.get("discriminator_type", "ParallelWaveGANDiscriminator")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        generator = getattr(m, g_type)(**config["generator_params"])
        discriminator = getattr(m, d_type)(**config["discriminator_params"])
    return generator, discriminator, config


def toolkit_pqmf(config: dict[str, Any]) -> Any:
    _scipy_kaiser_shim()
    from parallel_wavegan.layers import PQMF

    return PQMF(**config.get("pqmf_params", {}))


VOCOS_PACKAGE = "vocos==0.1.0"


def require_vocos() -> None:
    """Skip the calling test unless ``vocos`` (test-only, requirements-test.lock) imports and its
    published ``vocos.yaml`` is in ../shared/reference (under ``CI=true``: fail, naming what is missing)."""
    if not (REFERENCE / "vocos" / "vocos.yaml").is_file():
        missing_shared(f"the published vocos.yaml not found in {REFERENCE / 'vocos'}")
    try:
        for module in ("vocos.models", "vocos.heads", "vocos.discriminators", "vocos.loss",
                       "vocos.feature_extractors"):
            importlib.import_module(module)
    except ImportError as exc:
        missing_shared(f"{VOCOS_PACKAGE} is not installed (scripts/test.sh installs it from "
                       f"requirements-test.lock): {exc}")


def vocos_config() -> dict[str, Any]:
    """vocos.yaml's ``model.init_args`` (feature_extractor, backbone, head, loss coefficients...)."""
    return yaml.safe_load((REFERENCE / "vocos" / "vocos.yaml").read_text())["model"]["init_args"]


def vocos_models(n_mels: int | None = None, padding: str | None = None, **backbone: Any) -> tuple[Any, Any]:
    """(VocosBackbone, ISTFTHead) of vocos.yaml; ``n_mels`` / ``padding`` / backbone sizes replaced when given."""
    from vocos.heads import ISTFTHead
    from vocos.models import VocosBackbone

    c = vocos_config()
    b = {**c["backbone"]["init_args"], **backbone}
    if n_mels is not None:
        b["input_channels"] = n_mels
    h = dict(c["head"]["init_args"], dim=b["dim"])
    if padding is not None:
        h["padding"] = padding
    return VocosBackbone(**b), ISTFTHead(**h)
