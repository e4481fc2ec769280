"""Non-finite losses, fine-tuning, label conditioning (AC-GAN) and MLflow logging of training."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ganpipe import generator_io
from ganpipe.training import losses
from ganpipe.training.trainer import Trainer, TrainingDiverged, train
from tests.support.training_data import tiny_params, train_paths


def _nan_on_calls(monkeypatch, bad: set[int] | None) -> list[int]:
    """Make the generator's adversarial loss NaN on the given call numbers (all when None)."""
    original = losses.generator_loss
    calls: list[int] = []

    def patched(kind, fake, *args, **kwargs):
        calls.append(len(calls))
        out = original(kind, fake, *args, **kwargs)
        return out * float("nan") if bad is None or calls[-1] in bad else out

    monkeypatch.setattr(losses, "generator_loss", patched)
    return calls


def test_nonfinite_steps_are_skipped_and_counted(demo_corpus, tmp_path, monkeypatch):
    calls = _nan_on_calls(monkeypatch, {1, 2, 4})
    paths = train_paths(demo_corpus, tmp_path)
    trainer = Trainer(tiny_params("hifigan_v3", train={"steps": 5}), paths, progress=False)
    metrics = trainer.run()
    assert len(calls) == 8  # 5 good steps + 3 skipped
    assert metrics["steps"] == 5 and metrics["skipped_steps"] == 3
    assert json.loads(paths.metrics.read_text())["skipped_steps"] == 3
    assert all(math.isfinite(v) for row in trainer.history for v in row.values())
    assert all(torch.isfinite(p).all() for p in trainer.G.parameters())
    assert all(torch.isfinite(p).all() for p in trainer.D.parameters())
    assert trainer.opt_g.state_dict()["state"][0]["step"].item() == 5  # skipped steps did not update G


def test_persistent_nonfinite_losses_stop_training(demo_corpus, tmp_path, monkeypatch):
    _nan_on_calls(monkeypatch, None)
    paths = train_paths(demo_corpus, tmp_path)
    params = tiny_params("hifigan_v3", train={"steps": 50, "max_nonfinite_steps": 4})
    with pytest.raises(TrainingDiverged, match=r"non-finite for 4 consecutive steps \(at step 0\).*learning rate"):
        train(params, paths, progress=False)
    assert not paths.generator.exists() and not paths.metrics.exists()


def test_fine_tune_starts_from_the_given_generator(demo_corpus, tmp_path):
    first = train_paths(demo_corpus, tmp_path / "first")
    trainer = Trainer(tiny_params("hifigan_v3", train={"steps": 2, "checkpoint_every": 1}), first, progress=False)
    trainer.run()
    saved = generator_io.load_generator(first.generator).generator.state_dict()
    fresh = Trainer(tiny_params("hifigan_v3"), train_paths(demo_corpus, tmp_path / "fresh"), progress=False)
    assert not all(torch.equal(fresh.G.state_dict()[k], v) for k, v in saved.items())

    for source in (first.generator, next((tmp_path / "first" / "ck").glob("*/step_000000001.pt"))):
        params = tiny_params("hifigan_v3", train={"steps": 2, "fine_tune_from": str(source), "lr_generator": 1e-3})
        tuned = Trainer(params, train_paths(demo_corpus, tmp_path / f"tuned_{source.stem}"), progress=False)
        expected = torch.load(source, weights_only=True)
        expected = expected["state_dict"] if "state_dict" in expected else expected["generator"]
        assert tuned.step == 0
        for k, v in expected.items():
            assert torch.equal(tuned.G.state_dict()[k], v), k
        assert tuned.run()["steps"] == 2

    with pytest.raises(FileNotFoundError, match="fine_tune_from"):
        Trainer(tiny_params("hifigan_v3", train={"fine_tune_from": str(tmp_path / "nope.pt")}),
                train_paths(demo_corpus, tmp_path / "x"), progress=False)
    with pytest.raises(ValueError, match="do not fit"):
        Trainer(tiny_params("hifigan_v3", model={"overrides": {"upsample_initial_channel": 8}},
                            train={"fine_tune_from": str(first.generator)}),
                train_paths(demo_corpus, tmp_path / "y"), progress=False)


