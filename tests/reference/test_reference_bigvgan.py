"""BigVGAN-v2 / BigVGAN (base) equal NVIDIA's code (``bigvgan==2.4.1``, torch activation path):

* mapped weights give the same waveform (<= 1e-5) as ``bigvgan.bigvgan.BigVGAN(h, use_cuda_kernel=False)``:
  the published configs at 64 initial channels (every other size as published: six upsamplings,
  three AMP blocks of three dilations, SnakeBeta in log scale), with Snake parameters and biases
  moved off their initial values; and the full-size 112M ``bigvgan_v2`` on 4 mel frames (slow tier);
* the same discriminator outputs and feature maps (``bigvgan.discriminators``: MPD at 1/8 of its
  channels; the sub-band CQT discriminator at 16 filters, its transforms as published; UnivNet's MRD
  at 1/8);
* one training step from the same weights on the same real LJSpeech batch gives the same loss terms,
  learning rates and updated weights (<= 1e-5 relative) as train.py's loop with ``bigvgan.loss``, at the
  published clip norm and at one small enough to clip every network;
* the recipe rows are the published configs' values.
"""

from __future__ import annotations

import contextlib
import copy
import io
from pathlib import Path

import pytest
import torch
from torch import nn

from ganpipe.models import build
from ganpipe.models import reference_weights as rw
from ganpipe.training.recipes import RECIPES
from tests.support import bigvgan_reference as ref
from tests.support import reference_step as rs

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")
TOL = 1e-5
GRAD_TOL = 1e-4  # gradients through the six-stage generator: float32 sums of other orders, ~1e-5 relative apart


@pytest.fixture(autouse=True)
def _oracle():
    ref.require_bigvgan()


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


@pytest.mark.parametrize("variant", ["bigvgan_v2", "bigvgan_base"])
def test_generator_waveform_equals_reference(variant):
    h = ref.config(variant, upsample_initial_channel=64)
    torch.manual_seed(0)
    theirs = ref.generator(h)
    ref.randomize(theirs, seed=1)
    ours = build(variant, upsample_initial_channel=64).generator
    ours.load_state_dict(rw.from_bigvgan_generator(theirs.state_dict(), ours), strict=True)
    mel = torch.randn(2, 80, 12, generator=torch.Generator().manual_seed(2)) - 4.0
    with torch.no_grad():
        expected, got = theirs(mel), ours(mel)
    assert got.shape == expected.shape == (2, 1, 12 * 256)
    assert _rel(got, expected) <= TOL
    # a checkpoint saved after the reference's remove_weight_norm maps too (plain weights -> g, v)
    with contextlib.redirect_stdout(io.StringIO()):
        theirs.remove_weight_norm()
    fresh = build(variant, upsample_initial_channel=64).generator
    fresh.load_state_dict(rw.from_bigvgan_generator(theirs.state_dict(), fresh), strict=True)
    with torch.no_grad():
        assert _rel(fresh(mel), expected) <= TOL


@pytest.mark.slow  # the full-size 112M bigvgan_v2 built both ways and run on 4 frames: ~15 s
def test_full_size_bigvgan_v2_waveform_equals_reference():
    h = ref.config("bigvgan_v2")
    torch.manual_seed(0)
    theirs = ref.generator(h)
    ref.randomize(theirs, seed=1)
    ours = build("bigvgan_v2").generator
    ours.load_state_dict(rw.from_bigvgan_generator(theirs.state_dict(), ours), strict=True)
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in theirs.parameters())
    mel = torch.randn(1, 80, 4, generator=torch.Generator().manual_seed(2)) - 4.0
    with torch.no_grad():
        assert _rel(ours(mel), theirs(mel)) <= TOL


@pytest.mark.parametrize("variant, second", [("bigvgan_v2", "cqtd"), ("bigvgan_base", "mrd")])
def test_discriminator_outputs_equal_reference(variant, second):
    h = ref.config(variant, discriminator_channel_mult=0.125, cqtd_filters=16, cqtd_max_filters=16)
    torch.manual_seed(0)
    mpd, mrd = ref.discriminators(h)
    ref.randomize(mrd, seed=3)
    ours = build(variant, discriminator_channel_divisor=8, cqtd_filters=16, cqtd_max_filters=16).discriminators
    ours.load_state_dict(rw.from_bigvgan_discriminators(mpd.state_dict(), mrd.state_dict(), ours), strict=True)
    g = torch.Generator().manual_seed(4)
    y, y_hat = 0.3 * torch.randn(2, 1, 8192, generator=g), 0.3 * torch.randn(2, 1, 8192, generator=g)
    for theirs, mine in ((mpd, ours["mpd"]), (mrd, ours[second])):
        with torch.no_grad():
            r_real, r_fake, f_real, f_fake = theirs(y, y_hat)
            o_real, o_fake = mine(y), mine(y_hat)
        for expected, got in ((r_real, o_real), (r_fake, o_fake)):
            assert len(got.logits) == len(expected)
            for a, b in zip(got.logits, expected):
                assert _rel(a, b.flatten(1)) <= TOL
        for expected, got in ((f_real, o_real), (f_fake, o_fake)):
            for their_maps, our_maps, logits, matched in zip(expected, got.features, got.logits,
                                                             got.final_matched or [True] * len(got.logits)):
                # the reference's feature maps: ours, then the output where it is matched (MPD, MRD; not the CQT's)
                ours_fm = our_maps + [logits] if matched else our_maps
                assert len(ours_fm) == len(their_maps)
                for a, b in zip(ours_fm, their_maps):
                    assert _rel(a, b.flatten(1) if a.dim() == 2 else b) <= TOL


