"""Fine-tuning from an imported published vocoder: ``train.fine_tune_from`` takes
an imported generator file, ``train.fine_tune_discriminator`` starts the discriminators from its
weights, ``mel.preset: from_model`` computes the features with the model's mel and statistics, and a
starting model that does not fit the run fails before training, naming each difference.

The imported file is made as ``ganpipe import-model`` makes one (tests/support/imported_model.py: the
jik876 reference models, seeded random weights, mapped and saved with their discriminators)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from typer.testing import CliRunner

from ganpipe.cli import app
from ganpipe.config import ConfigError, parse_params
from ganpipe.features import FeatureMel, extract_features, load_stats
from ganpipe.mel import MelConfig, MelSpectrogram
from ganpipe.training.starting_model import StartingModelError
from ganpipe.training.trainer import Trainer
from tests.conftest import REPO_ROOT
from tests.support import oracles
from tests.support.imported_model import jik876_imported
from tests.support.training_data import tiny_params, tiny_params_dict, train_paths

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")


def from_imported(imported, train=None, mel_preset: str | None = None, overrides=None):
    """Tiny training params for the imported model's architecture (variant hifigan_v1, its overrides)."""
    data = tiny_params_dict("hifigan_v1", train={"fine_tune_from": str(imported.path), "batch_size": 1,
                                                 "segment_samples": 1024, **(train or {})},
                            **({"mel": {"preset": mel_preset}} if mel_preset else {}))
    data["model"]["overrides"] = dict(overrides if overrides is not None else imported.overrides)
    return parse_params(data)


def features_with(corpus, out: Path, mel: MelConfig, stats=None) -> Path:
    extract_features(corpus.prepared / "manifest.csv", corpus.prepared, out, mel, device="cpu", workers=1,
                     stats=stats)
    return out


def params_file(path: Path, imported, **sections) -> Path:
    """The repo's params.yaml with model.* replaced by the imported architecture, plus ``sections``."""
    data = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    data["model"]["variant"], data["model"]["overrides"] = "hifigan_v1", dict(imported.overrides)
    data["mel"] = {"preset": "from_model"}
    data["train"]["fine_tune_from"] = str(imported.path)
    for key, values in sections.items():
        data[key].update(values)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# -- configuration -----------------------------------------------------------------------------------
@pytest.mark.parametrize("data, needles", [
    ({"mel": {"preset": "from_model"}}, ["from_model", "train.fine_tune_from"]),
    ({"mel": {"preset": "from_model", "n_fft": 512, "fmax": 7000}, "train": {"fine_tune_from": "m.pt"}},
     ["from_model", "remove: mel.n_fft, mel.fmax"]),
    ({"train": {"fine_tune_discriminator": True}}, ["train.fine_tune_discriminator", "train.fine_tune_from"]),
    ({"train": {"fine_tune_discriminator": "both"}}, ["train.fine_tune_discriminator", "boolean"]),
    ({"mel": {"preset": "model"}}, ["mel.preset", "'from_model'", "'hifigan'"]),
])
def test_bad_fine_tune_settings_name_the_keys(data, needles):
    with pytest.raises(ConfigError) as exc:
        parse_params(data)
    for needle in needles:
        assert needle in str(exc.value), (needle, str(exc.value))
    ok = parse_params({"mel": {"preset": "from_model"}, "train": {"fine_tune_from": "m.pt",
                                                                  "fine_tune_discriminator": True}})
    with pytest.raises(ValueError, match="starting model"):
        ok.mel_config()  # the mel is the model's: resolved from the file, never from params.yaml