@pytest.mark.parametrize("variant", ["hifigan_v3", "wavegan"])
def test_label_conditioning_with_ac_gan(variant, demo_corpus, tmp_path):
    params = tiny_params(variant, model={"conditioning": "labels", "ac_gan": True}, train={"steps": 3})
    paths = train_paths(demo_corpus, tmp_path)
    trainer = Trainer(params, paths, progress=False)
    assert len(trainer.label_names) == 2
    assert trainer.bundle.discriminator_uses_labels and trainer.bundle.discriminator_classifies
    metrics = trainer.run()
    assert metrics["steps"] == 3 and metrics["skipped_steps"] == 0
    last = trainer.history[-1]
    assert last["d_ac"] > 0 and last["g_ac"] > 0 and all(math.isfinite(v) for v in last.values())

    loaded = generator_io.load_generator(paths.generator)
    assert loaded.label_names == trainer.label_names
    g = loaded.generator
    torch.manual_seed(0)
    if variant == "wavegan":
        z = g.sample_latent(1).repeat(2, 1)
        with torch.no_grad():
            out = g(z, labels=torch.tensor([0, 1]))
    else:
        mel = (torch.randn(1, trainer.mel_config.n_mels, 16) - 4.0).repeat(2, 1, 1)
        with torch.no_grad():
            out = g(mel, speaker=torch.tensor([0, 1]))
        with pytest.raises(ValueError):
            g(mel)  # a speaker-conditioned generator insists on speaker ids
    assert (out[0] - out[1]).abs().max() > 1e-4  # the label changes the output


@pytest.mark.slow  # training with an MLflow store: ~15 s on the shared CI cores
def test_mlflow_logs_params_metrics_and_samples(demo_corpus, tmp_path, monkeypatch):
    import mlflow
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = {"enabled": True, "tracking_uri": uri, "artifact_location": str(tmp_path / "art"),
                "experiment": "ganpipe-test"}
    paths = train_paths(demo_corpus, tmp_path / "run")
    params = tiny_params("hifigan_v3", tracking=tracking, train={"steps": 2, "validate_every": 2})
    metrics = train(params, paths, progress=False)

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("ganpipe-test")
    assert exp.artifact_location == (tmp_path / "art").resolve().as_uri()
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    assert torch.load(paths.generator, weights_only=True)["run_id"] == run.info.run_id
    p = run.data.params
    assert p["model.variant"] == "hifigan_v3" and p["train.steps"] == "2" and p["recipe.lambda_mel"] == "45.0"
    assert run.data.tags["variant"] == "hifigan_v3"
    g_loss = client.get_metric_history(run.info.run_id, "g_loss")
    assert [m.step for m in g_loss] == [1, 2] and all(math.isfinite(m.value) for m in g_loss)
    val = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "val_mel_l1")}
    assert set(val) == {0, 2}
    assert val[0] == pytest.approx(metrics["val_mel_l1_initial"], abs=1e-5)
    assert val[2] == pytest.approx(metrics["val_mel_l1"], abs=1e-5)
    assert run.data.metrics["final_steps"] == 2

    files = [f.path for f in client.list_artifacts(run.info.run_id, "samples/step_0000002")]
    names = [f.rsplit("/", 1)[-1] for f in files]
    assert any(n.endswith("_generated.wav") for n in names) and any(n.endswith("_reference.wav") for n in names)
    assert any(n.endswith("_mel.png") for n in names)
    local = client.download_artifacts(run.info.run_id, next(f for f in files if f.endswith(".png")), str(tmp_path))
    assert open(local, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert [f.path for f in client.list_artifacts(run.info.run_id, "curves")] == ["curves/c.csv"]

    # a resumed training continues the same MLflow run
    train(tiny_params("hifigan_v3", tracking=tracking, train={"steps": 3, "validate_every": 2}), paths,
          progress=False)
    (again,) = client.search_runs([exp.experiment_id])
    assert again.info.run_id == run.info.run_id and again.data.tags["resumed_at_step"] == "2"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "g_loss")] == [1, 2, 3]

    # a run that diverges is closed as FAILED (and leaves no active run behind)
    _nan_on_calls(monkeypatch, None)
    with pytest.raises(TrainingDiverged):
        train(tiny_params("hifigan_v3", tracking=tracking, train={"max_nonfinite_steps": 2}),
              train_paths(demo_corpus, tmp_path / "diverged"), progress=False)
    assert mlflow.active_run() is None
    statuses = sorted(r.info.status for r in client.search_runs([exp.experiment_id]))
    assert statuses == ["FAILED", "FINISHED"]


def test_nonfinite_discriminator_updates_are_skipped_and_counted(demo_corpus, tmp_path, monkeypatch):
    calls = []
    original = losses.discriminator_loss

    def patched(*args, **kwargs):
        calls.append(1)
        out = original(*args, **kwargs)
        return out * float("nan") if len(calls) in (2, 3) else out

    monkeypatch.setattr(losses, "discriminator_loss", patched)
    paths = train_paths(demo_corpus, tmp_path)
    trainer = Trainer(tiny_params("hifigan_v3", train={"steps": 4}), paths, progress=False)
    metrics = trainer.run()
    assert metrics["steps"] == 4 and metrics["skipped_d_updates"] == 2 and metrics["skipped_steps"] == 0
    assert trainer.opt_d.state_dict()["state"][0]["step"].item() == 2  # the NaN updates never applied
    assert all(torch.isfinite(p).all() for p in trainer.D.parameters())