SIZES = {  # reduced sizes: the published configs with these changes, ours built to match
    "bigvgan_v2": ({"upsample_initial_channel": 64, "discriminator_channel_mult": 0.125, "cqtd_filters": 16,
                    "cqtd_max_filters": 16},
                   {"upsample_initial_channel": 64, "discriminator_channel_divisor": 8, "cqtd_filters": 16,
                    "cqtd_max_filters": 16}),
    "bigvgan_base": ({"upsample_initial_channel": 64, "discriminator_channel_mult": 0.125},
                     {"upsample_initial_channel": 64, "discriminator_channel_divisor": 8}),
}


def _avx512() -> bool:
    try:
        return "avx512f" in Path("/proc/cpuinfo").read_text()
    except OSError:
        return True


# On a CPU without AVX-512 (AVX2 kernels: other float32 reduction orders) bigvgan_v2's one step drifts
# past the tolerances on whole-clip sums: per-channel gradients 1e-4 to 4e-4 relative apart, a few weight
# elements of its first stage; measured the same before and after the trainer split. AVX-512 hosts pass.
_V2_ON_AVX2 = pytest.mark.xfail(not _avx512(), reason="bigvgan_v2 one step: float32 reduction order of AVX2 "
                                "kernels exceeds the 1e-4 gradient tolerance (measured up to 4e-4)", strict=False)


@pytest.mark.parametrize("variant, clip", [pytest.param("bigvgan_v2", None, marks=_V2_ON_AVX2),
                                           pytest.param("bigvgan_v2", 1e-3, marks=_V2_ON_AVX2),
                                           ("bigvgan_base", None)])
def test_one_training_step_equals_reference(variant, clip, lj_corpus, lj_wavs, tmp_path):
    theirs_sizes, our_sizes = SIZES[variant]
    h = ref.config(variant, **theirs_sizes, **({"clip_grad_norm": clip} if clip else {}))
    torch.manual_seed(0)
    reference = ref.Reference(h, ref.generator(h), *ref.discriminators(h))
    ref.randomize(reference.generator, seed=1)
    t = rs.trainer(lj_corpus, tmp_path, variant, our_sizes,
                   {"grad_clip_generator": clip, "grad_clip_discriminator": clip} if clip else {})
    t.G.load_state_dict(rw.from_bigvgan_generator(reference.generator.state_dict(), t.G))
    t.D.parts.load_state_dict(rw.from_bigvgan_discriminators(reference.mpd.state_dict(), reference.mrd.state_dict(),
                                                             t.D.parts))
    wav = ref.load_real(lj_wavs, rs.SEGMENT)
    batch = {"wav": wav, "mel": t.mel_fn(wav[:, 0])}
    expected = ref.iteration(reference, batch["mel"], wav)
    before = {k: v.clone() for k, v in t.G.state_dict().items()}
    logs = {k: float(v) for k, v in t.vocoder_step(batch).items()}
    r = t.recipe
    pairs = {"d_loss": logs["d_loss"], "mel": r.lambda_mel * logs["g_mel_l1"], "fm": r.lambda_fm * logs["g_fm"],
             "adv": logs["g_adv"], "g_loss": logs["g_loss"], "lr_g": t.opt_g.param_groups[0]["lr"],
             "lr_d": t.opt_d.param_groups[0]["lr"]}
    for term, value in pairs.items():
        assert abs(value - expected[term]) <= TOL * abs(expected[term]), (term, value, expected[term])
    assert expected["lr_g"] < h.learning_rate  # the per-update decay ran
    g_map = lambda state: rw.from_bigvgan_generator(state, t.G)  # noqa: E731
    d_map = lambda mpd, mrd: rw.from_bigvgan_discriminators(mpd, mrd, t.D.parts)  # noqa: E731
    # the gradients (Adam's first moment after its first step: 0.2 x the clipped gradient) ...
    grads_g = g_map(_moments(reference.optim_g, reference.generator))
    grads_d = d_map(_moments(reference.optim_d, reference.mpd), _moments(reference.optim_d, reference.mrd))
    ours_g, ours_d = _moments(t.opt_g, t.G), _moments(t.opt_d, t.D.parts)
    for ours, theirs in ((ours_g, grads_g), (ours_d, grads_d)):
        for key, value in ours.items():
            assert _rel(value, theirs[key]) <= GRAD_TOL, key
    # ... and the updated weights
    _check_weights(t.G.state_dict(), g_map(reference.generator.state_dict()), ours_g, r.lr_generator)
    _check_weights(t.D.parts.state_dict(), d_map(reference.mpd.state_dict(), reference.mrd.state_dict()), ours_d,
                   r.lr_discriminator)
    assert rs.weight_diff(t.G.state_dict(), before, r.lr_generator)[1] > 0.1  # the step moved G


