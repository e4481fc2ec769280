"""Run identity: the checkpoint folder's key covers every train.* setting that
changes what is trained, so `dvc exp run -S train.lr_generator=...` starts a new run instead of
resuming the old one with its optimiser state, while a raised train.steps continues the old run."""

from __future__ import annotations

import pytest

from ganpipe.training.run_identity import RUN_NEUTRAL_TRAIN_KEYS, run_key
from ganpipe.training.trainer import Trainer, train
from tests.support.training_data import tiny_params, train_paths


def _key(**train_section) -> str:
    params = tiny_params("hifigan_v3", train=train_section)
    return run_key(params, params.mel_config())


@pytest.mark.parametrize("change", [{"lr_generator": 1e-3}, {"lr_discriminator": 1e-3}, {"lambda_mel": 10.0},
                                    {"batch_size": 3}, {"segment_samples": 4096}, {"grad_clip": 1.0},
                                    {"seed": 7}, {"adversarial_loss": "hinge"}, {"ema_decay": 0.5},
                                    {"precision": "bf16"}, {"discriminator_start_step": 5}])
def test_what_changes_training_changes_the_run(change):
    assert _key(**change) != _key()


@pytest.mark.parametrize("change", [{"steps": 5000}, {"checkpoint_every": 7}, {"keep_last": 9}, {"log_every": 3},
                                    {"validate_every": 3}, {"samples_to_log": 0}, {"num_workers": 1},
                                    {"threads": 2}, {"device": "auto"}, {"max_nonfinite_steps": 3},
                                    {"compile": True}, {"nproc_per_node": 8}, {"nnodes": 2, "rdzv_endpoint": "h:1"},
                                    {"rdzv_id": "other"}, {"dist_backend": "gloo"}])
def test_cadence_workers_and_device_keep_the_run(change):
    assert set(change) <= RUN_NEUTRAL_TRAIN_KEYS
    assert _key(**change) == _key()


def test_a_new_learning_rate_starts_a_new_run_and_more_steps_continue_the_old_one(demo_corpus, tmp_path):
    base = {"steps": 2, "num_workers": 0, "checkpoint_every": 1}
    paths = train_paths(demo_corpus, tmp_path)
    assert train(tiny_params("hifigan_v3", train=base), paths, progress=False)["steps"] == 2
    longer = Trainer(tiny_params("hifigan_v3", train={**base, "steps": 4}), paths, progress=False)
    assert longer.step == 2  # resumed: the same run, two more steps to go
    new_lr = Trainer(tiny_params("hifigan_v3", train={**base, "lr_generator": 1e-3}), paths, progress=False)
    assert new_lr.step == 0 and new_lr.ckpt_dir != longer.ckpt_dir
    assert new_lr.opt_g.param_groups[0]["lr"] == 1e-3
