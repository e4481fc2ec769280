"""The identity of a training run: the checkpoint sub-folder a run resumes from (see :func:`run_key`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ganpipe.config import Params
from ganpipe.mel import MelConfig
from ganpipe.training.recipes import resolve

# train.* keys that do not change what is trained: how long (raising steps continues the run),
# how often it checkpoints / logs / validates, how fast and where it runs, when it gives up.
RUN_NEUTRAL_TRAIN_KEYS = frozenset({"steps", "checkpoint_every", "keep_last", "log_every", "validate_every",
                                    "samples_to_log", "num_workers", "threads", "device",
                                    "max_nonfinite_steps",
                                    # the same arithmetic, compiled (equal to eager: test_training_precision):
                                    # a compiled run resumes an eager one and the reverse
                                    "compile",
                                    # how many processes share each batch and where they meet: a run resumes
                                    # on another number of GPUs or nodes (each rank's random stream apart)
                                    "nproc_per_node", "nnodes", "rdzv_endpoint", "rdzv_id", "dist_backend"})


def run_key(params: Params, mel: MelConfig, features_dir: Path | None = None) -> str:
    """Checkpoint sub-folder: the variant plus a hash of everything that decides what is trained —
    architecture, conditioning, mel, every ``train.*`` setting but :data:`RUN_NEUTRAL_TRAIN_KEYS`
    (with the recipe they resolve to, so a changed published default is a new run too), the
    starting weights (``train.fine_tune_from``) and the training data (the features index and
    statistics) — so a killed run resumes and ``train.steps`` raised continues it, while a new
    learning rate, data version or fine-tune source starts its own run instead of 'resuming' one."""
    train = {k: v for k, v in params.train.model_dump(mode="json").items() if k not in RUN_NEUTRAL_TRAIN_KEYS}
    recipe = resolve(params.model.variant, params.train).as_dict()
    digest = hashlib.sha256(json.dumps({"model": params.model.model_dump(mode="json"), "mel": mel.to_dict(),
                                        "train": train, "recipe": recipe}, sort_keys=True, default=str).encode())
    if features_dir is not None:
        for name in ("index.csv", "stats.npz"):
            path = Path(features_dir) / name
            if path.is_file():
                digest.update(path.read_bytes())
    return f"{params.model.variant}-{digest.hexdigest()[:10]}"