def _reference_segment(ds, i: int) -> dict[str, torch.Tensor]:
    """VocoderSegments.__getitem__ as it was: np.load(mmap) + sf.info + sf.read per item."""
    import numpy as np
    import soundfile as sf

    c = ds.corpus
    mel = np.load(c.mels[i], mmap_mode="r")
    start = int(torch.randint(0, max(mel.shape[1] - ds.frames, 0) + 1, ()).item())
    m = np.array(mel[:, start:start + ds.frames], dtype=np.float32)
    info = sf.info(c.wavs[i])
    a0 = start * ds.hop
    wav, _ = sf.read(c.wavs[i], start=a0, stop=min(a0 + ds.segment, info.frames), dtype="float32")
    if m.shape[1] < ds.frames:
        m = np.pad(m, ((0, 0), (0, ds.frames - m.shape[1])), mode="edge")
    if len(wav) < ds.segment:
        wav = np.pad(wav, (0, ds.segment - len(wav)))
    return {"mel": torch.from_numpy(ds.normalise(m)), "wav": torch.from_numpy(wav).unsqueeze(0),
            "label": torch.tensor(c.labels[i])}


def test_vocoder_segments_direct_reads_match_numpy_and_soundfile(tmp_path):
    """The direct-read fast path (mel .npy and WAV byte offsets parsed once) returns exactly what
    np.load + soundfile return, for PCM-16 and float WAVs, short utterances and segment ends; other
    files (float64 / Fortran-order mels, FLAC) take the general path."""
    import numpy as np
    import soundfile as sf

    from ganpipe.training.data import Corpus, VocoderSegments, npy_layout, wav_layout

    rng = np.random.default_rng(0)
    hop, n_mels = 256, 8
    cases = [  # (samples, wav format/subtype, mel dtype, mel order)
        (9000, ("WAV", "PCM_16"), np.float32, "C"), (3000, ("WAV", "PCM_16"), np.float32, "C"),
        (7777, ("WAV", "FLOAT"), np.float32, "C"), (1000, ("WAV", "FLOAT"), np.float32, "C"),
        (6000, ("WAV", "PCM_24"), np.float64, "C"), (5000, ("FLAC", "PCM_16"), np.float32, "F"),
    ]
    wavs, mels = [], []
    for k, (n, (fmt, subtype), dtype, order) in enumerate(cases):
        wav_path = tmp_path / f"u{k}.{'flac' if fmt == 'FLAC' else 'wav'}"
        sf.write(wav_path, (0.5 * rng.standard_normal(n)).clip(-1, 1), 22050, format=fmt, subtype=subtype)
        mel = np.asarray(rng.standard_normal((n_mels, n // hop)), dtype=dtype, order=order)
        np.save(tmp_path / f"u{k}.npy", mel)
        wavs.append(str(wav_path))
        mels.append(str(tmp_path / f"u{k}.npy"))
    corpus = Corpus([f"u{k}" for k in range(len(cases))], wavs, mels, [0] * len(cases), list(range(len(cases))), ["a"])
    assert [npy_layout(m) is not None for m in mels] == [True, True, True, True, False, False]
    assert [wav_layout(w) is not None for w in wavs] == [True, True, True, True, False, False]

    mean, std = rng.standard_normal(n_mels).astype(np.float32), rng.random(n_mels).astype(np.float32) + 0.5
    for normalise in (False, True):
        ds = VocoderSegments(corpus, 2048, hop, mean if normalise else None, std if normalise else None)
        for i in range(len(cases)):
            for seed in range(12):  # random starts, the last segment of the file included
                torch.manual_seed(seed)
                got = ds[i]
                torch.manual_seed(seed)
                want = _reference_segment(ds, i)
                for key in ("mel", "wav", "label"):
                    assert got[key].dtype == want[key].dtype and torch.equal(got[key], want[key]), (i, seed, key)
                assert got["mel"].shape == (n_mels, 8) and got["wav"].shape == (1, 2048)
    assert list(ds._mel_at > 0) == [True, True, True, True, False, False]  # layouts parsed once, kept
    assert list(ds._wav_at > 0) == [True, True, True, True, False, False]

    # a corpus listing files twice parses each file once (one slot per distinct file pair)
    twice = Corpus(*(getattr(corpus, f) * 2 for f in ("utt_ids", "wavs", "mels", "frames", "labels")), ["a"])
    ds = VocoderSegments(twice, 2048, hop)
    assert list(ds._slot) == list(range(6)) * 2
    for i in range(12):
        torch.manual_seed(i)
        got = ds[i]
        torch.manual_seed(i)
        assert torch.equal(got["wav"], _reference_segment(ds, i)["wav"])
    assert list(ds._mel_at[6:]) == [-1] * 6 and list(ds._wav_at[6:]) == [-1] * 6
