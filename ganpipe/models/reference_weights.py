"""Reference checkpoints -> ganpipe weights: one function per published format.

* jik876/hifi-gan: :func:`from_jik876_generator`, :func:`from_jik876_discriminators` (``mpd`` + ``msd``);
* kan-bayashi/ParallelWaveGAN: :func:`from_toolkit_hifigan_generator`,
  :func:`from_toolkit_hifigan_discriminator` (``HiFiGANMultiScaleMultiPeriodDiscriminator``),
  :func:`from_toolkit_melgan_generator` (also multi-band MelGAN's body),
  :func:`from_toolkit_multiband_melgan_generator` (+ its ``PQMF``),
  :func:`from_toolkit_melgan_discriminator` (``MelGANMultiScaleDiscriminator``),
  :func:`from_toolkit_pwg_generator`, :func:`from_toolkit_pwg_discriminator`;
* NVIDIA/BigVGAN: :func:`from_bigvgan_generator`, :func:`from_bigvgan_discriminators` (``mpd`` + ``mrd``,
  the CQT discriminator in v2 checkpoints).
* gemelo-ai/vocos: :func:`from_vocos_generator` (``VocosBackbone`` + ``ISTFTHead``),
  :func:`from_vocos_discriminators` (``mpd`` + ``mrd``).

Each takes the reference's state dict and the ganpipe module to receive it (a generator, or a
bundle's ``discriminators`` ``ModuleDict``) and returns a state dict for
``module.load_state_dict(..., strict=True)``. Layers are matched by name (a per-format renaming of
the reference's module paths to ours) and checked by shape; the first reference layer that has no
counterpart, or whose shape differs, raises :class:`WeightMappingError` naming both sides, and so
does a layer of ours that the reference does not provide.

Normalisation is translated, in both of PyTorch's spellings: the old hooks
(``weight_g`` / ``weight_v`` for weight norm; ``weight_orig`` / ``weight_u`` / ``weight_v`` for
spectral norm: the published checkpoints) and the parametrisations
(``parametrizations.weight.original0`` / ``original1``; ``...original`` / ``...0._u`` / ``...0._v``: ours).
A plain ``weight`` (a checkpoint saved after ``remove_weight_norm``) becomes ``g = ||w||``,
``v = w`` where our layer is weight-normalised, and a weight-normalised one is folded into a plain
weight where ours is not; either way the layer computes the same weight.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

# our parameter names (parametrisations) of a weight-normalised / spectral-normalised weight
WN_G, WN_V = "parametrizations.weight.original0", "parametrizations.weight.original1"
SN_W, SN_U, SN_V = "parametrizations.weight.original", "parametrizations.weight.0._u", "parametrizations.weight.0._v"
_SUFFIXES = (WN_G, WN_V, SN_W, SN_U, SN_V, "weight_g", "weight_v", "weight_orig", "weight_u", "weight", "bias",
             "alpha", "beta")  # the last two: BigVGAN's Snake / SnakeBeta parameters


class WeightMappingError(ValueError):
    """A reference state dict does not fit the ganpipe model (names the first layer that does not)."""


def _split_key(key: str) -> tuple[str, str]:
    for suffix in _SUFFIXES:
        if key == suffix or key.endswith("." + suffix):
            return key[: -len(suffix) - 1] if key != suffix else "", suffix
    raise WeightMappingError(f"reference tensor {key!r} is not a weight or bias of a layer")


def _layers(state: Mapping[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    """``{layer path: {param name: tensor}}`` in the reference's order, params in canonical (our) names."""
    grouped: dict[str, dict[str, Tensor]] = {}
    for key, value in state.items():
        layer, suffix = _split_key(key)
        grouped.setdefault(layer, {})[suffix] = value
    canonical: dict[str, dict[str, Tensor]] = {}
    for layer, params in grouped.items():
        spectral = "weight_orig" in params or SN_W in params
        out: dict[str, Tensor] = {}
        for suffix, value in params.items():
            if suffix == "weight_g":
                name = WN_G
            elif suffix == "weight_v":
                name = SN_V if spectral else WN_V
            elif suffix == "weight_orig":
                name = SN_W
            elif suffix == "weight_u":
                name = SN_U
            else:
                name = suffix
            out[name] = value
        canonical[layer] = out
    return canonical