# -- the validate stage resolves the model's mel -------------------------------------------------------
def test_validate_writes_the_model_mel_and_statistics(tmp_path):
    imported = jik876_imported(tmp_path / "lj_v1.pt", mel={"fmin": 40.0, "fmax": 7000.0})
    out, mel_out = tmp_path / "params.valid", tmp_path / "mel.json"

    def validate(params: Path):
        return CliRunner().invoke(app, ["validate", "-p", str(params), "--out", str(out), "--mel-out", str(mel_out)])

    res = validate(params_file(tmp_path / "p.yaml", imported))
    assert res.exit_code == 0, res.output
    resolved = FeatureMel.read(mel_out)
    assert resolved.origin == "train.fine_tune_from" and resolved.config == imported.mel
    for key in ("mean", "std"):  # float32 values, exactly
        assert resolved.stats[key].dtype == np.float32 and np.array_equal(resolved.stats[key], imported.stats[key])
    shown = CliRunner().invoke(app, ["params", "-p", str(tmp_path / "p.yaml")])
    assert shown.exit_code == 0 and json.loads(shown.output)["mel"]["fmax"] == 7000.0, shown.output

    # the default: params.yaml's mel, statistics from the train split
    res = CliRunner().invoke(app, ["validate", "-p", str(REPO_ROOT / "params.yaml"), "--mel-out", str(mel_out)])
    assert res.exit_code == 0 and FeatureMel.read(mel_out).stats is None and FeatureMel.read(mel_out).origin == "params.yaml"

    for params, needles in [
        (params_file(tmp_path / "sr.yaml", imported, audio={"sample_rate": 16000}),
         ["train.fine_tune_from", "22050 Hz", "audio.sample_rate is 16000"]),
        (params_file(tmp_path / "v.yaml", imported, model={"variant": "hifigan_v3", "overrides": {}}),
         ["model.variant: 'hifigan_v3' here, 'hifigan_v1' in the model"]),
        (params_file(tmp_path / "w.yaml", imported, model={"variant": "hifigan_v1",
                                                           "overrides": {**imported.overrides, "msd_scales": 3}}),
         ["msd_scales: 3 here, 1 in the model"]),
        (params_file(tmp_path / "f.yaml", imported, train={"fine_tune_from": str(tmp_path / "nope.pt")}),
         ["train.fine_tune_from", "file not found", "nope.pt"]),
    ]:
        mel_out.unlink(missing_ok=True)
        res = validate(params)
        assert res.exit_code == 2 and not mel_out.exists(), res.output
        for needle in needles:
            assert needle in res.output, (needle, res.output)


# -- the features stage computes with the model's mel and statistics ---------------------------------
def test_features_use_the_model_mel_and_statistics(demo_corpus, tmp_path):
    from flows.features import feature_mel_of

    imported = jik876_imported(tmp_path / "m.pt", mel={"fmin": 40.0, "fmax": 7000.0})
    params = from_imported(imported, mel_preset="from_model")
    mel_json = tmp_path / "mel.json"
    with pytest.raises(ValueError, match="validate stage"):
        feature_mel_of(params, mel_json)  # not resolved yet
    FeatureMel(MelConfig()).write(mel_json)
    with pytest.raises(ValueError, match="re-run the validate stage"):
        feature_mel_of(params, mel_json)  # resolved for another params.yaml
    FeatureMel(imported.mel, imported.stats, "train.fine_tune_from").write(mel_json)
    fm = feature_mel_of(params, mel_json)

    out = features_with(demo_corpus, tmp_path / "features", fm.config, fm.stats)
    assert MelConfig.from_dict(json.loads((out / "mel_config.json").read_text())) == imported.mel
    stats = load_stats(out)
    assert np.array_equal(stats["mean"], imported.stats["mean"]) and np.array_equal(stats["std"], imported.stats["std"])
    assert "starting model" in json.loads((out / "summary.json").read_text())["statistics"]
    index = json.loads((out / "summary.json").read_text())
    assert index["mel"]["fmax"] == 7000.0
    utt = next((demo_corpus.prepared / "wavs").rglob("*.wav"))
    wav = torch.from_numpy(sf.read(utt, dtype="float32")[0])
    stored = np.load(out / "mels" / f"{utt.stem}.npy")
    assert np.allclose(stored, MelSpectrogram(imported.mel)(wav).numpy(), atol=1e-5)  # the model's mel, computed


# -- a starting model that does not fit fails before training, naming each difference ------------------
def test_mel_or_statistics_mismatch_names_each_parameter(demo_corpus, tmp_path):
    # the demo corpus's features: the hifigan preset (0-8000 Hz, ln, no normalisation)
    imported = jik876_imported(tmp_path / "m.pt", mel={"fmin": 80.0, "fmax": 7600.0, "log_base": "10"})
    with pytest.raises(StartingModelError) as exc:
        Trainer(from_imported(imported), train_paths(demo_corpus, tmp_path / "a"), progress=False)
    message = str(exc.value)
    for needle in ("train.fine_tune_from=", "mel fmin: 0.0 in the features, 80.0 in the model",
                   "mel fmax: 8000.0 in the features, 7600.0 in the model", "mel log_base: 'e' in the features",
                   "mel.preset: from_model"):
        assert needle in message, (needle, message)
    assert "n_fft" not in message and "variant" not in message

    # a mean/variance-normalised model: the features need its statistics, not the train split's
    meanvar = jik876_imported(tmp_path / "mv.pt", mel={"normalize": "meanvar"})
    own_stats = features_with(demo_corpus, tmp_path / "own", meanvar.mel)
    corpus = type(demo_corpus)(tmp_path / "own_corpus")
    shutil.copytree(demo_corpus.prepared, corpus.prepared)
    shutil.copytree(own_stats, corpus.features)
    with pytest.raises(StartingModelError) as exc:
        Trainer(from_imported(meanvar), train_paths(corpus, tmp_path / "b"), progress=False)
    assert "mel statistics mean: differ" in str(exc.value) and "mel statistics std: differ" in str(exc.value)
    shutil.rmtree(corpus.features)
    features_with(demo_corpus, corpus.features, meanvar.mel, meanvar.stats)
    t = Trainer(from_imported(meanvar, mel_preset="from_model"), train_paths(corpus, tmp_path / "c"), progress=False)
    assert torch.equal(t.G.state_dict()["conv_pre.parametrizations.weight.original1"],
                       torch.load(meanvar.path, weights_only=True)["state_dict"]["conv_pre.parametrizations.weight.original1"])


