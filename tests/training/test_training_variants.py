"""Every variant trains a few CPU steps; its generator file loads back and matches; HiFi-GAN learns."""

from __future__ import annotations

import math

import pytest
import torch

from ganpipe import generator_io
from ganpipe.models import VARIANTS
from ganpipe.training.trainer import Trainer
from tests.support.training_data import tiny_params, train_paths

VOCODERS = ["hifigan_v1", "hifigan_v2", "hifigan_v3", "melgan", "multiband_melgan", "parallel_wavegan",
            "vocos", "bigvgan_v2", "bigvgan_base"]
LATENT = ["wavegan", "specgan", "mel_mlp_gan"]


def _snapshot(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before: dict[str, torch.Tensor], module: torch.nn.Module) -> int:
    after = module.state_dict()
    return sum(not torch.equal(before[k], after[k]) for k in before)


def test_every_variant_is_covered():
    assert set(VOCODERS + LATENT) == set(VARIANTS)


@pytest.mark.parametrize("variant", VOCODERS + LATENT)
def test_variant_trains_and_its_generator_file_round_trips(variant, demo_corpus, tmp_path):
    # MB-MelGAN, PWG and MelGAN (the toolkit's melgan.v1) train G alone for 200k/100k steps in
    # their recipes: start D at step 2 here
    train = {"steps": 5}
    if variant in ("multiband_melgan", "parallel_wavegan", "melgan"):
        train["discriminator_start_step"] = 2
    params = tiny_params(variant, train=train)
    paths = train_paths(demo_corpus, tmp_path)
    trainer = Trainer(params, paths, progress=False)
    g0, d0 = _snapshot(trainer.G), _snapshot(trainer.D)
    metrics = trainer.run()

    assert metrics["steps"] == 5 and metrics["skipped_steps"] == 0
    history = trainer.history
    assert [row["step"] for row in history] == [1, 2, 3, 4, 5]
    for row in history:
        assert all(math.isfinite(v) for v in row.values()), row
    assert history[0]["g_loss"] != history[-1]["g_loss"]
    # both networks were updated (most tensors of each changed)
    assert _changed(g0, trainer.G) >= len(g0) // 2, "generator weights did not change"
    assert _changed(d0, trainer.D) >= len(d0) // 2, "discriminator weights did not change"
    last = history[-1]
    assert "d_loss" in last and "g_adv" in last  # the adversarial path ran
    if variant in ("wavegan", "specgan"):
        assert trainer.recipe.critic_steps == 5 and trainer.recipe.adversarial_loss == "wgan-gp"
        assert last["d_gp"] > 0
    if variant in ("multiband_melgan", "parallel_wavegan", "melgan"):
        assert "g_adv" not in history[0] and "g_stft" in history[0]  # G alone before step 2
    if trainer.bundle.kind == "vocoder":
        assert metrics["val_mel_l1"] > 0 and metrics["val_mel_l1_initial"] > 0

    # the generator file: plain tensors (weights_only), same outputs as the trained module
    raw = torch.load(paths.generator, map_location="cpu", weights_only=True)
    assert raw["variant"] == variant and raw["step"] == 5
    loaded = generator_io.load_generator(paths.generator)
    assert loaded.label_names == trainer.label_names
    assert loaded.mel_config == trainer.mel_config
    torch.manual_seed(0)
    if trainer.bundle.kind == "vocoder":
        x = torch.randn(1, trainer.mel_config.n_mels, 24) - 4.0
    else:
        x = trainer.G.sample_latent(2)
    trainer.G.eval()

    def run(g: torch.nn.Module) -> torch.Tensor:
        torch.manual_seed(1)  # Parallel WaveGAN draws its input noise inside forward
        with torch.no_grad():
            return g(x)

    expected, got = run(trainer.G), run(loaded.generator)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert not torch.equal(expected, torch.zeros_like(expected))


@pytest.mark.slow  # 40 training steps on real speech
def test_hifigan_learns_on_real_speech(lj_corpus, tmp_path):
    """A short CPU run of a small HiFi-GAN V1 clearly lowers the validation mel L1."""
    params = tiny_params("hifigan_v1", model={"overrides": {"upsample_initial_channel": 32}},
                         train={"steps": 40, "segment_samples": 4096, "log_every": 10, "validate_every": 40})
    metrics = Trainer(params, train_paths(lj_corpus, tmp_path), progress=False).run()
    print(f"\nHiFi-GAN (V1, upsample_initial_channel 32) 40 steps: val_mel_l1 "
          f"{metrics['val_mel_l1_initial']:.3f} -> {metrics['val_mel_l1']:.3f}")
    assert metrics["steps"] == 40 and metrics["skipped_steps"] == 0
    assert metrics["val_mel_l1"] < 0.8 * metrics["val_mel_l1_initial"]
    curve = __import__("pandas").read_csv(tmp_path / "c.csv")
    assert list(curve["step"]) == [10, 20, 30, 40]
    assert curve["g_mel_l1"].iloc[-1] < curve["g_mel_l1"].iloc[0]