def _norm_except_dim0(v: Tensor) -> Tensor:
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))


def _fit_normalisation(params: dict[str, Tensor], wanted: set[str]) -> dict[str, Tensor]:
    """Convert between a plain weight and weight norm's (g, v) when the two sides differ."""
    params = dict(params)
    if WN_G in wanted and "weight" in params and WN_G not in params:
        w = params.pop("weight")
        params[WN_G], params[WN_V] = _norm_except_dim0(w), w
    elif "weight" in wanted and WN_G in params and "weight" not in params:
        g, v = params.pop(WN_G), params.pop(WN_V)
        params["weight"] = g * v / _norm_except_dim0(v)
    return params


def map_state_dict(
    reference: Mapping[str, Tensor],
    ours: nn.Module,
    rename: Callable[[str], str],
    source: str,
    derived: Callable[[str], bool] = lambda key: False,
) -> dict[str, Tensor]:
    """Rename every reference layer with ``rename`` and check it against ``ours`` by name and shape.

    Tensors of ours for which ``derived(key)`` holds (fixed buffers ganpipe computes itself, e.g. the
    PQMF filters) are kept from ``ours`` and not expected in the reference.
    """
    target = ours.state_dict()
    target_layers: dict[str, set[str]] = {}
    for key in target:
        if derived(key):
            continue
        layer, suffix = _split_key(key)
        target_layers.setdefault(layer, set()).add(suffix)
    mapped: dict[str, Tensor] = {}
    for layer, params in _layers(reference).items():
        our_layer = rename(layer)
        if our_layer not in target_layers:
            raise WeightMappingError(
                f"{source}: reference layer {layer!r} (ganpipe name {our_layer!r}) has no counterpart in "
                f"{type(ours).__name__}: the model was built with other settings than the checkpoint's")
        params = _fit_normalisation(params, target_layers[our_layer])
        for name, value in params.items():
            key = f"{our_layer}.{name}" if our_layer else name
            if key not in target:
                raise WeightMappingError(
                    f"{source}: reference layer {layer!r} has {name!r}, which ganpipe's {our_layer!r} lacks "
                    f"(it has {sorted(target_layers[our_layer])}): a different normalisation")
            if tuple(target[key].shape) != tuple(value.shape):
                raise WeightMappingError(
                    f"{source}: reference layer {layer!r} {name} has shape {tuple(value.shape)}, ganpipe's "
                    f"{our_layer!r} {tuple(target[key].shape)}: the model was built with other sizes")
            mapped[key] = value.detach().clone().to(target[key].dtype)
    mapped.update({key: value.detach().clone() for key, value in target.items() if derived(key)})
    missing = [key for key in target if key not in mapped]
    if missing:
        raise WeightMappingError(f"{source}: ganpipe's {missing[0]!r} has no counterpart in the reference "
                                 f"state dict ({len(missing)} tensors missing)")
    return mapped


def _renamer(rules: list[tuple[str, str | Callable[[re.Match], str]]]) -> Callable[[str], str]:
    compiled = [(re.compile(pattern), repl) for pattern, repl in rules]

    def rename(layer: str) -> str:
        for pattern, repl in compiled:
            layer = pattern.sub(repl, layer)  # type: ignore[arg-type]
        return layer

    return rename


def _mrf_block(blocks_per_stage: int) -> Callable[[re.Match], str]:
    def repl(m: re.Match) -> str:
        n = int(m.group(1))
        return f"mrfs.{n // blocks_per_stage}.blocks.{n % blocks_per_stage}."

    return repl


