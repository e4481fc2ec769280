"""A device setting that names a device this machine lacks fails at once, naming the setting: the
evaluate stage with ``evaluation.device: cuda`` and no CUDA, and the one resolver (ganpipe/devices.py)
that the features, train and evaluate stages share."""

from __future__ import annotations

import pytest
import torch

from ganpipe.devices import DeviceUnavailable, resolve_device


@pytest.fixture
def no_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as one without CUDA (whatever it has)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)


def test_the_evaluate_stage_fails_clearly_when_cuda_is_asked_for_and_absent(no_cuda, tmp_path):
    from flows.evaluate import score
    from ganpipe.config import parse_params

    params = parse_params({"evaluation": {"device": "cuda"}})
    # before the generator is even read (the file need not exist): no fallback to the CPU
    with pytest.raises(DeviceUnavailable, match=r"evaluation\.device is 'cuda' but no CUDA device is available"):
        score.fn(params, str(tmp_path / "missing.pt"), str(tmp_path))


@pytest.mark.parametrize("setting", ["features.device", "train.device", "evaluation.device"])
def test_an_absent_device_names_its_setting(no_cuda, setting):
    for choice in ("cuda", "cuda:1"):
        with pytest.raises(DeviceUnavailable, match=rf"{setting} is '{choice}' but no CUDA device"):
            resolve_device(choice, setting)


def test_auto_and_cpu_resolve_here(no_cuda):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("cpu", "train.device") == torch.device("cpu")
    with pytest.raises(ValueError, match="evaluation.device is 'gpu': not a device"):
        resolve_device("gpu", "evaluation.device")


def test_the_features_and_train_stages_use_the_same_resolver(no_cuda, tmp_path):
    from ganpipe.features import extract_shard
    from ganpipe.mel import MelConfig
    from ganpipe.training.setup import training_device

    with pytest.raises(DeviceUnavailable, match=r"features\.device is 'cuda'"):
        extract_shard([], MelConfig().to_dict(), device="cuda")
    with pytest.raises(DeviceUnavailable, match=r"train\.device is 'cuda'"):
        training_device("cuda")
