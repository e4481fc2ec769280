"""Unconditional generators (WaveGAN, SpecGAN) as registered models: promotion on frechet_mel, the
pyfunc contract (latents, or n + seed), the synthesis API and ``ganpipe synthesize --n``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.support.registry_project import (
    aliases,
    client_for,
    eval_json,
    make_generator,
    make_project,
    mlflow_template,
    versions,
)

WAVEGAN = "ganpipe-demo-wavegan"
SPECGAN = "ganpipe-demo-specgan"
SAMPLES = 16384  # WaveGAN / SpecGAN clip length (about 1 s at 16 kHz)


def make_latent_generator(path: Path, seed: int, variant: str = "wavegan", labels: list[str] | None = None,
                          step: int = 7) -> Path:
    """A tiny untrained WaveGAN / SpecGAN file (SpecGAN with fitted spectrogram statistics);
    ``labels``: class-conditioned on these names."""
    from ganpipe.generator_io import save_generator
    from ganpipe.mel import MelConfig
    from ganpipe.models import TINY_OVERRIDES, build

    torch.manual_seed(seed)
    bundle = build(variant, **TINY_OVERRIDES[variant], **({"n_classes": len(labels)} if labels else {}))
    if variant == "specgan":
        t = torch.arange(SAMPLES) / 16000.0
        clips = torch.stack([torch.sin(2 * torch.pi * f * t) * 0.3 for f in (220.0, 440.0, 880.0)]).unsqueeze(1)
        bundle.generator.spectrogram.fit_statistics(clips + 0.01 * torch.randn_like(clips))
    stats = {"mean": np.zeros(80, np.float32), "std": np.ones(80, np.float32)}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_generator(path, bundle, bundle.generator, MelConfig(), stats, labels or ["default"], step=step, run_id=None)
    return path


def uncond_json(path: Path, frechet_mel: float | None, variant: str = "wavegan", step: int = 7,
                ndb_fraction: float = 0.3) -> Path:
    """metrics/eval.json as the evaluate stage writes it for an unconditional variant."""
    return eval_json(path, step=step, variant=variant, kind="unconditional", real_clips=12, generated_clips=12,
                     frechet_mel=frechet_mel, ndb=3, ndb_bins=10, ndb_fraction=ndb_fraction, rtf=50.0)


def reference_audio(path: Path, z: torch.Tensor, labels: torch.Tensor | None = None) -> np.ndarray:
    """What the generator file itself makes of latents ``z`` (the evaluation's audio path)."""
    from ganpipe.generator_io import load_generator

    loaded = load_generator(path)
    with torch.inference_mode():
        x = loaded.generator(z, **({} if labels is None else {"labels": labels}))
        if loaded.bundle.variant == "specgan":
            x = loaded.generator.spectrogram.to_audio(x)
    return x.numpy()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """A project whose registry holds a class-conditioned WaveGAN (with its ONNX export), a SpecGAN
    and a tiny vocoder, each the champion of its own registered model."""
    from ganpipe.model_registry import register_generator

    root = tmp_path_factory.mktemp("uncond") / "proj"
    params = make_project(root, mlflow_template(tmp_path_factory), {"export_onnx": True})
    gens = {"wavegan": make_latent_generator(root / "w.pt", seed=3, labels=["zero", "one", "two"]),
            "specgan": make_latent_generator(root / "s.pt", seed=4, variant="specgan")}
    regs = {v: register_generator(g, uncond_json(root / f"{v}.json", 42.0, variant=v), params, root)
            for v, g in gens.items()}
    assert all(r.decision == "champion" for r in regs.values())
    no_onnx = make_project(root, None, {"export_onnx": False})
    voc = register_generator(make_generator(root / "v.pt", seed=5), eval_json(root / "v.json", mcd=7.0), no_onnx, root)
    assert voc.model_name == "ganpipe-demo-hifigan_v3"
    return root, f"sqlite:///{root / '.mlflow' / 'mlflow.db'}", gens


def load(uri: str, name: str):
    import mlflow

    mlflow.set_tracking_uri(uri)
    return mlflow.pyfunc.load_model(f"models:/{name}@champion")


# ------------------------------------------------------------------------------------------------
def test_unconditional_promotion_on_frechet_mel(tmp_path, tmp_path_factory):
    from ganpipe.model_registry import RegistryError, register_generator

    root = tmp_path / "proj"
    params = make_project(root, mlflow_template(tmp_path_factory))
    first = register_generator(make_latent_generator(root / "a.pt", 1), uncond_json(root / "a.json", 50.0),
                               params, root)
    assert (first.model_name, first.version, first.decision, first.kind) == (WAVEGAN, "1", "champion",
                                                                            "unconditional")
    assert first.primary_metric == "frechet_mel" and not first.higher_is_better and first.new_value == 50.0
    # worse (frechet_mel: lower is better): candidate only
    worse = register_generator(make_latent_generator(root / "b.pt", 2), uncond_json(root / "b.json", 60.0),
                               params, root)
    assert (worse.version, worse.decision, worse.champion_before_value) == ("2", "candidate", 50.0)
    assert aliases(root, WAVEGAN) == {"candidate": "2", "champion": "1"}
    # better: the new champion
    better = register_generator(make_latent_generator(root / "c.pt", 3), uncond_json(root / "c.json", 40.0),
                                params, root)
    assert (better.version, better.decision, better.champion_before_version) == ("3", "champion", "1")
    assert "frechet_mel 40 vs champion v1 50: promoted (lower is better" in better.decision_reason
    assert aliases(root, WAVEGAN) == {"candidate": "3", "champion": "3"}

    # an explicit primary metric works when eval.json has it (ndb_fraction: lower is better) ...
    ndb = make_project(root, None, {"primary_metric": "ndb_fraction"})
    d = register_generator(make_latent_generator(root / "d.pt", 4), uncond_json(root / "d.json", 99.0,
                                                                               ndb_fraction=0.1), ndb, root)
    assert (d.decision, d.primary_metric, d.new_value) == ("champion", "ndb_fraction", 0.1)
    # ... and fails, naming the metric and those there are, when it does not (nothing registered)
    mcd = make_project(root, None, {"primary_metric": "mcd"})
    with pytest.raises(RegistryError, match=r"primary_metric=mcd: metric 'mcd' is not in .*e\.json; its metrics "
                                            r"are \['frechet_mel', 'ndb', 'ndb_fraction', 'rtf'\]"):
        register_generator(make_latent_generator(root / "e.pt", 5), uncond_json(root / "e.json", 1.0), mcd, root)
    assert len(versions(root, WAVEGAN)) == 4

    # one registered model, one kind: a vocoder under the WaveGAN's name is refused
    shared = make_project(root, None, {"model_name": WAVEGAN})
    with pytest.raises(RegistryError, match="holds unconditional models .* hifigan_v3 is vocoder"):
        register_generator(make_generator(root / "v.pt", 6), eval_json(root / "v.json", mcd=5.0), shared, root)
    # mel_mlp_gan makes single mel frames, no audio: refused before anything is logged
    with pytest.raises(RegistryError, match="mel_mlp_gan cannot be registered .*not audio"):
        register_generator(make_generator(root / "m.pt", 7, variant="mel_mlp_gan"),
                           uncond_json(root / "m.json", 1.0, variant="mel_mlp_gan"), params, root)
    assert len(versions(root, WAVEGAN)) == 4


def test_unconditional_metadata_signature_and_tags(store):
    import mlflow

    from ganpipe.model_registry import file_sha256

    root, uri, gens = store
    mlflow.set_tracking_uri(uri)
    info = mlflow.models.get_model_info(f"models:/{WAVEGAN}@champion")
    meta = info.metadata
    assert meta["format"] == "ganpipe-unconditional/1" and meta["kind"] == "unconditional"
    assert (meta["variant"], meta["sample_rate"], meta["latent_dim"], meta["samples"]) == ("wavegan", 16000, 100,
                                                                                            SAMPLES)
    assert meta["labels"] == ["zero", "one", "two"] and meta["max_clips"] == 256
    assert meta["eval_metrics"] == {"frechet_mel": 42.0, "ndb": 3.0, "ndb_fraction": 0.3, "rtf": 50.0}
    assert meta["generator_sha256"] == file_sha256(gens["wavegan"]) and meta["primary_metric"] == "frechet_mel"
    assert meta["onnx"] is True and meta["onnx_skipped"] is None and "git_commit" in meta["data_version"]
    assert "mel_config" not in meta and "hop_length" not in meta
    assert info.signature.inputs is None  # x is optional: latents, or nothing with n + seed
    assert {p.name: p.default for p in info.signature.params.params} == {"n": 0, "seed": 0, "label": "",
                                                                        "backend": "torch"}
    assert tuple(info.signature.outputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, 1, -1)
    spec = mlflow.models.get_model_info(f"models:/{SPECGAN}@champion").metadata
    assert spec["onnx"] is False and "Griffin-Lim" in spec["onnx_skipped"] and "Griffin-Lim" in spec["rendering"]
    tags = client_for(root).get_model_version(WAVEGAN, "1").tags
    assert tags["kind"] == "unconditional" and tags["sample_rate"] == "16000" and tags["latent_dim"] == "100"
    assert json.loads(tags["labels"]) == ["zero", "one", "two"] and tags["eval_frechet_mel"] == "42.0"
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{WAVEGAN}/1", dst_path=str(root / "dl")))
    reqs = (local / "requirements.txt").read_text()
    assert "torch==" in reqs and "mlflow==" in reqs and "onnxruntime==" in reqs
    assert (local / "artifacts" / "generator.onnx").is_file() and (local / "code" / "ganpipe" / "serving" / "pyfunc.py").is_file()


def test_wavegan_pyfunc_contract(store):
    from mlflow.exceptions import MlflowException

    root, uri, gens = store
    model = load(uri, WAVEGAN)
    out = model.predict(None, params={"n": 3, "seed": 0})
    assert out.shape == (3, 1, SAMPLES) and out.dtype == np.float32 and np.abs(out).max() > 1e-4
    np.testing.assert_array_equal(model.predict(None, params={"n": 3, "seed": 0}), out)  # same seed, same audio
    other = model.predict(None, params={"n": 3, "seed": 1})
    assert np.abs(other - out).max() > 1e-3  # another seed, other audio
    # exactly the generator's own sample_latent under torch.manual_seed(seed), labels cycling 0, 1, 2
    torch.manual_seed(0)
    z = torch.rand(3, 100) * 2 - 1
    np.testing.assert_allclose(out, reference_audio(gens["wavegan"], z, torch.arange(3)), atol=1e-6)
    # the caller's random state is left alone
    torch.manual_seed(123)
    before = torch.rand(4)
    torch.manual_seed(123)
    model.predict(None, params={"n": 2, "seed": 9})
    assert torch.equal(torch.rand(4), before)

    # explicit latents, one label for all ("two" = index 2); an empty array means "no latents"
    z2 = (torch.rand(2, 100, generator=torch.Generator().manual_seed(5)) * 2 - 1)
    by_name = model.predict(z2.numpy(), params={"label": "two"})
    np.testing.assert_allclose(by_name, reference_audio(gens["wavegan"], z2, torch.full((2,), 2)), atol=1e-6)
    np.testing.assert_array_equal(model.predict(z2.numpy(), params={"label": "2"}), by_name)
    assert np.abs(by_name - model.predict(z2.numpy(), params={"label": "zero"})).max() > 1e-4
    np.testing.assert_array_equal(model.predict(np.zeros((0, 100), np.float32), params={"n": 3, "seed": 0}), out)
    # the ONNX export inside the model gives the same audio
    onnx = model.predict(z2.numpy(), params={"label": "two", "backend": "onnx"})
    assert np.abs(onnx - by_name).max() < 1e-4

    # the REST request body (parsed as `mlflow models serve` parses it): "inputs": [] + n and seed
    from mlflow.pyfunc.scoring_server import invocations

    res = invocations(json.dumps({"inputs": [], "params": {"n": 3, "seed": 0}}), "application/json", model, None)
    assert res.status == 200
    np.testing.assert_allclose(np.asarray(json.loads(res.response)["predictions"], np.float32), out, atol=1e-6)

    for x, params, message in [
        (np.zeros((2, 64), np.float32), None, r"\(batch, latent_dim=100\), got shape \(2, 64\)"),
        (np.zeros((1, 2, 100), np.float32), None, "2-D array"),
        (np.full((1, 100), np.nan, np.float32), None, "NaN"),
        (None, {"n": 257}, r"'n' must lie in \[1, 256\], got 257"),
        (None, {"n": -1}, r"'n' must lie in \[1, 256\]"),
        (np.zeros((300, 100), np.float32), None, "at most 256 latents"),
        (None, None, "give latents x .* or params 'n'"),
        (z2.numpy(), {"n": 2}, "not both"),
        (None, {"n": 1, "label": "seven"}, r"unknown label 'seven'; this model knows \['zero', 'one', 'two'\]"),
        (None, {"n": 1, "backend": "tpu"}, "backend"),
    ]:
        with pytest.raises(MlflowException, match=message) as err:
            model.predict(x, params=params)
        assert err.value.error_code == "INVALID_PARAMETER_VALUE"


def test_specgan_pyfunc_is_griffin_lim_audio(store):
    from mlflow.exceptions import MlflowException

    root, uri, gens = store
    model = load(uri, SPECGAN)
    out = model.predict(None, params={"n": 2, "seed": 4})
    assert out.shape == (2, 1, SAMPLES) and out.dtype == np.float32 and np.isfinite(out).all()
    np.testing.assert_array_equal(model.predict(None, params={"n": 2, "seed": 4}), out)
    torch.manual_seed(4)
    z = torch.rand(2, 100) * 2 - 1
    np.testing.assert_allclose(out, reference_audio(gens["specgan"], z), atol=1e-5)
    assert np.abs(model.predict(None, params={"n": 2, "seed": 5}) - out).max() > 1e-3
    with pytest.raises(MlflowException, match="not class-conditioned"):
        model.predict(None, params={"n": 1, "label": "zero"})
    with pytest.raises(MlflowException, match="specgan has no ONNX export"):
        model.predict(None, params={"n": 1, "backend": "onnx"})


def test_generate_api_and_synthesize_cli(store, tmp_path):
    from typer.testing import CliRunner

    from ganpipe.cli import app
    from ganpipe.synthesis import SynthesisError, generate, load_unconditional, load_vocoder

    root, uri, gens = store
    gen = load_unconditional(f"models:/{WAVEGAN}@champion", tracking_uri=uri)
    assert (gen.sample_rate, gen.latent_dim, gen.samples, gen.labels) == (16000, 100, SAMPLES, ["zero", "one", "two"])
    clips = gen.generate(n=2, seed=7, label="one")
    assert clips.shape == (2, SAMPLES)
    again, sr = generate(f"models:/{WAVEGAN}@champion", n=2, seed=7, label="one", tracking_uri=uri)
    np.testing.assert_array_equal(again, clips)
    assert sr == 16000
    with pytest.raises(SynthesisError, match="exactly one of n= .* or latents="):
        gen.generate()
    with pytest.raises(SynthesisError, match="unknown label"):
        gen.generate(n=1, label="nine")
    with pytest.raises(SynthesisError, match="unconditional generator .*not a vocoder"):
        load_vocoder(f"models:/{WAVEGAN}@champion", tracking_uri=uri)
    with pytest.raises(SynthesisError, match="is a vocoder .*not an unconditional generator"):
        load_unconditional("models:/ganpipe-demo-hifigan_v3@champion", tracking_uri=uri)

    runner = CliRunner()
    base = ["synthesize", "--model", f"models:/{WAVEGAN}@champion", "--tracking-uri", uri]
    # several clips into a folder; the same seed gives the API's clips (16-bit PCM)
    res = runner.invoke(app, [*base, "--n", "2", "--seed", "7", "--label", "one", "-o", str(tmp_path / "clips")])
    assert res.exit_code == 0, res.output
    written = sorted((tmp_path / "clips").glob("*.wav"))
    assert [p.name for p in written] == ["clip_000.wav", "clip_001.wav"]
    assert json.loads(res.output.strip().splitlines()[-1])["out"] == [str(p) for p in written]
    for path, clip in zip(written, clips):
        audio, file_sr = sf.read(path, dtype="float32")
        assert file_sr == 16000 and audio.shape == (SAMPLES,) and sf.info(path).subtype == "PCM_16"
        np.testing.assert_allclose(audio, clip, atol=1 / 32768 + 1e-6)
    # one clip into a named file; --latents from a .npy
    res = runner.invoke(app, [*base, "--n", "1", "--seed", "3", "-o", str(tmp_path / "one.wav")])
    assert res.exit_code == 0, res.output
    assert sf.info(tmp_path / "one.wav").samplerate == 16000 and sf.info(tmp_path / "one.wav").frames == SAMPLES
    np.save(tmp_path / "z.npy", np.zeros((3, 100), np.float32))
    res = runner.invoke(app, [*base, "--latents", str(tmp_path / "z.npy"), "-o", str(tmp_path / "z.wav")])
    assert res.exit_code == 0, res.output
    assert sorted(p.name for p in tmp_path.glob("z_*.wav")) == ["z_000.wav", "z_001.wav", "z_002.wav"]

    # each kind refuses the other's options, saying what the model is
    np.save(tmp_path / "mel.npy", np.zeros((80, 20), np.float32))
    res = runner.invoke(app, [*base, "--mel", str(tmp_path / "mel.npy"), "-o", str(tmp_path / "bad.wav")])
    assert res.exit_code == 2 and "unconditional generator (wavegan" in res.output and "--n" in res.output
    voc = ["synthesize", "--model", "models:/ganpipe-demo-hifigan_v3@champion", "--tracking-uri", uri]
    res = runner.invoke(app, [*voc, "--n", "2", "-o", str(tmp_path / "bad.wav")])
    assert res.exit_code == 2 and "is a vocoder" in res.output and "--mel or --wav" in res.output
    res = runner.invoke(app, [*base, "--n", "2", "--mel", str(tmp_path / "mel.npy"), "-o", str(tmp_path / "bad.wav")])
    assert res.exit_code == 2 and "do not go together" in res.output
    res = runner.invoke(app, [*base, "--n", "300", "-o", str(tmp_path / "bad.wav")])
    assert res.exit_code == 2 and "[1, 256]" in res.output
    assert not list(tmp_path.glob("bad*.wav"))