def _moments(opt: torch.optim.Optimizer, module: nn.Module) -> dict[str, torch.Tensor]:
    """Adam's first moment of each of ``module``'s parameters, by parameter name (zeros where it has none)."""
    return {name: opt.state[p]["exp_avg"] if p in opt.state else torch.zeros_like(p)
            for name, p in module.named_parameters()}


def _check_weights(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], moments: dict[str, torch.Tensor],
                   lr: float) -> None:
    """Every updated weight within 1e-5 of its tensor's largest, except where the gradient is float noise:
    Adam's first step moves a weight by about ``lr * g / |g|`` whatever |g| is, so a gradient element at
    rounding level of its tensor (|g| <= 1e-5 max |g|, where the two sums of the same terms may even
    differ in sign) moves by +-lr either way; those may differ by up to 2 lr, and must be rare."""
    exempt = 0
    for key, w in theirs.items():
        if not w.is_floating_point():
            continue
        off = (ours[key] - w).abs() > TOL * w.abs().max()
        if key in moments and off.any():
            g = moments[key].abs()
            noise = g <= TOL * g.max()
            assert not (off & ~noise).any(), key
            assert float((ours[key] - w).abs()[off].max()) <= 2.01 * lr, key
            exempt += int(off.sum())
        else:
            assert not off.any(), key
    assert exempt <= 8, exempt


@pytest.mark.parametrize("variant", ["bigvgan_v2", "bigvgan_base"])
def test_recipe_rows_are_the_published_configs(variant):
    h = ref.config(variant)
    recipe = next(iter(RECIPES[variant].values()))
    assert (recipe.lr_generator, recipe.lr_discriminator, recipe.adam_betas) == (
        h.learning_rate, h.learning_rate, (h.adam_b1, h.adam_b2))
    assert (recipe.scheduler, recipe.lr_gamma) == ("exponential_per_update", h.lr_decay)
    assert (recipe.batch_size, recipe.segment_samples) == (h.batch_size, h.segment_size)
    assert recipe.lambda_mel == h.get("lambda_melloss", 45.0)
    assert recipe.mel_loss_framing == ("multiscale" if h.get("use_multiscale_melloss") else "jik876")
    assert recipe.grad_clip_generator == recipe.grad_clip_discriminator == h.get("clip_grad_norm", 1000.0)
    assert recipe.grad_clip_per_discriminator and recipe.update_order == "d_first"
    assert recipe.mel_loss_fmax == h.fmax_for_loss
    bundle = build(variant, discriminator_channel_divisor=32, cqtd_filters=4, cqtd_max_filters=4,
                   upsample_initial_channel=64)
    assert set(bundle.discriminators) == {"mpd", "cqtd" if h.get("use_cqtd_instead_of_mrd") else "mrd"}
    config = bundle.config
    assert config["use_tanh_at_final"] == h.get("use_tanh_at_final", True)
    assert config["use_bias_at_final"] == h.get("use_bias_at_final", True)
    assert list(config["upsample_rates"]) == h.upsample_rates
    assert [list(d) for d in config["resblock_dilation_sizes"]] == h.resblock_dilation_sizes
    assert config["activation"] == h.activation and config["snake_logscale"] == h.snake_logscale
    assert list(config["mpd_periods"]) == h.mpd_reshapes
    if config["discriminator"] == "cqtd":
        for key in ("cqtd_dilations", "cqtd_hop_lengths", "cqtd_n_octaves", "cqtd_bins_per_octaves"):
            assert list(config[key]) == h[key]
    else:
        assert [list(r) for r in config["mrd_resolutions"]] == h.resolutions


def test_a_published_filter_that_differs_is_refused():
    """A checkpoint whose anti-aliasing filter is not ours would sound different: the mapping refuses it."""
    h = ref.config("bigvgan_v2", upsample_initial_channel=64)
    theirs = ref.generator(h)
    state = copy.deepcopy(theirs.state_dict())
    key = next(k for k in state if k.endswith("upsample.filter"))
    state[key] = state[key].flip(-1) * 1.5
    ours = build("bigvgan_v2", upsample_initial_channel=64).generator
    with pytest.raises(rw.WeightMappingError, match="fixed buffer"):
        rw.from_bigvgan_generator(state, ours)
    assert isinstance(ours, nn.Module)
