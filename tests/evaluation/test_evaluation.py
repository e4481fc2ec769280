"""The evaluate stage: folder scoring, copy-synthesis with a saved generator, Fréchet/NDB, the Griffin-Lim baseline."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from ganpipe.evaluation import evaluate_vocoder, frechet_distance, ndb, score_folders
from ganpipe.generator_io import load_generator, save_generator
from ganpipe.mel import MelConfig
from ganpipe.metrics import METRIC_KEYS
from ganpipe.models import TINY_OVERRIDES, build


@pytest.mark.slow  # every metric (MCD, PESQ, F0) on real speech: ~15 s
def test_score_folders_matches_by_name_and_reports_bad_pairs(tmp_path, lj_wavs):
    ref, gen = tmp_path / "ref", tmp_path / "gen"
    ref.mkdir()
    gen.mkdir()
    rng = np.random.default_rng(0)
    for w in lj_wavs[:4]:
        x, sr = sf.read(w, dtype="float32")
        sf.write(ref / w.name, x, sr)
    x0, sr = sf.read(lj_wavs[0], dtype="float32")
    sf.write(gen / lj_wavs[0].name, x0 + 0.003 * rng.standard_normal(len(x0)), sr)          # good pair
    x1, _ = sf.read(lj_wavs[1], dtype="float32")
    sf.write(gen / lj_wavs[1].name, x1[::2], sr // 2)                                        # wrong rate
    x2, _ = sf.read(lj_wavs[2], dtype="float32")
    bad = x2.copy()
    bad[1000] = np.nan
    sf.write(gen / lj_wavs[2].name, bad, sr, subtype="FLOAT")                                # NaN
    sf.write(gen / "orphan.wav", x0, sr)                                                     # no reference
    result = score_folders(ref, gen)
    assert result["pairs"] == 1
    assert set(result["means"]) == set(METRIC_KEYS)
    scores = result["per_utterance"][lj_wavs[0].name]
    assert scores["pesq"] > 2.0 and scores["mcd"] < 8.0 and scores["vuv_f1"] > 0.9
    reasons = {s["file"].split("/")[-1]: s["reason"] for s in result["skipped"]}
    assert "sample rates differ" in reasons[lj_wavs[1].name]
    assert "NaN" in reasons[lj_wavs[2].name] or "non-finite" in reasons[lj_wavs[2].name].lower()
    assert reasons["orphan.wav"] == "no reference with this name"
    assert reasons[lj_wavs[3].name] == "no generated file with this name"
    json.dumps(result)  # JSON-serialisable as written by `ganpipe evaluate --out`


def test_frechet_and_ndb_separate_distributions():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(200, 6))
    same = rng.normal(size=(200, 6))
    shifted = rng.normal(loc=1.5, size=(200, 6))
    assert frechet_distance(real, same) < 0.5 < 5.0 < frechet_distance(real, shifted)
    collapsed = np.repeat(real[:1], 200, axis=0) + 1e-3 * rng.normal(size=(200, 6))
    assert ndb(real, same, bins=8) <= 2
    assert ndb(real, collapsed, bins=8) >= 6


def test_copy_synthesis_evaluation_with_a_saved_generator(tmp_path, lj_wavs):
    torch.manual_seed(0)
    bundle = build("hifigan_v3", **TINY_OVERRIDES["hifigan_v3"])
    cfg = MelConfig()
    stats = {"mean": np.zeros(80, np.float32), "std": np.ones(80, np.float32)}
    path = tmp_path / "g.pt"
    save_generator(path, bundle, bundle.generator, cfg, stats, ["LJ"], step=7, run_id=None)
    loaded = load_generator(path)
    assert loaded.meta["step"] == 7 and loaded.mel_config == cfg
    x = torch.randn(1, 80, 12)
    with torch.no_grad():
        assert torch.allclose(loaded.generator(x), bundle.generator.eval()(x), atol=1e-6)
    items = [(w.stem, str(w), "LJ") for w in lj_wavs[:2]]
    items.append(("missing", str(tmp_path / "nope.wav"), "LJ"))
    result = evaluate_vocoder(loaded, items, keep_samples=1)
    assert result.summary["utterances"] == 2 and result.summary["skipped"] == 1
    assert result.skipped[0]["utt_id"] == "missing"
    assert result.summary["rtf"] > 0 and np.isfinite(result.summary["mrstft"])
    assert len(result.samples) == 1 and 0 <= len(result.samples[0][2]) - len(result.samples[0][1]) < 256



def test_generator_file_carries_discriminators_and_source(tmp_path):
    """An imported model keeps its discriminators (for fine-tuning) and where it came from."""
    bundle = build("hifigan_v3", **TINY_OVERRIDES["hifigan_v3"])
    stats = {"mean": np.zeros(80, np.float32), "std": np.ones(80, np.float32)}
    plain, full = tmp_path / "plain.pt", tmp_path / "full.pt"
    save_generator(plain, bundle, bundle.generator, MelConfig(), stats, ["LJ"], step=1, run_id=None)
    source = {"format": "jik876", "file": "g_02500000", "sha256": "ab" * 32, "steps": 2500000}
    save_generator(full, bundle, bundle.generator, MelConfig(), stats, ["LJ"], step=1, run_id=None,
                   discriminators=bundle.discriminators, source=source)
    assert load_generator(plain).discriminators_state_dict is None
    loaded = load_generator(full)
    assert loaded.meta["source"] == source and "discriminators_state_dict" not in loaded.meta
    expected = bundle.discriminators.state_dict()
    assert loaded.discriminators_state_dict.keys() == expected.keys()
    assert all(torch.equal(loaded.discriminators_state_dict[k], v) for k, v in expected.items())

def test_unconditional_evaluation_with_a_saved_wavegan(tmp_path, lj_wavs):
    from ganpipe.evaluation import evaluate_unconditional, read_clip

    torch.manual_seed(0)
    bundle = build("wavegan", **TINY_OVERRIDES["wavegan"])
    stats = {"mean": np.zeros(80, np.float32), "std": np.ones(80, np.float32)}
    path = tmp_path / "w.pt"
    save_generator(path, bundle, bundle.generator, MelConfig(), stats, ["default"], step=1, run_id=None)
    loaded = load_generator(path)
    length = 16384
    real = np.stack([read_clip(str(w), length, bundle.sample_rate) for w in lj_wavs[:12]])
    assert real.shape == (12, length) and np.abs(real).max() > 0.05
    result = evaluate_unconditional(loaded, real, n_generated=12, bins=3, keep_samples=2)
    s = result.summary
    assert s["kind"] == "unconditional" and s["generated_clips"] == 12 and s["real_clips"] == 12
    assert s["frechet_mel"] > 0 and 0 <= s["ndb"] <= s["ndb_bins"] == 3 and s["rtf"] > 0
    assert len(result.samples) == 2 and result.samples[0][1].shape == (length,)
    # real vs real scores far better than real vs an untrained generator
    from ganpipe.evaluation import frechet_distance, mel_embedding

    cfg = MelConfig(sample_rate=bundle.sample_rate)
    emb = mel_embedding(real, cfg)
    assert frechet_distance(emb[:6], emb[6:]) < s["frechet_mel"]


def test_folder_mode_with_nothing_to_score_fails_naming_both_folders(tmp_path, lj_wavs):
    from typer.testing import CliRunner

    from ganpipe.cli import app
    from ganpipe.evaluation import NoPairsError

    ref, gen = tmp_path / "EMPTY_REF", tmp_path / "EMPTY_GEN"
    ref.mkdir()
    gen.mkdir()
    out = tmp_path / "scores.json"
    result = CliRunner().invoke(app, ["evaluate", "--ref", str(ref), "--gen", str(gen), "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert str(ref) in result.output and str(gen) in result.output
    assert not out.exists()
    # names that do not match: also nothing to score, and the skipped files are named
    x, sr = sf.read(lj_wavs[0], dtype="float32")
    sf.write(ref / "a.wav", x, sr)
    sf.write(gen / "b.wav", x, sr)
    try:
        score_folders(ref, gen)
    except NoPairsError as exc:
        assert str(ref) in str(exc) and str(gen) in str(exc) and "b.wav: no reference" in str(exc)
    else:
        raise AssertionError("score_folders accepted two folders with no pair")


def test_griffin_lim_baseline_is_scored_beside_the_model(tmp_path, lj_wavs):
    from flows.evaluate import baseline_line, mlflow_metrics

    torch.manual_seed(0)
    bundle = build("hifigan_v3", **TINY_OVERRIDES["hifigan_v3"])
    stats = {"mean": np.zeros(80, np.float32), "std": np.ones(80, np.float32)}
    path = tmp_path / "g.pt"
    save_generator(path, bundle, bundle.generator, MelConfig(), stats, ["LJ"], step=1, run_id=None)
    items = []
    for w in lj_wavs[:2]:  # 1.5 s excerpts: the metrics' cost grows with the length
        x, sr = sf.read(w, dtype="float32")
        sf.write(tmp_path / w.name, x[sr: sr + 3 * sr // 2], sr)
        items.append((w.stem, str(tmp_path / w.name), "LJ"))
    loaded = load_generator(path)
    result = evaluate_vocoder(loaded, items, keep_samples=1, griffin_lim_iterations=8)
    s = result.summary
    gl = s["griffin_lim"]
    assert gl["iterations"] == 8 and set(METRIC_KEYS) <= set(gl)
    assert all(f"griffin_lim_{k}" in result.per_item.columns for k in METRIC_KEYS)
    # an untrained generator is far below the signal-processing floor
    assert gl["mcd"] < s["mcd"] and gl["mrstft"] < s["mrstft"] and gl["pesq"] > s["pesq"]
    assert list(result.baseline_samples) == [lj_wavs[0].stem]
    assert len(result.baseline_samples[lj_wavs[0].stem]) == len(result.samples[0][1])
    flat = mlflow_metrics(s)
    assert flat["eval_mcd"] == s["mcd"] and flat["eval_griffin_lim_mcd"] == gl["mcd"]
    assert "mcd" in baseline_line(s) and "WORSE" in baseline_line(s)
    # off: no baseline, no extra columns
    off = evaluate_vocoder(loaded, items[:1], keep_samples=0, griffin_lim_iterations=0)
    assert "griffin_lim" not in off.summary and baseline_line(off.summary) is None
    assert "griffin_lim_mcd" not in off.per_item.columns


def test_griffin_lim_inverts_both_mel_presets_sample_aligned(lj_wavs):
    from ganpipe.config import MEL_PRESETS
    from ganpipe.griffin_lim import GriffinLimVocoder
    from ganpipe.mel import MelSpectrogram
    from ganpipe.metrics import score_pair

    x, sr = sf.read(lj_wavs[0], dtype="float32")
    x = x[: 2 * sr]
    metric_mel = MelSpectrogram(MelConfig())
    wav = torch.from_numpy(x)
    pwg = MelConfig(**MEL_PRESETS["pwg"])
    raw = MelSpectrogram(MelConfig(**{**MEL_PRESETS["pwg"], "normalize": "none"}))(wav)
    stats = {"mean": raw.mean(dim=1).numpy(), "std": raw.std(dim=1).numpy()}
    for config, st in ((MelConfig(), None), (pwg, stats)):
        mel = MelSpectrogram(config, st)(wav)
        y = GriffinLimVocoder(config, st, n_iter=16)(mel)
        assert y.dtype == np.float32 and len(y) == mel.shape[1] * config.hop_length
        scores = score_pair(x[: len(y)], y, sr, metric_mel)
        assert scores["mcd"] < 10.0 and scores["mrstft"] < 2.5 and scores["pesq"] > 2.0, (config, scores)
        # sample-aligned with the reference: the envelopes agree best without a shift
        env = lambda s: np.convolve(np.abs(s), np.ones(256) / 256, mode="same")  # noqa: E731
        e_ref, e_gen = env(x[: len(y)]), env(y)
        corr = {lag: np.corrcoef(e_ref[2000 + lag: -2000 + lag], e_gen[2000:-2000])[0, 1] for lag in (-128, 0, 128)}
        assert corr[0] > max(corr[-128], corr[128]), corr
    # the normalisation must be undone: the normalised pwg mel read as a plain log10 mel is garbage
    mel = MelSpectrogram(pwg, stats)(wav)
    y = GriffinLimVocoder(pwg, None, n_iter=16)(mel)
    assert score_pair(x[: len(y)], y, sr, metric_mel)["mcd"] > 20.0


def test_frechet_distance_of_fewer_than_two_clips_is_a_clear_error():
    emb = np.random.default_rng(0).normal(size=(5, 4))
    with pytest.raises(ValueError, match="at least 2 clips"):  # was scipy's LinAlgError from sqrtm on a NaN covariance
        frechet_distance(emb[:1], emb)


def test_evaluating_a_frames_generator_names_why(tmp_path):
    """A generator of single mel frames has no audio to score: the evaluate stage says so (it used to
    read the generator's ``.spectrogram`` first and fail with an AttributeError)."""
    from flows.evaluate import score
    from ganpipe.config import parse_params
    from tests.support.registry_project import make_generator

    gen = make_generator(tmp_path / "g.pt", 0, variant="mel_mlp_gan")
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    (prepared / "manifest.csv").write_text("utt_id,speaker,path,split\nu1,s,wavs/u1.wav,test\nu2,s,wavs/u2.wav,test\n")
    params = parse_params({"evaluation": {"device": "cpu"}})
    with pytest.raises(ValueError, match="mel_mlp_gan generates single mel frames"):
        score.fn(params, str(gen), str(prepared))
