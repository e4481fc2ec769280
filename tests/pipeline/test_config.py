"""params.yaml loads into typed settings; a bad value fails naming the key and the allowed values."""

from pathlib import Path

import pytest

from ganpipe.config import MEL_PRESETS, ConfigError, load_params, parse_params

REPO = Path(__file__).resolve().parents[2]


def test_repo_params_load_and_resolve_hifigan_preset():
    p = load_params(REPO / "params.yaml")
    m = p.mel_config()
    assert (m.sample_rate, m.n_fft, m.hop_length, m.win_length, m.n_mels) == (22050, 1024, 256, 1024, 80)
    assert (m.fmin, m.fmax, m.log_base, m.clamp, m.normalize) == (0.0, 8000.0, "e", 1e-5, "none")


def test_pwg_preset_and_override():
    p = parse_params({"mel": {"preset": "pwg"}})
    m = p.mel_config()
    assert (m.fmin, m.fmax, m.log_base, m.normalize) == (80.0, 7600.0, "10", "meanvar")
    p = parse_params({"mel": {"preset": "pwg", "n_mels": 64}})
    assert p.mel_config().n_mels == 64 and p.mel_config().fmax == 7600.0


@pytest.mark.parametrize("data, needles", [
    ({"mel": {"preset": "foo"}}, ["mel.preset", "'hifigan'", "'pwg'", "'custom'", "'foo'"]),
    ({"dataset": {"name": "timit"}}, ["dataset.name", "'ljspeech'", "'local'", "'timit'"]),
    ({"audio": {"sample_rate": "fast"}}, ["audio.sample_rate", "integer"]),
    ({"mel": {"nfft": 512}}, ["unknown key 'mel.nfft'", "n_fft"]),
    ({"bogus": 1}, ["unknown key 'bogus'", "dataset"]),
    ({"mel": {"fmax": 12000}}, ["mel.fmax", "Nyquist"]),
    ({"dataset": {"name": "local", "local_dir": None}}, ["dataset.local_dir"]),
    ({"dataset": {"name": "local", "local_dir": ""}}, ["dataset.local_dir", "data/local"]),
    ({"split": {"valid_fraction": 0.6, "test_fraction": 0.5}}, ["valid_fraction + test_fraction"]),
    ({"features": {"task_runner": "ray"}}, ["features.task_runner", "'threads'", "'dask'"]),
    ({"mel": {"preset": "custom", "n_fft": 512}}, ["custom", "hop_length"]),
    ({"evaluation": {"griffin_lim_iterations": -1}}, ["evaluation.griffin_lim_iterations", "0"]),
    ({"evaluation": {"griffin_lim_iterations": "many"}}, ["evaluation.griffin_lim_iterations", "integer"]),
    ({"train": {"nnodes": 2}}, ["train.nnodes", "train.rdzv_endpoint"]),
    ({"train": {"rdzv_endpoint": "gpu-a"}}, ["train.rdzv_endpoint", "host:port"]),
    ({"train": {"rdzv_endpoint": "gpu-a:99999"}}, ["train.rdzv_endpoint", "host:port"]),
    ({"train": {"nproc_per_node": 0}}, ["train.nproc_per_node", "greater than or equal to 1"]),
    ({"train": {"dist_backend": "mpi"}}, ["train.dist_backend", "'nccl'", "'gloo'", "'mpi'"]),
    ({"train": {"rdzv_id": "a b"}}, ["train.rdzv_id"]),
])
def test_bad_values_name_key_and_allowed_values(data, needles):
    with pytest.raises(ConfigError) as exc:
        parse_params(data)
    for needle in needles:
        assert needle in str(exc.value)


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "p.yaml"
    bad.write_text("mel: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(bad)


def test_presets_match_references():
    assert MEL_PRESETS["hifigan"] == dict(n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0.0,
                                          fmax=8000.0, log_base="e", clamp=1e-5, normalize="none")
    assert MEL_PRESETS["pwg"]["fmin"] == 80.0 and MEL_PRESETS["pwg"]["fmax"] == 7600.0
