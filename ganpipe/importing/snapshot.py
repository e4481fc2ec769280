"""Where a published model's files are: ``ganpipe import-model`` takes the checkpoint file or the folder
a download of the model's repository gives (a hub snapshot), and finds the config beside the
checkpoint for every format when ``--config`` is not given.

=========  ==========================================  =============================================
format     checkpoint in a folder                      config beside it (first found)
=========  ==========================================  =============================================
jik876     ``generator_*``, ``g_*`` (highest step)     ``config.json``
pwg        ``checkpoint-*steps.pkl`` (highest step)    ``config.yml`` (the toolkit's own rule)
bigvgan    ``bigvgan_generator.pt``                    ``config.json``
vocos      ``pytorch_model.bin``                       ``config.yaml``
=========  ==========================================  =============================================

In a folder, the discriminators are taken too when their published file is there (jik876 ``do_*`` of
the generator's step, BigVGAN ``bigvgan_discriminator_optimizer.pt``), unless ``--discriminator`` says
otherwise. A folder without the format's checkpoint is an error naming what was looked for.
"""

from __future__ import annotations

import re
from pathlib import Path

# keyed by source format (ganpipe.importing.FORMATS), not by model variant
CONFIG_NAMES = dict(jik876=("config.json",), pwg=("config.yml",), bigvgan=("config.json",), vocos=("config.yaml",))


def _step(path: Path) -> int:
    m = re.search(r"(\d+)", path.name)
    return int(m.group(1)) if m else -1


def _checkpoint_in(fmt: str, folder: Path) -> Path | None:
    files = [p for p in folder.iterdir() if p.is_file()]
    if fmt == "jik876":
        found = [p for p in files if re.fullmatch(r"g_\d+", p.name)] or \
            [p for p in files if p.name.startswith("generator") and p.suffix in (".pt", ".pth", ".tar", "")]
    elif fmt == "pwg":
        found = [p for p in files if re.fullmatch(r"checkpoint-\d+steps\.pkl", p.name)]
    elif fmt == "bigvgan":
        found = [p for p in files if p.name == "bigvgan_generator.pt"]
    else:
        found = [p for p in files if p.name == "pytorch_model.bin"]
    return max(found, key=_step) if found else None


def locate(fmt: str, checkpoint: Path, config: Path | None,
           discriminator: Path | None) -> tuple[Path, Path | None, Path | None]:
    """``(checkpoint file, config, discriminator)`` for ``checkpoint`` (a file or a snapshot folder)."""
    from ganpipe.importing.source import ImportModelError

    checkpoint = Path(checkpoint)
    in_folder = checkpoint.is_dir()
    if in_folder:
        found = _checkpoint_in(fmt, checkpoint)
        if found is None:
            raise ImportModelError(f"{checkpoint}: a folder without a {fmt} checkpoint (looked for "
                                   f"{_PATTERNS[fmt]}); give the checkpoint file, or another --format")
        checkpoint = found
        if discriminator is None:
            discriminator = _discriminator_beside(fmt, checkpoint)
    if config is None:
        config = next((checkpoint.parent / n for n in CONFIG_NAMES.get(fmt, ())
                       if (checkpoint.parent / n).is_file()), None)
    return checkpoint, config, discriminator


_PATTERNS = dict(jik876="g_XXXXXXXX or generator_*", pwg="checkpoint-XXXXsteps.pkl",
                 bigvgan="bigvgan_generator.pt", vocos="pytorch_model.bin")


def _discriminator_beside(fmt: str, checkpoint: Path) -> Path | None:
    if fmt == "jik876" and re.fullmatch(r"g_\d+", checkpoint.name):
        do = checkpoint.parent / ("do_" + checkpoint.name[2:])
        return do if do.is_file() else None
    if fmt == "bigvgan":
        d = checkpoint.parent / "bigvgan_discriminator_optimizer.pt"
        return d if d.is_file() else None
    return None