def _resblock_convs(resblock: str) -> list[tuple[str, str]]:
    """jik876's / the toolkit's conv lists of a residual block -> ours (ResBlock1: dilated + plain)."""
    if resblock == "1":
        return [(r"\.convs1\.", ".dilated."), (r"\.convs2\.", ".plain.")]
    return [(r"\.convs1\.", ".convs.")]  # the toolkit without use_additional_convs = ResBlock2


# -- jik876/hifi-gan ---------------------------------------------------------------------------------
def from_jik876_generator(state: Mapping[str, Tensor], generator: nn.Module) -> dict[str, Tensor]:
    """jik876's ``Generator`` (``g_XXXXXXXX``'s ``generator`` entry) -> :class:`.hifigan.HiFiGANGenerator`."""
    config = generator.config
    rename = _renamer([(r"^resblocks\.(\d+)\.", _mrf_block(len(config.resblock_kernel_sizes))),
                       *_resblock_convs("1")])  # its ResBlock2 calls them convs, as ours does
    return map_state_dict(state, generator, rename, "jik876 Generator")


def from_jik876_discriminators(mpd: Mapping[str, Tensor], msd: Mapping[str, Tensor],
                               discriminators: nn.ModuleDict) -> dict[str, Tensor]:
    """jik876's ``MultiPeriodDiscriminator`` + ``MultiScaleDiscriminator`` (``do_XXXXXXXX``'s ``mpd`` /
    ``msd``) -> a HiFi-GAN bundle's ``discriminators`` (same layer names under ``mpd.`` / ``msd.``)."""
    state = {**{f"mpd.{k}": v for k, v in mpd.items()}, **{f"msd.{k}": v for k, v in msd.items()}}
    return map_state_dict(state, discriminators, lambda layer: layer, "jik876 MPD/MSD")


# -- kan-bayashi/ParallelWaveGAN ---------------------------------------------------------------------
def from_toolkit_hifigan_generator(state: Mapping[str, Tensor], generator: nn.Module) -> dict[str, Tensor]:
    """The toolkit's ``HiFiGANGenerator`` -> :class:`.hifigan.HiFiGANGenerator`."""
    config = generator.config
    rename = _renamer([
        (r"^input_conv$", "conv_pre"),
        (r"^upsamples\.(\d+)\.1$", r"ups.\1"),
        (r"^blocks\.(\d+)\.", _mrf_block(len(config.resblock_kernel_sizes))),
        *_resblock_convs(config.resblock),
        (r"\.(\d+)\.1$", r".\1"),  # Sequential(activation, conv) -> conv
        (r"^output_conv\.1$", "conv_post"),
    ])
    return map_state_dict(state, generator, rename, "ParallelWaveGAN HiFiGANGenerator")


_SCALE_LAYERS = [(r"\.layers\.(\d+)\.0$", r".convs.\1"), (r"\.layers\.(\d+)$", ".conv_post")]


def from_toolkit_hifigan_discriminator(state: Mapping[str, Tensor], discriminators: nn.ModuleDict
                                       ) -> dict[str, Tensor]:
    """The toolkit's ``HiFiGANMultiScaleMultiPeriodDiscriminator`` -> a HiFi-GAN bundle's discriminators
    (build ours with ``msd_strides`` / ``mpd_post_kernel`` of the toolkit's layout)."""
    rename = _renamer([*_SCALE_LAYERS, (r"\.convs\.(\d+)\.0$", r".convs.\1"), (r"\.output_conv$", ".conv_post")])
    return map_state_dict(state, discriminators, rename, "ParallelWaveGAN HiFiGANMultiScaleMultiPeriodDiscriminator")


_MELGAN_BODY = [(r"^melgan\.", "stack.layers."), (r"\.stack\.", ".block."), (r"\.skip_layer$", ".shortcut")]


def from_toolkit_melgan_generator(state: Mapping[str, Tensor], generator: nn.Module) -> dict[str, Tensor]:
    """The toolkit's ``MelGANGenerator`` -> :class:`.melgan.MelGANGenerator` (the same Sequential layout)."""
    return map_state_dict(state, generator, _renamer(_MELGAN_BODY), "ParallelWaveGAN MelGANGenerator")


