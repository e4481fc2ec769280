"""The HiFi-GAN (jik876) loss terms, ours vs the reference's own functions:
from the same discriminator weights on the same real LJSpeech segment and generated waveform,
the full-band mel L1 (jik876's mel_spectrogram with fmax_for_loss: null), feature_loss (over the
fmaps *including* each discriminator's final output), generator_loss and discriminator_loss agree."""

from __future__ import annotations

import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from ganpipe.config import parse_params
from ganpipe.mel import MelConfig, MelSpectrogram
from ganpipe.models import build
from ganpipe.models import reference_weights as rw
from ganpipe.training import losses as L
from ganpipe.training.loss_mel import mel_loss_config
from ganpipe.training.recipes import resolve
from tests.support import oracles

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs() / b.abs().clamp_min(1e-12))


def test_jik876_loss_terms_equal_ours(lj_wavs):
    oracles.require_oracles()
    m = oracles.hifigan_models()
    mel_spectrogram = oracles.jik876_mel_spectrogram()
    recipe = resolve("hifigan_v1", parse_params({}).train)
    assert recipe.mel_loss_fmax is None and recipe.fm_include_final  # jik876's defaults
    _, ref_mpd, ref_msd = oracles.jik876_models("hifigan_v1")
    ours = build("hifigan_v1")
    ours.discriminators.load_state_dict(
        rw.from_jik876_discriminators(ref_mpd.state_dict(), ref_msd.state_dict(), ours.discriminators))
    for d in (ref_mpd, ref_msd, ours.discriminators):
        d.eval()  # spectral norm without a power-iteration update (the same sigma both ways)
    wav, _ = sf.read(lj_wavs[1], dtype="float32")
    y = torch.from_numpy(wav[8192:16384])[None, None]
    y_hat = (y + 0.05 * torch.randn(y.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)

    # mel L1 on the full band, as train.py: F.l1_loss(y_mel, y_g_hat_mel) with fmax_for_loss = None
    ref_mel = F.l1_loss(mel_spectrogram(y[:, 0], 1024, 80, 22050, 256, 1024, 0, None),
                        mel_spectrogram(y_hat[:, 0], 1024, 80, 22050, 256, 1024, 0, None))
    loss_mel = MelSpectrogram(mel_loss_config(MelConfig(), recipe))
    ours_mel = torch.mean(torch.abs(loss_mel(y_hat[:, 0]) - loss_mel(y[:, 0])))
    assert rel(ours_mel, ref_mel) <= 1e-5
    band_8k = MelSpectrogram(MelConfig())  # the old loss: the 0-8 kHz feature mel, not jik876's
    assert rel(torch.mean(torch.abs(band_8k(y_hat[:, 0]) - band_8k(y[:, 0]))), ref_mel) > 1e-3

    with torch.no_grad():
        r_mpd, g_mpd, fr_mpd, fg_mpd = ref_mpd(y, y_hat)
        r_msd, g_msd, fr_msd, fg_msd = ref_msd(y, y_hat)
        out = ours.discriminators
        o_r = [out["mpd"](y), out["msd"](y)]
        o_g = [out["mpd"](y_hat), out["msd"](y_hat)]
    from ganpipe.models.outputs import merge_outputs

    our_r, our_g = merge_outputs(o_r), merge_outputs(o_g)
    ref_fm = m.feature_loss(fr_mpd, fg_mpd) + m.feature_loss(fr_msd, fg_msd)  # includes its factor 2
    ours_fm = recipe.lambda_fm * L.feature_matching(*L.feature_maps(our_r, our_g, recipe.fm_include_final))
    assert rel(ours_fm, ref_fm) <= 1e-5
    hidden_only = recipe.lambda_fm * L.feature_matching(*L.feature_maps(our_r, our_g, False))
    assert rel(hidden_only, ref_fm) > 1e-4  # the old feature matching left the outputs out

    ref_gen = m.generator_loss(g_mpd)[0] + m.generator_loss(g_msd)[0]
    assert rel(L.generator_loss("lsgan", our_g.logits), ref_gen) <= 1e-5
    ref_disc = m.discriminator_loss(r_mpd, g_mpd)[0] + m.discriminator_loss(r_msd, g_msd)[0]
    assert rel(L.discriminator_loss("lsgan", our_r.logits, our_g.logits), ref_disc) <= 1e-5
