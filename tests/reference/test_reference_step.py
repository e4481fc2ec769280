"""One training iteration equals the reference code's: from identical weights on
the same real LJSpeech batch (and the same noise for Parallel WaveGAN), every loss term, the total
G and D losses and the updated G and D weights (spectral norm's power-iteration vectors too) agree
to 1e-5 relative, for jik876's HiFi-GAN recipe (the default) and the ParallelWaveGAN toolkit's
hifigan.v1 (train.recipe: pwg), melgan.v1, multi_band_melgan.v2 and parallel_wavegan.v1, before
and after the discriminator start step where the recipe has one. The reference side is the oracle
package's models, loss functions, optimisers and schedulers built from the published config, in
the order of its training loop (tests/support/reference_step.py)."""

from __future__ import annotations

import pytest

from tests.support import oracles
from tests.support import reference_step as rs

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning",
                                        "ignore::DeprecationWarning")
TOL = 1e-5


@pytest.fixture(autouse=True)
def _oracles():
    oracles.require_oracles()


def check(c: rs.StepComparison, adversarial: bool) -> None:
    assert c.losses and c.worst_loss_rel <= TOL, c.loss_rel()
    assert c.worst_weight_rel <= TOL, c.weights
    assert c.moved["G"] > 0.1, c.moved  # the step did update the generator (in learning rates)
    if adversarial:
        assert "d_loss" in c.losses and c.moved["D"] > 0.1, c.moved
    else:
        assert "d_loss" not in c.logs and c.moved["D"] == 0.0, c.moved


@pytest.mark.slow  # a full-size HiFi-GAN V1 step both ways: ~13 s
def test_jik876_hifigan_v1_one_step(lj_corpus, lj_wavs, tmp_path):
    check(rs.jik876_step(lj_corpus, tmp_path, lj_wavs), adversarial=True)


@pytest.mark.parametrize("name, adversarial", [("hifigan", True), ("melgan", False), ("melgan", True),
                                               ("multiband_melgan", False), ("multiband_melgan", True),
                                               ("parallel_wavegan", False), ("parallel_wavegan", True)])
def test_toolkit_one_step(name, adversarial, lj_corpus, lj_wavs, tmp_path):
    check(rs.toolkit_step(lj_corpus, tmp_path, lj_wavs, name, adversarial), adversarial)
