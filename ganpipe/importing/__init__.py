"""Published vocoder checkpoints -> ganpipe generator files (``ganpipe import-model``).

>>> from ganpipe.importing import import_model
>>> result = import_model("jik876", "g_02500000", "models/lj_v1.pt", config="config.json",
...                       discriminator="do_02500000")
>>> result = import_model("pwg", "checkpoint-400000steps.pkl", "models/pwg.pt")  # config.yml, stats.h5 beside it

One module per source format, one row of :data:`FORMATS` each (a new format: its module with
``NAME`` and a ``read(checkpoint, config=, stats=, discriminator=) -> ImportedModel``, and its row
here; the modules are imported on first use, so that this table — the CLI's ``--format`` help —
costs no torch import):

* ``jik876``: jik876/hifi-gan (:mod:`.jik876`);
* ``pwg``: kan-bayashi/ParallelWaveGAN, the toolkit (:mod:`.toolkit`);
* ``bigvgan``: NVIDIA/BigVGAN (:mod:`.bigvgan`);
* ``vocos``: gemelo-ai/vocos, the mel Vocos (:mod:`.vocos`).

Foreign files are read with ``torch.load(weights_only=True)`` only. Every failure (a missing,
truncated or wrong-format file, a pickle that needs code, a model ganpipe does not have, a layer
whose shape does not fit) raises :class:`ImportModelError` naming the file (and the layer), and
nothing is written: the generator file is written atomically, after everything succeeded, with
:func:`ganpipe.generator_io.save_generator` (keys ``format``, ``variant``, ``kind``, ``config``,
``state_dict``, ``mel_config``, ``mel_stats``, ``sample_rate``, ``hop_length``, ``label_names``
(empty), ``step`` (the source's step count, 0 when unknown), ``run_id`` (None), ``source``
(``{"format", "file", "sha256", "steps"}``) and, when the discriminators were imported,
``discriminators_state_dict``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ganpipe.importing.source import ImportedModel, ImportModelError


def __getattr__(name: str) -> Any:
    # torch-free package: the CLI builds its --format help from FORMATS without importing torch
    if name in ("ImportedModel", "ImportModelError"):
        value = getattr(importlib.import_module("ganpipe.importing.source"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True)
class SourceFormat:
    name: str  # the --format value, the module's NAME
    description: str  # what files it reads (CLI help)
    module: str  # ganpipe.importing.<module>, imported on first read

    def read(self, checkpoint: Path, **files: Path | None) -> ImportedModel:
        return importlib.import_module(f"ganpipe.importing.{self.module}").read(checkpoint, **files)


FORMATS: dict[str, SourceFormat] = {row.name: row for row in (
    SourceFormat("jik876", "jik876/hifi-gan: G_FILE (g_XXXXXXXX) --config config.json [--discriminator do_XXXXXXXX]",
                 "jik876"),
    SourceFormat("pwg", "kan-bayashi/ParallelWaveGAN: checkpoint-XXXXsteps.pkl [--config config.yml] "
                        "[--stats stats.h5|stats.npy] (default: beside it)", "toolkit"),
    SourceFormat("bigvgan", "NVIDIA/BigVGAN: bigvgan_generator.pt --config config.json "
                            "[--discriminator bigvgan_discriminator_optimizer.pt]", "bigvgan"),
    SourceFormat("vocos", "gemelo-ai/vocos (mel): pytorch_model.bin --config config.yaml", "vocos"),
)}


@dataclass
class ImportResult:
    path: Path
    variant: str
    source: dict[str, Any]
    discriminators: bool
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.path), "variant": self.variant, "source": self.source,
                "discriminators": self.discriminators, "notes": self.notes}


def read_model(fmt: str, checkpoint: str | Path, config: str | Path | None = None, stats: str | Path | None = None,
               discriminator: str | Path | None = None) -> ImportedModel:
    """Read a published checkpoint of format ``fmt`` (a key of :data:`FORMATS`) into a ganpipe model;
    ``checkpoint`` may be a snapshot folder, and the config is found beside it (:mod:`.snapshot`)."""
    from ganpipe.importing.snapshot import locate
    from ganpipe.importing.source import ImportModelError

    if fmt not in FORMATS:
        raise ImportModelError(f"unknown --format {fmt!r}; allowed: {', '.join(FORMATS)}")
    checkpoint, config, discriminator = locate(fmt, Path(checkpoint), None if config is None else Path(config),
                                               None if discriminator is None else Path(discriminator))
    return FORMATS[fmt].read(Path(checkpoint), config=None if config is None else Path(config),
                             stats=None if stats is None else Path(stats),
                             discriminator=None if discriminator is None else Path(discriminator))


def import_model(fmt: str, checkpoint: str | Path, out: str | Path, config: str | Path | None = None,
                 stats: str | Path | None = None, discriminator: str | Path | None = None) -> ImportResult:
    """Read ``checkpoint`` (see :func:`read_model`) and write it to ``out`` as a ganpipe generator file."""
    from ganpipe.generator_io import save_generator

    model = read_model(fmt, checkpoint, config, stats, discriminator)
    bundle = model.bundle
    save_generator(out, bundle, bundle.generator, model.mel, model.stats, [], model.source["steps"] or 0, None,
                   discriminators=bundle.discriminators if model.discriminators else None, source=model.source)
    return ImportResult(Path(out), bundle.variant, model.source, model.discriminators, model.notes)


__all__ = ["FORMATS", "ImportModelError", "ImportResult", "ImportedModel", "SourceFormat", "import_model",
           "read_model"]