def from_toolkit_multiband_melgan_generator(state: Mapping[str, Tensor], generator: nn.Module,
                                            pqmf: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """The toolkit's 4-band ``MelGANGenerator`` (+ the trainer's ``PQMF`` buffers, optional) ->
    :class:`.multiband_melgan.MultiBandMelGANGenerator`. The toolkit's ``updown_filter`` is the
    fixed band selector, which ganpipe derives itself; without ``pqmf`` ours (same design) is kept."""
    mapped = map_state_dict(state, generator, _renamer(_MELGAN_BODY), "ParallelWaveGAN multi-band MelGANGenerator",
                            derived=lambda key: key.startswith("pqmf."))
    if pqmf is not None:
        for name in ("analysis_filter", "synthesis_filter"):
            if name not in pqmf:
                raise WeightMappingError(f"ParallelWaveGAN PQMF: the state dict has no {name!r}")
            ours = mapped[f"pqmf.{name}"]
            if tuple(pqmf[name].shape) != tuple(ours.shape):
                raise WeightMappingError(f"ParallelWaveGAN PQMF: {name} has shape {tuple(pqmf[name].shape)}, "
                                         f"ganpipe's {tuple(ours.shape)}: other subbands / taps")
            mapped[f"pqmf.{name}"] = pqmf[name].detach().clone().to(ours.dtype)
    return mapped


def from_toolkit_melgan_discriminator(state: Mapping[str, Tensor], discriminators: nn.ModuleDict
                                      ) -> dict[str, Tensor]:
    """The toolkit's ``MelGANMultiScaleDiscriminator`` -> a MelGAN / MB-MelGAN bundle's ``msd``."""
    rename = _renamer([(r"^", "msd."), (r"\.layers\.(\d+)$", ".conv_post")])
    return map_state_dict(state, discriminators, rename, "ParallelWaveGAN MelGANMultiScaleDiscriminator")


def from_toolkit_pwg_generator(state: Mapping[str, Tensor], generator: nn.Module) -> dict[str, Tensor]:
    """The toolkit's ``ParallelWaveGANGenerator`` -> :class:`.parallel_wavegan.ParallelWaveGANGenerator`."""
    rename = _renamer([
        (r"^upsample_net\.conv_in$", "upsample.conv_in"),
        (r"^upsample_net\.upsample\.up_layers\.(\d+)$", lambda m: f"upsample.convs.{(int(m.group(1)) - 1) // 2}"),
        (r"^conv_layers\.", "blocks."),
        (r"\.conv1x1_aux$", ".conv_aux"), (r"\.conv1x1_out$", ".conv_out"), (r"\.conv1x1_skip$", ".conv_skip"),
        (r"^last_conv_layers\.", "output."),
    ])
    return map_state_dict(state, generator, rename, "ParallelWaveGAN ParallelWaveGANGenerator")


def from_toolkit_pwg_discriminator(state: Mapping[str, Tensor], discriminators: nn.ModuleDict
                                   ) -> dict[str, Tensor]:
    """The toolkit's ``ParallelWaveGANDiscriminator`` (convs at even ``conv_layers`` indices, the last one
    the output conv) -> a Parallel WaveGAN bundle's ``pwg``."""
    indices = sorted({int(m.group(1)) for k in state if (m := re.match(r"conv_layers\.(\d+)\.", k))})
    last = indices[-1] if indices else -1

    def rename(layer: str) -> str:
        m = re.fullmatch(r"conv_layers\.(\d+)", layer)
        if not m:
            return f"pwg.{layer}"
        index = int(m.group(1))
        return "pwg.conv_post" if index == last else f"pwg.convs.{index // 2}"

    return map_state_dict(state, discriminators, rename, "ParallelWaveGAN ParallelWaveGANDiscriminator")


# -- NVIDIA/BigVGAN ----------------------------------------------------------------------------------
def _fixed_buffers(state: Mapping[str, Tensor], ours: Mapping[str, Tensor], fixed: Callable[[str], bool],
                   rename: Callable[[str], str], source: str) -> dict[str, Tensor]:
    """``state`` without the reference's fixed (computed, untrained) buffers, each of which must equal
    ours where we keep it (a checkpoint made with other filters would sound different here)."""
    kept = {}
    for key, value in state.items():
        if not fixed(key):
            kept[key] = value
            continue
        our_key = rename(key)
        if our_key in ours:  # (ours may hold the reference's filter once per channel: compared broadcast)
            mine = ours[our_key]
            try:
                theirs = value.to(mine.dtype).expand_as(mine)
            except RuntimeError:
                theirs = None
            if theirs is None or not torch.allclose(mine, theirs, atol=1e-6):
                raise WeightMappingError(f"{source}: fixed buffer {key!r} differs from ganpipe's {our_key!r} "
                                         "(another filter design or size)")
    return kept


def _bigvgan_generator_renamer(blocks_per_stage: int) -> Callable[[str], str]:
    def repl(m: re.Match) -> str:
        n = int(m.group(1))
        return f"amps.{n // blocks_per_stage}.blocks.{n % blocks_per_stage}."

    return _renamer([(r"^ups\.(\d+)\.0", r"ups.\1"), (r"^resblocks\.(\d+)\.", repl)])


def from_bigvgan_generator(state: Mapping[str, Tensor], generator: nn.Module) -> dict[str, Tensor]:
    """BigVGAN's ``BigVGAN`` (``bigvgan_generator.pt``'s ``generator`` entry, with or without weight norm)
    -> :class:`.bigvgan.BigVGANGenerator`. Its anti-aliasing filters (buffers in its checkpoints) are
    checked against ours and not copied: ganpipe computes them."""
    rename = _bigvgan_generator_renamer(len(generator.config.resblock_kernel_sizes))
    fixed = lambda key: key.endswith(".filter")  # noqa: E731
    state = _fixed_buffers(state, {k: v for k, v in generator.named_buffers()}, fixed, rename, "BigVGAN generator")
    return map_state_dict(state, generator, rename, "BigVGAN generator")


_CQT_BUFFERS = re.compile(r"\.(cqt_transform\.\w+|resample\.kernel)$")


def from_bigvgan_discriminators(mpd: Mapping[str, Tensor], mrd: Mapping[str, Tensor],
                                discriminators: nn.ModuleDict) -> dict[str, Tensor]:
    """BigVGAN's ``MultiPeriodDiscriminator`` + its second discriminator (``bigvgan_discriminator_optimizer.pt``'s
    ``mpd`` / ``mrd``: the ``MultiScaleSubbandCQTDiscriminator`` in v2 checkpoints, UnivNet's
    ``MultiResolutionDiscriminator`` in v1's) -> a BigVGAN bundle's ``discriminators`` (``mpd`` + ``cqtd`` / ``mrd``).
    The CQT's kernels and the resampler's filter (buffers of nnAudio / torchaudio) must equal ours."""
    second = "cqtd" if "cqtd" in discriminators else "mrd"
    state = {**{f"mpd.{k}": v for k, v in mpd.items()}, **{f"{second}.{k}": v for k, v in mrd.items()}}
    ours = discriminators.state_dict()
    fixed = lambda key: bool(_CQT_BUFFERS.search(key))  # noqa: E731
    state = _fixed_buffers(state, ours, fixed, lambda key: key, "BigVGAN discriminators")
    return map_state_dict(state, discriminators, lambda layer: layer, "BigVGAN MPD/" + second.upper(), derived=fixed)


# -- gemelo-ai/vocos ---------------------------------------------------------------------------------
# not generator weights: the mel front end and the head's window (fixed buffers); in a VocosExp
# (Lightning) checkpoint also its discriminators and loss modules (from_vocos_discriminators takes those)
_VOCOS_NOT_GENERATOR = re.compile(r"^(feature_extractor\.|head\.istft\.|multiperioddisc\.|multiresddisc\.|"
                                  r"melspec_loss\.)")


def from_vocos_generator(state: Mapping[str, Tensor], generator: nn.Module) -> dict[str, Tensor]:
    """Vocos' ``VocosBackbone`` + ``ISTFTHead`` (the published ``pytorch_model.bin``: the ``Vocos``
    module's state, ``backbone.*`` / ``head.*``; its ``feature_extractor.*`` and the head's window are
    fixed buffers, not taken; a ``VocosExp`` training checkpoint's discriminators and loss modules
    are skipped too) -> :class:`.vocos.VocosGenerator` (build ours with the same sizes and the head's
    ``padding``). The ConvNeXt blocks' layer scales (``gamma``) are copied by name; any other tensor
    without a counterpart raises :class:`WeightMappingError`."""
    if any(k.startswith("backbone.norm.scale") or ".norm.scale." in k for k in state):
        raise WeightMappingError("Vocos: this checkpoint's backbone uses AdaLayerNorm (the EnCodec-conditioned "
                                 "Vocos, one norm per bandwidth); only the mel Vocos (LayerNorm) is supported")
    if not any(k.startswith("backbone.") for k in state) or not any(k.startswith("head.out.") for k in state):
        raise WeightMappingError("Vocos: the state dict has no backbone.* / head.out.* tensors (not a Vocos "
                                 "VocosBackbone + ISTFTHead checkpoint)")
    gammas = {k: v for k, v in state.items() if k.endswith(".gamma") and not _VOCOS_NOT_GENERATOR.match(k)}
    layers = {k: v for k, v in state.items() if not k.endswith(".gamma") and not _VOCOS_NOT_GENERATOR.match(k)}
    rename = _renamer([(r"^backbone\.convnext\.", "blocks."), (r"^backbone\.final_layer_norm$", "final_norm"),
                       (r"^backbone\.", ""), (r"^head\.out$", "head")])
    mapped = map_state_dict(layers, generator, rename, "Vocos backbone + ISTFTHead",
                            derived=lambda key: key.endswith(".gamma"))
    target = generator.state_dict()
    ours = {key for key in target if key.endswith(".gamma")}
    for key, value in gammas.items():
        name = rename(key[: -len(".gamma")]) + ".gamma"
        if name not in ours:
            raise WeightMappingError(f"Vocos: reference layer scale {key!r} (ganpipe name {name!r}) has no "
                                     "counterpart: the checkpoint has more ConvNeXt layers than the model")
        if tuple(value.shape) != tuple(target[name].shape):
            raise WeightMappingError(f"Vocos: {key} has shape {tuple(value.shape)}, ganpipe's {name} "
                                     f"{tuple(target[name].shape)}: the model was built with other sizes")
        mapped[name] = value.detach().clone().to(target[name].dtype)
        ours.discard(name)
    if ours:
        raise WeightMappingError(f"Vocos: ganpipe's {sorted(ours)[0]!r} has no counterpart in the reference "
                                 f"state dict ({len(ours)} layer scales missing)")
    return mapped


def from_vocos_discriminators(mpd: Mapping[str, Tensor], mrd: Mapping[str, Tensor],
                              discriminators: nn.ModuleDict) -> dict[str, Tensor]:
    """Vocos' ``MultiPeriodDiscriminator`` + ``MultiResolutionDiscriminator`` (``VocosExp``'s
    ``multiperioddisc`` / ``multiresddisc``) -> a vocos bundle's ``discriminators`` (same layer
    names under ``mpd.`` / ``mrd.``; the resolution discriminators' STFT windows are fixed buffers)."""
    state = {**{f"mpd.{k}": v for k, v in mpd.items()},
             **{f"mrd.{k}": v for k, v in mrd.items() if not k.endswith(".spec_fn.window")}}
    if any(k.endswith(".emb.weight") for k in state):
        raise WeightMappingError("Vocos discriminators: bandwidth-conditioned (emb) discriminators of the "
                                 "EnCodec Vocos are not supported")
    return map_state_dict(state, discriminators, lambda layer: layer, "Vocos MPD/MRD")
