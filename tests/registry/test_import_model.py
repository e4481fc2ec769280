"""Importing published checkpoints: ``ganpipe import-model`` and
:mod:`ganpipe.importing`.

Checkpoints are made with the reference packages and saved exactly as each codebase saves them
(tests/support/published_checkpoints.py). Each imported model re-synthesises a real LJSpeech clip
(LJ001-0002, 1.9 s, length not a multiple of the hop) through ``ganpipe.synthesis`` -- the code
path of ``ganpipe synthesize --model FILE`` -- and the reference does the same its own way (jik876:
``inference.py``'s mel + generator; the toolkit: ``logmelfilterbank`` +
``model.inference(c, normalize_before=True)``): waveform SNR >= 40 dB, and max |diff| <= 1e-5 when
ours gets the reference's mel.

Sizes: jik876 HiFi-GAN V3 and V1 at full size (V1 and the jik876 discriminators, ~70 M parameters,
in the slow tier); the toolkit's recipes (hifigan.v1, melgan.v1, multi_band_melgan.v2,
parallel_wavegan.v1) with every published setting except channel / layer counts shrunk (listed in
``SMALL``), so each runs in a few seconds.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from ganpipe.cli import app
from ganpipe.generator_io import load_generator
from ganpipe.importing import ImportModelError, import_model
from ganpipe.synthesis import load_model
from tests.support import oracles
from tests.support import published_checkpoints as pc

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::UserWarning")

# the toolkit recipes, shrunk: generator / discriminator sizes only
SMALL = {
    "hifigan": {"generator_params": {"channels": 64},
                "discriminator_params": {"scale_discriminator_params": {"channels": 16, "max_downsample_channels": 128},
                                         "period_discriminator_params": {"channels": 4,
                                                                         "max_downsample_channels": 128}}},
    "melgan": {"generator_params": {"channels": 256}, "discriminator_params": {"layers": 4, "conv_channels": 16}},
    "multiband_melgan": {"generator_params": {"channels": 64},
                         "discriminator_params": {"channels": 4, "max_downsample_channels": 32}},
    "parallel_wavegan": {"generator_params": {"layers": 6, "residual_channels": 16, "gate_channels": 32,
                                              "skip_channels": 16},
                         "discriminator_params": {"layers": 4, "conv_channels": 16}},
}


@pytest.fixture(scope="module", autouse=True)
def _oracles():
    oracles.require_oracles()


@pytest.fixture(scope="module")
def clip(lj_wavs) -> tuple[Path, np.ndarray]:
    path = lj_wavs[1]
    wav, sr = sf.read(path)
    assert sr == 22050 and len(wav) % 256
    return path, wav


def snr_db(ref: np.ndarray, ours: np.ndarray) -> float:
    assert abs(len(ref) - len(ours)) == 0, (len(ref), len(ours))
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref - ours).astype(np.float64) ** 2)))


def merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in extra.items():
        out[k] = merge(out.get(k, {}), v) if isinstance(v, dict) else v
    return out


def compare(model_file: Path, wav: np.ndarray, ref_mel: np.ndarray, ref_wav: np.ndarray, seed: int = 0) -> float:
    """Our copy-synthesis (ganpipe.synthesis on the file) vs the reference's; ours on the reference's mel
    within 1e-5. Returns the SNR."""
    voc = load_model(str(model_file))
    torch.manual_seed(seed)  # Parallel WaveGAN's noise: drawn as the toolkit draws it
    ours = voc.copy_synthesis(wav.astype(np.float32), 22050)
    snr = snr_db(ref_wav, ours)
    torch.manual_seed(seed)
    same_mel = voc.mel_to_audio(ref_mel, warn_range=False)
    assert np.abs(same_mel - ref_wav).max() <= 1e-5
    return snr


# -- jik876/hifi-gan ------------------------------------------------------------------------------
def _jik876(variant: str, tmp_path: Path, clip, with_discriminator: bool):
    path, wav = clip
    config = json.loads((oracles.REFERENCE / "hifi-gan" / oracles.JIK876_CONFIGS[variant]).read_text())
    g_file, do_file, config_file = pc.jik876_checkpoint(tmp_path / "jik876", config)
    out = tmp_path / "imported.pt"
    result = import_model("jik876", g_file, out, config=config_file,
                          discriminator=do_file if with_discriminator else None)
    assert result.variant == variant
    ref_mel, ref_wav = pc.jik876_reference(g_file, config, wav.astype(np.float32))
    snr = compare(out, wav, ref_mel[0].numpy(), ref_wav)
    assert snr >= 40, snr
    loaded = load_generator(out)
    assert loaded.meta["source"] == {"format": "jik876", "file": str(g_file), "sha256": result.source["sha256"],
                                     "steps": pc.STEPS}
    assert loaded.meta["step"] == pc.STEPS and loaded.mel_config.framing == "jik876"
    return out, do_file, loaded


def test_jik876_hifigan_v3_copy_synthesis_equals_its_inference(tmp_path, clip):
    _, _, loaded = _jik876("hifigan_v3", tmp_path, clip, with_discriminator=False)
    assert loaded.discriminators_state_dict is None


@pytest.mark.slow  # full-size V1 and jik876's MPD + MSD (~70 M parameters): ~40 s
def test_jik876_hifigan_v1_with_discriminators(tmp_path, clip):
    out, do_file, loaded = _jik876("hifigan_v1", tmp_path, clip, with_discriminator=True)
    _, ref_mpd, ref_msd = oracles.jik876_models("hifigan_v1")
    do = torch.load(do_file, weights_only=True)
    ref_mpd.load_state_dict(do["mpd"])
    ref_msd.load_state_dict(do["msd"])
    loaded.bundle.discriminators.load_state_dict(loaded.discriminators_state_dict)
    wav = torch.from_numpy(clip[1][:8192].astype(np.float32))[None, None]
    for m in (ref_mpd, ref_msd, loaded.bundle.discriminators):
        m.eval()
    with torch.no_grad():
        ref_logits = ref_mpd(wav, wav)[0] + ref_msd(wav, wav)[0]
        ours = loaded.bundle.discriminators["mpd"](wav).logits + loaded.bundle.discriminators["msd"](wav).logits
    assert max(float((r.flatten(1) - o).abs().max()) for r, o in zip(ref_logits, ours)) <= 1e-5


# -- the ParallelWaveGAN toolkit ------------------------------------------------------------------
@pytest.mark.parametrize("recipe, variant, discriminator", [
    ("hifigan", "hifigan_v1", True),
    ("melgan", "melgan", False),  # melgan.v1 trains against PWG's discriminator: not MelGAN's, not imported
    ("multiband_melgan", "multiband_melgan", True),
    ("parallel_wavegan", "parallel_wavegan", True),
])
def test_toolkit_copy_synthesis_equals_its_decode(recipe, variant, discriminator, tmp_path, clip, lj_wavs):
    path, wav = clip
    config = merge(oracles.toolkit_config(recipe), SMALL[recipe])
    checkpoint = pc.toolkit_checkpoint(tmp_path / recipe, config, lj_wavs[2:4])
    out = tmp_path / "imported.pt"
    result = import_model("pwg", checkpoint, out)  # config.yml and stats.h5 found beside it
    assert (result.variant, result.discriminators) == (variant, discriminator)
    assert any("discriminator not imported" in n for n in result.notes) == (not discriminator)
    ref_mel, ref_wav = pc.toolkit_reference(checkpoint, wav)
    snr = compare(out, wav, ref_mel.T.astype(np.float32), ref_wav)
    assert snr >= 40, snr
    loaded = load_generator(out)
    assert loaded.meta["source"]["steps"] == pc.STEPS and loaded.meta["source"]["format"] == "pwg"
    assert loaded.mel_config.framing == "center" and loaded.mel_config.normalize == "meanvar"
    if discriminator:  # the file's discriminators are the checkpoint's (mapped): they load strictly
        loaded.bundle.discriminators.load_state_dict(loaded.discriminators_state_dict)


def test_toolkit_stats_npy_and_explicit_paths(tmp_path, clip, lj_wavs):
    config = merge(oracles.toolkit_config("melgan"), SMALL["melgan"])
    checkpoint = pc.toolkit_checkpoint(tmp_path / "ck", config, lj_wavs[2:3], stats_format="npy")
    moved = tmp_path / "elsewhere"
    moved.mkdir()
    for name in ("config.yml", "stats.npy"):
        (checkpoint.parent / name).rename(moved / name)
    with pytest.raises(ImportModelError, match="config.yml: .*not found"):
        import_model("pwg", checkpoint, tmp_path / "a.pt")
    result = import_model("pwg", checkpoint, tmp_path / "a.pt", config=moved / "config.yml",
                          stats=moved / "stats.npy")
    ref_mel, ref_wav = pc.toolkit_reference_with(checkpoint, moved / "config.yml", moved / "stats.npy", clip[1])
    assert snr_db(ref_wav, load_model(str(result.path)).copy_synthesis(clip[1].astype(np.float32), 22050)) >= 40


# -- the CLI: import, then synthesize the file ------------------------------------------------------
def test_cli_import_then_synthesize(tmp_path, clip):
    path, wav = clip
    config = json.loads((oracles.REFERENCE / "hifi-gan" / "config_v3.json").read_text())
    config["upsample_initial_channel"] = 64  # small-but-real V3
    g_file, _, config_file = pc.jik876_checkpoint(tmp_path / "jik876", config)
    out = tmp_path / "models" / "lj.pt"
    runner = CliRunner()
    res = runner.invoke(app, ["import-model", str(g_file), "--format", "jik876", "--config", str(config_file),
                              "-o", str(out)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["variant"] == "hifigan_v3" and summary["source"]["steps"] == pc.STEPS
    res = runner.invoke(app, ["synthesize", "--model", str(out), "--wav", str(path), "-o", str(tmp_path / "o.wav")])
    assert res.exit_code == 0, res.output
    written, sr = sf.read(tmp_path / "o.wav")
    _, ref_wav = pc.jik876_reference(g_file, config, wav.astype(np.float32))
    assert sr == 22050 and snr_db(ref_wav, written) >= 40  # through 16-bit PCM


# -- bad input: a clear error naming the file, nothing written -------------------------------------
@pytest.fixture(scope="module")
def small_jik876(tmp_path_factory):
    config = json.loads((oracles.REFERENCE / "hifi-gan" / "config_v3.json").read_text())
    config["upsample_initial_channel"] = 32
    return pc.jik876_checkpoint(tmp_path_factory.mktemp("small") / "jik876", config) + (config,)


def _fails(tmp_path: Path, match: str, *args, **kwargs) -> None:
    out = tmp_path / "out" / "model.pt"
    with pytest.raises(ImportModelError, match=match):
        import_model(*args, out, **kwargs)
    assert not out.exists()
    assert not out.parent.exists() or not any(out.parent.iterdir())  # no temporary file left either


def test_truncated_and_non_checkpoint_files(tmp_path, small_jik876, lj_wavs):
    g_file, _, config_file, _ = small_jik876
    truncated = tmp_path / "g_truncated"
    truncated.write_bytes(g_file.read_bytes()[: g_file.stat().st_size // 2])
    _fails(tmp_path, r"g_truncated: not a readable PyTorch .*truncated", "jik876", truncated, config=config_file)
    _fails(tmp_path, r"LJ001-0001.wav: not a readable PyTorch", "jik876", lj_wavs[0], config=config_file)
    _fails(tmp_path, r"config.json: not a readable PyTorch jik876 generator checkpoint", "jik876",
           config_file, config=config_file)
    do_file = small_jik876[1]  # a real checkpoint, but the discriminators' one
    _fails(tmp_path, r"do_00000100: not a jik876 generator checkpoint .*no 'generator' entry", "jik876", do_file,
           config=config_file)
    _fails(tmp_path, r"unknown --format 'nvidia'", "nvidia", g_file)


def test_a_config_whose_sizes_do_not_fit_names_the_layer(tmp_path, small_jik876):
    g_file, _, _, config = small_jik876
    bigger = tmp_path / "config.json"
    bigger.write_text(json.dumps({**config, "upsample_initial_channel": 64}))
    _fails(tmp_path, r"g_00000100: .*'conv_pre' bias has shape \(32,\), ganpipe's 'conv_pre' \(64,\)", "jik876",
           g_file, config=bigger)
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({**config, "upsample_rates": [8, 8, 2]}))  # product 128 != hop 256
    _fails(tmp_path, r"broken.json: describes a hifigan_v3 that ganpipe cannot build: .*hop_length", "jik876",
           g_file, config=broken)


def test_a_pickle_that_needs_code_is_refused(tmp_path, small_jik876):
    g_file, _, config_file, config = small_jik876
    module_pickle = tmp_path / "g_module"
    with pytest.warns(FutureWarning):
        generator = oracles.hifigan_models().Generator(oracles.AttrDict(config))
    torch.save({"generator": generator}, module_pickle)  # the whole module, not its state dict
    _fails(tmp_path, r"g_module: refused: loading this .* would run code .*Unsupported global: .*Generator", "jik876",
           module_pickle,
           config=config_file)


def test_an_unsupported_generator_type_is_refused(tmp_path, lj_wavs):
    folder = tmp_path / "stylemelgan"
    config = oracles.toolkit_config("melgan") | {
        k: v for k, v in pc.read_reference_yaml("style_melgan.v1.yaml").items()
        if k in ("generator_type", "generator_params", "discriminator_type", "discriminator_params")}
    checkpoint = pc.toolkit_checkpoint(folder, config, lj_wavs[2:3])
    _fails(tmp_path, r"config.yml: generator_type StyleMelGANGenerator is not supported", "pwg", checkpoint)


def test_an_unsupported_generator_setting_is_refused(tmp_path, lj_wavs):
    config = merge(oracles.toolkit_config("melgan"), SMALL["melgan"])
    config["generator_params"]["use_causal_conv"] = True
    checkpoint = pc.toolkit_checkpoint(tmp_path / "causal", config, lj_wavs[2:3])
    _fails(tmp_path, r"config.yml: generator_params.use_causal_conv=True is not supported", "pwg", checkpoint)


def test_cli_error_exit_code(tmp_path, small_jik876):
    g_file, _, _, _ = small_jik876
    alone = tmp_path / "alone" / g_file.name  # no config.json beside it (one there would be found)
    alone.parent.mkdir()
    alone.write_bytes(g_file.read_bytes())
    res = CliRunner().invoke(app, ["import-model", str(alone), "--format", "jik876", "-o", str(tmp_path / "x.pt")])
    assert res.exit_code == 2 and "needs its training config: --config config.json" in res.output
    assert not (tmp_path / "x.pt").exists()


# -- registration ------------------------------------------------------------------------------------
@pytest.mark.slow  # logs an MLflow model: ~15 s
def test_import_and_register_with_source_tags(tmp_path, tmp_path_factory, small_jik876, lj_wavs, monkeypatch):
    from mlflow import MlflowClient

    from tests.support.registry_project import make_project, mlflow_template

    make_project(tmp_path, mlflow_template(tmp_path_factory), {"promote_from": "any"})
    g_file, _, config_file, _ = small_jik876
    eval_dir = tmp_path / "refs"
    eval_dir.mkdir()
    for wav in lj_wavs[:2]:
        (eval_dir / wav.name).write_bytes(wav.read_bytes())
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["import-model", str(g_file), "--format", "jik876", "--config", str(config_file),
                                   "-o", "models/imported.pt", "--register", "--name", "lj-imported",
                                   "--eval-dir", str(eval_dir)])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["eval"]["utterances"] == 2 and summary["registered"]["decision"] == "champion"
    mv = MlflowClient(tracking_uri="sqlite:///.mlflow/mlflow.db").get_model_version("lj-imported", "1")
    assert mv.tags["source_format"] == "jik876" and mv.tags["source_steps"] == str(pc.STEPS)
    assert mv.tags["source_sha256"] == summary["source"]["sha256"] and mv.tags["training_step"] == str(pc.STEPS)
    assert "champion" in mv.aliases


def test_format_table_is_torch_free_and_the_cli_help_lists_every_row():
    """FORMATS rows name their module (NAME == key); the table (the CLI's --format help) imports no torch."""
    import importlib
    import subprocess
    import sys

    from typer.testing import CliRunner

    from ganpipe.cli import app
    from ganpipe.importing import FORMATS

    assert set(FORMATS) == {"jik876", "pwg", "bigvgan", "vocos"}
    for name, row in FORMATS.items():
        assert importlib.import_module(f"ganpipe.importing.{row.module}").NAME == name == row.name
    code = ("import sys, ganpipe.cli; from ganpipe.importing import FORMATS; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
    help_text = " ".join(CliRunner().invoke(app, ["import-model", "--help"], terminal_width=200).output.split())
    assert all(f"{name} (" in help_text for name in FORMATS)
