"""One training iteration, ours (through :class:`~ganpipe.training.trainer.Trainer`) vs the reference
code's, from the same weights on the same batch. Shared by
tests/reference/test_reference_step.py and benchmarks/bench_reference_equivalence.py (the RESULTS table).

Each ``*_step`` function maps a freshly built reference model's weights into a Trainer built with
the matching sizes, runs one iteration both ways and returns a :class:`StepComparison`: every loss
term and the total losses side by side, and per network the largest weight difference after the
step, relative to that tensor's largest weight, plus that difference in learning-rate units (Adam's
first step moves each weight by about one learning rate).
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf
import torch
import torch.nn.functional as F

from ganpipe.config import parse_params
from ganpipe.models import reference_weights as rw
from ganpipe.training.trainer import Trainer, TrainPaths
from tests.support import oracles

SEGMENT = 2048  # samples per batch item: 2 x 2048 keeps the full-size jik876 discriminators quick on a CPU


@dataclass
class StepComparison:
    name: str
    losses: dict[str, tuple[float, float]] = field(default_factory=dict)  # term: (ours, reference)
    weights: dict[str, tuple[float, float]] = field(default_factory=dict)  # net: (max rel diff, in lr units)
    moved: dict[str, float] = field(default_factory=dict)  # net: our step's largest weight change, in lr units
    logs: dict[str, float] = field(default_factory=dict)

    def loss_rel(self) -> dict[str, float]:
        return {k: abs(a - b) / max(abs(b), 1e-12) for k, (a, b) in self.losses.items()}

    @property
    def worst_loss_rel(self) -> float:
        return max(self.loss_rel().values())

    @property
    def worst_weight_rel(self) -> float:
        return max(v[0] for v in self.weights.values())


def trainer(corpus: Any, out: Path, variant: str, overrides: dict[str, Any], train: dict[str, Any]) -> Trainer:
    params = parse_params({
        "model": {"variant": variant, "overrides": overrides},
        "train": {"steps": 10, "batch_size": 2, "segment_samples": SEGMENT, "num_workers": 0, "device": "cpu",
                  "validate_every": 1000, "checkpoint_every": 1000, **train},
        "tracking": {"enabled": False}})
    paths = TrainPaths(prepared=corpus.prepared, features=corpus.features, checkpoints=out / "ck",
                       generator=out / "g.pt", metrics=out / "m.json", curve=out / "c.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Trainer(params, paths, progress=False)


def batch(t: Trainer, wavs: list[Path], length: int = SEGMENT) -> dict[str, torch.Tensor]:
    """Two real LJSpeech segments and their feature mels (the Trainer's own mel)."""
    segs = [torch.from_numpy(sf.read(w, dtype="float32")[0][8192:8192 + length]) for w in wavs[:2]]
    wav = torch.stack(segs)[:, None]
    return {"wav": wav, "mel": t.mel_fn(wav[:, 0])}


def _snapshot(t: Trainer) -> dict[str, dict[str, torch.Tensor]]:
    return {"G": {k: v.clone() for k, v in t.G.state_dict().items()},
            "D": {k: v.clone() for k, v in t.D.parts.state_dict().items()}}


def _moved(t: Trainer, before: dict[str, dict[str, torch.Tensor]]) -> dict[str, float]:
    r = t.recipe
    return {"G": weight_diff(t.G.state_dict(), before["G"], r.lr_generator)[1],
            "D": weight_diff(t.D.parts.state_dict(), before["D"], r.lr_discriminator)[1]}


def weight_diff(ours: dict[str, torch.Tensor], ref: dict[str, torch.Tensor], lr: float) -> tuple[float, float]:
    """(max over tensors of max|Δ| / max|w|, max|Δ| / lr) of two state dicts with the same keys."""
    rel, steps = 0.0, 0.0
    for k, w in ref.items():
        if not w.is_floating_point():
            continue
        d = float((ours[k] - w).abs().max())
        rel = max(rel, d / max(float(w.abs().max()), 1e-12))
        steps = max(steps, d / lr)
    return rel, steps


# -- jik876/hifi-gan: train.py's iteration ----------------------------------------------------------
def jik876_step(corpus: Any, out: Path, wavs: list[Path], variant: str = "hifigan_v1", width: int = 32,
                steps_before: int = 0) -> StepComparison:
    m = oracles.hifigan_models()
    h = oracles.jik876_config(variant)
    h["upsample_initial_channel"] = width
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        generator, mpd, msd = m.Generator(h), m.MultiPeriodDiscriminator(), m.MultiScaleDiscriminator()
    t = trainer(corpus, out, variant, {"upsample_initial_channel": width}, {})
    t.G.load_state_dict(rw.from_jik876_generator(generator.state_dict(), t.G))
    t.D.parts.load_state_dict(rw.from_jik876_discriminators(mpd.state_dict(), msd.state_dict(), t.D.parts))
    b = batch(t, wavs)
    x, y = b["mel"], b["wav"]
    mel_spectrogram = oracles.jik876_mel_spectrogram()

    def loss_mel_spec(w: torch.Tensor) -> torch.Tensor:
        return mel_spectrogram(w, h.n_fft, h.num_mels, h.sampling_rate, h.hop_size, h.win_size, h.fmin,
                               h.fmax_for_loss)

    # train.py, as written: AdamW(lr, betas) for G and for chain(msd, mpd); D first, then G
    optim_g = torch.optim.AdamW(generator.parameters(), h.learning_rate, betas=[h.adam_b1, h.adam_b2])
    optim_d = torch.optim.AdamW(itertools.chain(msd.parameters(), mpd.parameters()), h.learning_rate,
                                betas=[h.adam_b1, h.adam_b2])
    for net in (generator, mpd, msd):
        net.train()
    ref = jik876_iteration(m, generator, mpd, msd, optim_g, optim_d, loss_mel_spec, x, y)

    before = _snapshot(t)
    logs = {k: float(v) for k, v in t.vocoder_step(b).items()}
    r = t.recipe
    c = StepComparison(f"jik876 {variant}", logs=logs, moved=_moved(t, before))
    c.losses = {"d_loss": (logs["d_loss"], ref["d_loss"]),
                "mel (x45)": (r.lambda_mel * logs["g_mel_l1"], ref["mel_x45"]),
                "feature matching (x2)": (r.lambda_fm * logs["g_fm"], ref["fm"]),
                "adversarial G": (logs["g_adv"], ref["adv"]),
                "g_loss": (logs["g_loss"], ref["g_loss"])}
    c.weights = {"G": weight_diff(t.G.state_dict(), rw.from_jik876_generator(generator.state_dict(), t.G),
                                  h.learning_rate),
                 "D": weight_diff(t.D.parts.state_dict(),
                                  rw.from_jik876_discriminators(mpd.state_dict(), msd.state_dict(), t.D.parts),
                                  h.learning_rate)}
    return c


def jik876_iteration(m: Any, generator: torch.nn.Module, mpd: torch.nn.Module, msd: torch.nn.Module,
                     optim_g: torch.optim.Optimizer, optim_d: torch.optim.Optimizer,
                     loss_mel_spec: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                     y: torch.Tensor) -> dict[str, float]:
    """One iteration of jik876's train.py loop, as written there (``m``: the oracle's models module,
    for its loss functions): D first, then G. Returns the loss terms it computed."""
    y_mel = loss_mel_spec(y.squeeze(1))
    y_g_hat = generator(x)
    y_g_hat_mel = loss_mel_spec(y_g_hat.squeeze(1))
    optim_d.zero_grad()
    y_df_hat_r, y_df_hat_g, _, _ = mpd(y, y_g_hat.detach())
    loss_disc_f, _, _ = m.discriminator_loss(y_df_hat_r, y_df_hat_g)
    y_ds_hat_r, y_ds_hat_g, _, _ = msd(y, y_g_hat.detach())
    loss_disc_s, _, _ = m.discriminator_loss(y_ds_hat_r, y_ds_hat_g)
    loss_disc_all = loss_disc_s + loss_disc_f
    loss_disc_all.backward()
    optim_d.step()
    optim_g.zero_grad()
    loss_mel = F.l1_loss(y_mel, y_g_hat_mel) * 45
    y_df_hat_r, y_df_hat_g, fmap_f_r, fmap_f_g = mpd(y, y_g_hat)
    y_ds_hat_r, y_ds_hat_g, fmap_s_r, fmap_s_g = msd(y, y_g_hat)
    loss_fm_f = m.feature_loss(fmap_f_r, fmap_f_g)
    loss_fm_s = m.feature_loss(fmap_s_r, fmap_s_g)
    loss_gen_f, _ = m.generator_loss(y_df_hat_g)
    loss_gen_s, _ = m.generator_loss(y_ds_hat_g)
    loss_gen_all = loss_gen_s + loss_gen_f + loss_fm_s + loss_fm_f + loss_mel
    loss_gen_all.backward()
    optim_g.step()
    return {"d_loss": float(loss_disc_all.detach()), "mel_x45": float(loss_mel.detach()),
            "fm": float((loss_fm_s + loss_fm_f).detach()), "adv": float((loss_gen_s + loss_gen_f).detach()),
            "g_loss": float(loss_gen_all.detach())}


# -- the ParallelWaveGAN toolkit: bin/train.py's Trainer._train_step --------------------------------
@dataclass
class ToolkitSetup:
    """One toolkit recipe at test size: its config (sizes shrunk where noted) and ours to match."""
    name: str  # oracles.TOOLKIT_CONFIGS key
    variant: str
    ours: dict[str, Any]  # our model overrides of the same sizes
    generator_params: dict[str, Any] = field(default_factory=dict)  # config["generator_params"] changes
    discriminator_params: dict[str, Any] = field(default_factory=dict)
    discriminator_type: str | None = None  # None: the config's
    map_g: Callable[..., dict[str, torch.Tensor]] = rw.from_toolkit_hifigan_generator
    map_d: Callable[..., dict[str, torch.Tensor]] = rw.from_toolkit_hifigan_discriminator


TOOLKIT_SETUPS = {
    "hifigan": ToolkitSetup("hifigan", "hifigan_v1", {"upsample_initial_channel": 32, "msd_strides": (4, 4, 4, 4, 1),
                                                      "mpd_post_kernel": 2, "discriminator_channel_divisor": 8},
                            {"channels": 32}, {"scale_discriminator_params": {"channels": 16, "max_downsample_channels": 128},
                                               "period_discriminator_params": {"channels": 4, "max_downsample_channels": 128}}),
    # melgan.v1.yaml's generator and training settings; the discriminator is MelGAN's multi-scale one
    # (our melgan variant's), the toolkit's MelGANMultiScaleDiscriminator at test width
    "melgan": ToolkitSetup("melgan", "melgan", {"ngf": 16, "discriminator_channels": 4, "discriminator_max_channels": 64},
                           {"channels": 256}, {"channels": 4, "max_downsample_channels": 64},
                           discriminator_type="MelGANMultiScaleDiscriminator",
                           map_g=rw.from_toolkit_melgan_generator, map_d=rw.from_toolkit_melgan_discriminator),
    "multiband_melgan": ToolkitSetup("multiband_melgan", "multiband_melgan",
                                     {"channels": 64, "upsample_scales": (8, 4, 2), "discriminator_max_channels": 64},
                                     {"channels": 64}, {"max_downsample_channels": 64},
                                     map_g=rw.from_toolkit_multiband_melgan_generator,
                                     map_d=rw.from_toolkit_melgan_discriminator),
    "parallel_wavegan": ToolkitSetup("parallel_wavegan", "parallel_wavegan",
                                     {"layers": 6, "residual_channels": 16, "gate_channels": 32, "skip_channels": 16,
                                      "discriminator_layers": 4, "discriminator_channels": 16},
                                     {"layers": 6, "residual_channels": 16, "gate_channels": 32, "skip_channels": 16},
                                     {"layers": 4, "conv_channels": 16},
                                     map_g=rw.from_toolkit_pwg_generator, map_d=rw.from_toolkit_pwg_discriminator),
}


def _toolkit_criteria(config: dict[str, Any]) -> dict[str, Any]:
    """The criteria bin/train.py builds from a config (the ones these recipes use)."""
    L = oracles.parallel_wavegan_losses()
    c = {"gen_adv": L.GeneratorAdversarialLoss(**config.get("generator_adv_loss_params", {})),
         "dis_adv": L.DiscriminatorAdversarialLoss(**config.get("discriminator_adv_loss_params", {}))}
    if config.get("use_stft_loss", True):
        c["stft"] = L.MultiResolutionSTFTLoss(**config["stft_loss_params"])
    if config.get("use_subband_stft_loss", False):
        c["sub_stft"] = L.MultiResolutionSTFTLoss(**config["subband_stft_loss_params"])
    if config.get("use_feat_match_loss", False):
        c["feat_match"] = L.FeatureMatchLoss(**config.get("feat_match_loss_params", {}))
    if config.get("use_mel_loss", False):
        c["mel"] = L.MelSpectrogramLoss(**config["mel_loss_params"])
    if config["generator_params"].get("out_channels", 1) > 1:
        c["pqmf"] = oracles.toolkit_pqmf(config)
    return c


def _toolkit_train_step(config: dict[str, Any], g: Any, d: Any, crit: dict[str, Any], opt: dict[str, Any],
                        sched: dict[str, Any], x: tuple[torch.Tensor, ...], y: torch.Tensor, steps: int
                        ) -> dict[str, torch.Tensor]:
    """One ``_train_step`` at step counter ``steps``, for these recipes (no VQ, no duration); returns its terms."""
    out: dict[str, torch.Tensor] = {}
    multiband = config["generator_params"].get("out_channels", 1) > 1
    if steps > config.get("generator_train_start_steps", 0):
        gen_loss = torch.zeros(())
        y_ = g(*x)
        if multiband:
            y_mb_ = y_
            y_ = crit["pqmf"].synthesis(y_mb_)
        aux = torch.zeros(())
        if "stft" in crit and config.get("use_stft_loss", True):
            sc, mag = crit["stft"](y_, y)
            aux = aux + sc + mag
        if "sub_stft" in crit:
            aux = aux * 0.5
            sub_sc, sub_mag = crit["sub_stft"](y_mb_, crit["pqmf"].analysis(y))
            aux = aux + 0.5 * (sub_sc + sub_mag)
        if "stft" in crit:
            out["stft"] = aux
        if "mel" in crit:
            out["mel"] = crit["mel"](y_, y)
            aux = aux + out["mel"]
        gen_loss = gen_loss + aux * config.get("lambda_aux", 1.0)
        if "mel" in crit:
            out["mel"] = out["mel"] * config.get("lambda_aux", 1.0)
        if steps > config["discriminator_train_start_steps"]:
            p_ = d(y_)
            adv = crit["gen_adv"](p_)
            out["adv"] = adv
            if "feat_match" in crit:
                with torch.no_grad():
                    p = d(y)
                out["fm"] = crit["feat_match"](p_, p)
                adv = adv + config["lambda_feat_match"] * out["fm"]
            gen_loss = gen_loss + config["lambda_adv"] * adv
        out["g_loss"] = gen_loss
        opt["generator"].zero_grad()
        gen_loss.backward()
        if config["generator_grad_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(g.parameters(), config["generator_grad_norm"])
        opt["generator"].step()
        sched["generator"].step()
    if steps > config["discriminator_train_start_steps"]:
        with torch.no_grad():
            y_ = g(*x)
        if multiband:
            y_ = crit["pqmf"].synthesis(y_)
        p = d(y)
        p_ = d(y_.detach())
        real_loss, fake_loss = crit["dis_adv"](p_, p)
        dis_loss = real_loss + fake_loss
        out["d_loss"] = dis_loss
        opt["discriminator"].zero_grad()
        dis_loss.backward()
        if config["discriminator_grad_norm"] > 0:
            torch.nn.utils.clip_grad_norm_(d.parameters(), config["discriminator_grad_norm"])
        opt["discriminator"].step()
        sched["discriminator"].step()
    return out


def toolkit_step(corpus: Any, out: Path, wavs: list[Path], name: str, adversarial: bool) -> StepComparison:
    """One toolkit iteration of recipe ``name`` vs ours with ``train.recipe: pwg``: with the
    adversarial losses on (the step after the discriminator start) or off (the step before)."""
    import parallel_wavegan.optimizers as toolkit_optimizers

    s = TOOLKIT_SETUPS[name]
    m = oracles.parallel_wavegan_models()
    config = oracles.toolkit_config(name)
    config["generator_params"].update(s.generator_params)
    d_type = s.discriminator_type or config.get("discriminator_type", "ParallelWaveGANDiscriminator")
    d_params = dict({} if s.discriminator_type else config["discriminator_params"])
    for key, value in s.discriminator_params.items():  # (nested dicts: updated, not replaced)
        d_params[key] = {**d_params[key], **value} if isinstance(value, dict) else value
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = getattr(m, config.get("generator_type", "ParallelWaveGANGenerator"))(**config["generator_params"])
        d = getattr(m, d_type)(**d_params)
    crit = _toolkit_criteria(config)
    start = config["discriminator_train_start_steps"]
    # the toolkit's step counter: G-only steps 1..start, adversarial from start + 1; hifigan.v1 also
    # skips G at step 1 (generator_train_start_steps: 1): compare at 2 there
    steps = start + 1 if adversarial else start
    steps = max(steps, config.get("generator_train_start_steps", 0) + 1)
    t = trainer(corpus, out, s.variant, s.ours, {"recipe": "pwg"})
    t.step = steps - 1
    pqmf = crit.get("pqmf")
    t.G.load_state_dict(s.map_g(g.state_dict(), t.G, *( [pqmf.state_dict()] if pqmf is not None else [])))
    t.D.parts.load_state_dict(s.map_d(d.state_dict(), t.D.parts))
    b = batch(t, wavs)
    mel = b["mel"]
    noise_seed = 5
    if name == "parallel_wavegan":  # noise + the mel with its aux context (replicate, as ours pads)
        torch.manual_seed(noise_seed)
        z = torch.randn(mel.shape[0], 1, mel.shape[-1] * 256)
        w = config["generator_params"]["aux_context_window"]
        x: tuple[torch.Tensor, ...] = (z, F.pad(mel, (w, w), mode="replicate"))
    else:
        x = (mel,)
    opt = {"generator": getattr(toolkit_optimizers, config.get("generator_optimizer_type", "RAdam"))(
               g.parameters(), **config["generator_optimizer_params"]),
           "discriminator": getattr(toolkit_optimizers, config.get("discriminator_optimizer_type", "RAdam"))(
               d.parameters(), **config["discriminator_optimizer_params"])}
    sched = {k: getattr(torch.optim.lr_scheduler, config.get(f"{k}_scheduler_type", "StepLR"))(
                 optimizer=opt[k], **config[f"{k}_scheduler_params"]) for k in opt}
    g.train()
    d.train()
    ref = {k: float(v.detach()) for k, v in _toolkit_train_step(config, g, d, crit, opt, sched, x, b["wav"], steps).items()}

    torch.manual_seed(noise_seed)
    before = _snapshot(t)
    logs = {k: float(v) for k, v in t.vocoder_step(b).items()}
    r = t.recipe
    c = StepComparison(f"toolkit {oracles.TOOLKIT_CONFIGS[name]} ({'adversarial' if adversarial else 'G only'})",
                       logs=logs, moved=_moved(t, before))
    pairs = {"g_loss": ("g_loss", 1.0), "d_loss": ("d_loss", 1.0), "stft": ("g_stft", r.lambda_stft),
             "mel": ("g_mel_l1", r.lambda_mel), "adv": ("g_adv", 1.0), "fm": ("g_fm", 1.0)}
    for term, (ours, weight) in pairs.items():
        if term in ref or ours in logs:
            c.losses[term] = (weight * logs.get(ours, float("nan")), ref.get(term, float("nan")))
    g_ref = s.map_g(g.state_dict(), t.G, *([pqmf.state_dict()] if pqmf is not None else []))
    c.weights = {"G": weight_diff(t.G.state_dict(), g_ref, r.lr_generator),
                 "D": weight_diff(t.D.parts.state_dict(), s.map_d(d.state_dict(), t.D.parts), r.lr_discriminator)}
    return c


# -- gemelo-ai/vocos: VocosExp.training_step ---------------------------------------------------------
VOCOS_TEST_SIZES = {"dim": 64, "intermediate_dim": 128, "num_layers": 2}  # the discriminators at full size


def vocos_step(corpus: Any, out: Path, wavs: list[Path]) -> StepComparison:
    """One ``VocosExp`` iteration (optimizer 0 = the discriminators, then 1 = the generator, each
    with its AdamW from vocos.yaml's rate) vs ours (recipe ``vocos``), the backbone at test width
    and the head with ``same`` padding (ganpipe's framing); the mel loss is the package's
    ``MelSpecReconstructionLoss`` at the corpus' sample rate."""
    from vocos.discriminators import MultiPeriodDiscriminator, MultiResolutionDiscriminator
    from vocos.loss import DiscriminatorLoss, FeatureMatchingLoss, GeneratorLoss, MelSpecReconstructionLoss

    c = oracles.vocos_config()
    t = trainer(corpus, out, "vocos", {**VOCOS_TEST_SIZES}, {})
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backbone, head = oracles.vocos_models(n_mels=t.mel_config.n_mels, padding="same", **VOCOS_TEST_SIZES)
        mpd, mrd = MultiPeriodDiscriminator(), MultiResolutionDiscriminator()

    def g_state() -> dict[str, torch.Tensor]:
        return {**{f"backbone.{k}": v for k, v in backbone.state_dict().items()},
                **{f"head.{k}": v for k, v in head.state_dict().items()}}

    t.G.load_state_dict(rw.from_vocos_generator(g_state(), t.G))
    t.D.parts.load_state_dict(rw.from_vocos_discriminators(mpd.state_dict(), mrd.state_dict(), t.D.parts))
    b = batch(t, wavs)
    x, y = b["mel"], b["wav"][:, 0]  # Vocos' batches are (B, T)
    # (PyYAML reads "5e-4" as a string: YAML 1.1 floats need a dot)
    lr, mrd_coeff, mel_coeff = (float(c[k]) for k in ("initial_learning_rate", "mrd_loss_coeff", "mel_loss_coeff"))
    opt_disc = torch.optim.AdamW([{"params": mpd.parameters()}, {"params": mrd.parameters()}], lr=lr, betas=(0.8, 0.9))
    opt_gen = torch.optim.AdamW([{"params": backbone.parameters()}, {"params": head.parameters()}], lr=lr,
                                betas=(0.8, 0.9))
    disc_loss, gen_loss, fm_loss = DiscriminatorLoss(), GeneratorLoss(), FeatureMatchingLoss()
    melspec_loss = MelSpecReconstructionLoss(sample_rate=t.mel_config.sample_rate)
    for net in (backbone, head, mpd, mrd):
        net.train()
    # optimizer_idx 0: the discriminators (train_discriminator: pretrain_mel_steps is 0)
    with torch.no_grad():
        audio_hat = head(backbone(x))
    real_mp, gen_mp, _, _ = mpd(y=y, y_hat=audio_hat)
    real_mrd, gen_mrd, _, _ = mrd(y=y, y_hat=audio_hat)
    loss_mp, loss_mp_real, _ = disc_loss(disc_real_outputs=real_mp, disc_generated_outputs=gen_mp)
    loss_mrd, loss_mrd_real, _ = disc_loss(disc_real_outputs=real_mrd, disc_generated_outputs=gen_mrd)
    loss_mp /= len(loss_mp_real)
    loss_mrd /= len(loss_mrd_real)
    d_loss = loss_mp + mrd_coeff * loss_mrd
    opt_disc.zero_grad()
    d_loss.backward()
    opt_disc.step()
    # optimizer_idx 1: the generator (Lightning freezes the other optimizer's parameters meanwhile)
    for p in [*mpd.parameters(), *mrd.parameters()]:
        p.requires_grad_(False)
    audio_hat = head(backbone(x))
    _, gen_mp, fmap_rs_mp, fmap_gs_mp = mpd(y=y, y_hat=audio_hat)
    _, gen_mrd, fmap_rs_mrd, fmap_gs_mrd = mrd(y=y, y_hat=audio_hat)
    loss_gen_mp, list_mp = gen_loss(disc_outputs=gen_mp)
    loss_gen_mrd, list_mrd = gen_loss(disc_outputs=gen_mrd)
    loss_gen_mp, loss_gen_mrd = loss_gen_mp / len(list_mp), loss_gen_mrd / len(list_mrd)
    loss_fm_mp = fm_loss(fmap_r=fmap_rs_mp, fmap_g=fmap_gs_mp) / len(fmap_rs_mp)
    loss_fm_mrd = fm_loss(fmap_r=fmap_rs_mrd, fmap_g=fmap_gs_mrd) / len(fmap_rs_mrd)
    mel_loss = melspec_loss(audio_hat, y)
    g_loss = loss_gen_mp + mrd_coeff * loss_gen_mrd + loss_fm_mp + mrd_coeff * loss_fm_mrd + mel_coeff * mel_loss
    opt_gen.zero_grad()
    g_loss.backward()
    opt_gen.step()
    ref = {"d_loss": d_loss, "mel": mel_coeff * mel_loss, "adv": loss_gen_mp + mrd_coeff * loss_gen_mrd,
           "fm": loss_fm_mp + mrd_coeff * loss_fm_mrd, "g_loss": g_loss}
    ref = {k: float(v.detach().reshape(())) for k, v in ref.items()}

    before = _snapshot(t)
    logs = {k: float(v) for k, v in t.vocoder_step(b).items()}
    r = t.recipe
    comparison = StepComparison("vocos (vocos.yaml recipe)", logs=logs, moved=_moved(t, before))
    comparison.losses = {"d_loss": (logs["d_loss"], ref["d_loss"]),
                         "mel (x45)": (r.lambda_mel * logs["g_mel_l1"], ref["mel"]),
                         "feature matching": (r.lambda_fm * logs["g_fm"], ref["fm"]),
                         "adversarial G": (logs["g_adv"], ref["adv"]),
                         "g_loss": (logs["g_loss"], ref["g_loss"])}
    comparison.weights = {
        "G": weight_diff(t.G.state_dict(), rw.from_vocos_generator(g_state(), t.G), lr),
        "D": weight_diff(t.D.parts.state_dict(),
                         rw.from_vocos_discriminators(mpd.state_dict(), mrd.state_dict(), t.D.parts), lr)}
    return comparison