def test_bad_starting_models_fail_before_training(demo_corpus, tmp_path):
    imported = jik876_imported(tmp_path / "with_d.pt")
    bare = jik876_imported(tmp_path / "bare.pt", discriminators=False)

    def trainer(params, name):
        return Trainer(params, train_paths(demo_corpus, tmp_path / name), progress=False)

    with pytest.raises(StartingModelError, match=r"fine_tune_discriminator: .*bare\.pt holds no discriminator weights"):
        trainer(from_imported(bare, train={"fine_tune_discriminator": True}), "bare")
    trainer(from_imported(bare), "bare_g_only")  # generator only: fine

    with pytest.raises(StartingModelError) as exc:  # another variant
        trainer(tiny_params("hifigan_v3", train={"fine_tune_from": str(imported.path)}), "variant")
    assert "model.variant: 'hifigan_v3' here, 'hifigan_v1' in the model" in str(exc.value)
    assert "model.overrides" in str(exc.value)
    with pytest.raises(StartingModelError) as exc:  # the same variant, other sizes
        trainer(from_imported(imported, overrides={"upsample_initial_channel": 32, "mpd_periods": [2, 3],
                                                   "msd_scales": 1}), "sizes")
    assert "upsample_initial_channel: 32 here, 16 in the model" in str(exc.value)
    assert "mpd_periods: [2, 3] here, [2] in the model" in str(exc.value)

    with pytest.raises(FileNotFoundError, match="fine_tune_from: file not found: .*nope.pt"):
        trainer(from_imported(imported, train={"fine_tune_from": str(tmp_path / "nope.pt")}), "missing")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(imported.path.read_bytes()[:1000])  # truncated
    with pytest.raises(StartingModelError, match=r"junk\.pt cannot be read as a checkpoint"):
        trainer(from_imported(imported, train={"fine_tune_from": str(junk)}), "junk")
    other = tmp_path / "other.pt"
    torch.save({"model": {"generator": {}}}, other)  # a ParallelWaveGAN toolkit checkpoint, not imported
    with pytest.raises(StartingModelError, match=r"other\.pt is neither a ganpipe generator file.*import-model"):
        trainer(from_imported(imported, train={"fine_tune_from": str(other)}), "other")


# -- fine-tuning with the imported discriminators -------------------------------------------------------
def reference_d_loss(imported, batch) -> float:
    """jik876 train.py's discriminator loss on ``batch`` with the imported (reference) weights."""
    from tests.support.reference_step import jik876_iteration

    m = oracles.hifigan_models()
    g, mpd, msd = (x.train() for x in imported.reference_modules())
    mel = oracles.jik876_mel_spectrogram()
    c = imported.mel
    opt_g = torch.optim.AdamW(g.parameters(), 2e-4, betas=[0.8, 0.99])
    opt_d = torch.optim.AdamW([*mpd.parameters(), *msd.parameters()], 2e-4, betas=[0.8, 0.99])
    ref = jik876_iteration(m, g, mpd, msd, opt_g, opt_d,
                           lambda w: mel(w, c.n_fft, c.n_mels, c.sample_rate, c.hop_length, c.win_length, c.fmin, None),
                           batch["mel"].clone(), batch["wav"].clone())
    return ref["d_loss"]


def first_step_d_loss(trainer) -> tuple[float, float]:
    """(our first step's discriminator loss, the reference's on the same batch)."""
    seen: dict[str, float] = {}
    step = trainer.vocoder_step

    def spy(batch):
        if not seen:
            seen["reference"] = reference_d_loss(trainer.imported, batch)
        logs = step(batch)
        seen.setdefault("ours", float(logs["d_loss"]))
        return logs

    trainer.vocoder_step = spy
    trainer.run()
    return seen["ours"], seen["reference"]


@pytest.mark.slow  # 20 CPU steps with the published discriminator layers (1 period, 1 scale): ~20 s
def test_fine_tune_starts_the_discriminators_from_the_imported_weights(demo_corpus, tmp_path):
    imported = jik876_imported(tmp_path / "lj_v1.pt")
    train = {"steps": 20, "recipe": "jik876", "discriminator_start_step": 0, "lr_generator": "auto",
             "fine_tune_discriminator": True}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = Trainer(from_imported(imported, train), train_paths(demo_corpus, tmp_path / "tuned"), progress=False)
    saved = torch.load(imported.path, weights_only=True)["discriminators_state_dict"]
    for key, value in t.D.parts.state_dict().items():
        assert torch.equal(value, saved[key]), key
    t.imported = imported
    ours, reference = first_step_d_loss(t)
    assert abs(ours - reference) <= 1e-5 * abs(reference), (ours, reference)
    assert t.step == 20 and len(t.history) == 20 and all(np.isfinite(r["d_loss"]) for r in t.history)
    moved = max(float((v - saved[k]).abs().max()) for k, v in t.D.parts.state_dict().items() if v.is_floating_point())
    assert moved > 0  # and the discriminators trained on from there

    # without train.fine_tune_discriminator the discriminators start fresh: another first loss
    train.update(steps=1, fine_tune_discriminator=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fresh = Trainer(from_imported(imported, train), train_paths(demo_corpus, tmp_path / "fresh"), progress=False)
    fresh.imported = imported
    ours, reference = first_step_d_loss(fresh)
    assert abs(ours - reference) > 0.1 * abs(reference), (ours, reference)


# -- DVC: the features follow the starting model's mel -------------------------------------------------
@pytest.mark.slow  # validate + features under DVC (prepared data stood in), then two experiments: ~1 min
def test_dvc_reruns_the_features_when_the_starting_model_has_another_mel(demo_corpus, tmp_path):
    from tests.support.fresh_clone import clean_env, fresh_clone, run

    repo = fresh_clone(tmp_path / "repo")
    env = clean_env()
    a = jik876_imported(repo / "models" / "a.pt", seed=0)
    jik876_imported(repo / "models" / "b.pt", seed=1, stats=a.stats)  # other weights, the same mel and statistics
    c = jik876_imported(repo / "models" / "c.pt", seed=2, mel={"fmax": 7000.0})  # another mel
    path = repo / "params.yaml"
    data = yaml.safe_load(path.read_text())
    data["model"].update(variant="hifigan_v1", overrides=dict(a.overrides))
    data["mel"] = {"preset": "from_model"}
    data["train"]["fine_tune_from"] = "models/a.pt"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    # the download and prepare stages' outputs stood in (the demo corpus's), recorded as if they had run
    run(["dvc", "repro", "remote_validators"], repo, env)  # validate, then the remote check download depends on
    (repo / "data" / "raw" / "demo").mkdir(parents=True)
    (repo / "data" / "raw" / "demo" / "stand-in.txt").write_text("raw\n")
    shutil.copytree(demo_corpus.prepared, repo / "data" / "prepared")
    (repo / "metrics").mkdir(exist_ok=True)
    (repo / "metrics" / "prepare.json").write_text("{}\n")
    run(["dvc", "commit", "-f", "download", "prepare"], repo, env)

    def features_of(model) -> None:
        assert MelConfig.from_dict(json.loads((repo / "data/features/mel_config.json").read_text())) == model.mel
        stats = load_stats(repo / "data/features")
        assert np.array_equal(stats["mean"], model.stats["mean"]) and np.array_equal(stats["std"], model.stats["std"])

    out = run(["dvc", "repro", "features"], repo, env)
    assert "Running stage 'features'" in out and "Running stage 'prepare'" not in out, out
    features_of(a)
    out = run(["dvc", "exp", "run", "features", "-S", "train.fine_tune_from=models/b.pt"], repo, env)
    assert "Running stage 'validate'" in out and "Running stage 'features'" not in out, out
    out = run(["dvc", "exp", "run", "features", "-S", "train.fine_tune_from=models/c.pt"], repo, env)
    assert "Running stage 'features'" in out and "Running stage 'prepare'" not in out, out
    features_of(c)
