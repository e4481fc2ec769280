"""``ganpipe`` command line: one sub-command per pipeline stage, plus helpers.

Stage commands launch the stage's Prefect flow (``python -m flows.<stage>``) in the current
directory, the project root, where ``params.yaml`` and ``prefect.toml`` live. (The library never
imports the flows; the CLI starts them as programs, exactly as ``dvc repro`` does.)
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import typer

from ganpipe.config import ConfigError, load_params

app = typer.Typer(
    name="ganpipe",
    help="Raw audio corpora -> GAN vocoders -> model registry. Run from the project root; "
         "every knob is in params.yaml. `dvc repro` runs all stages in order.",
    no_args_is_help=True,
    add_completion=False,
)

ParamsOpt = typer.Option(Path("params.yaml"), "--params", "-p", help="Parameters file.")


def _check(params: Path) -> None:
    try:
        load_params(params)
    except ConfigError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


def _run_flow(stage: str, params: Path, extra: list[str] | None = None) -> None:
    _check(params)
    cmd = [sys.executable, "-m", f"flows.{stage}", "--params", str(params), *(extra or [])]
    code = subprocess.call(cmd)
    if code:
        raise typer.Exit(code)


@app.command()
def download(params: Path = ParamsOpt) -> None:
    """Fetch, verify (size + checksum) and safely extract the corpus named by dataset.name into
    data/raw/<name>/ (resumes interrupted downloads; a verified archive is not fetched again).
    'demo' is generated offline; 'local' is read in place from dataset.local_dir."""
    _run_flow("download", params)


@app.command()
def prepare(params: Path = ParamsOpt) -> None:
    """Mono mix-down, resample to audio.sample_rate (soxr), optional trim/normalisation, skip and
    report bad files (data/prepared/skipped.csv), split train/valid/test -> data/prepared/manifest.csv."""
    _run_flow("prepare", params)


@app.command()
def features(params: Path = ParamsOpt) -> None:
    """Log-mel features of every prepared utterance with the project's one mel (params 'mel'),
    plus train-split statistics -> data/features/ (threads, or Dask with features.task_runner)."""
    _run_flow("features", params)


@app.command()
def train(
    params: Path = ParamsOpt,
    nproc_per_node: int = typer.Option(1, help="Processes per node: >1 trains with DDP under torchrun."),
    nnodes: int = typer.Option(1, help="Number of nodes (torchrun --nnodes)."),
    node_rank: int = typer.Option(0, help="This node's rank (torchrun --node-rank)."),
    master_addr: str = typer.Option("127.0.0.1", help="Rendezvous host (torchrun --master-addr)."),
    master_port: int = typer.Option(29500, help="Rendezvous port (torchrun --master-port)."),
) -> None:
    """Train model.variant on data/features (+ data/prepared audio). Resumes from checkpoints/
    after a kill; CUDA when available; logs to MLflow; writes models/generator.pt and
    metrics/train.json. Several processes/nodes: DDP via torchrun."""
    _run_flow("train", params, [f"--nproc-per-node={nproc_per_node}", f"--nnodes={nnodes}",
                                f"--node-rank={node_rank}", f"--master-addr={master_addr}",
                                f"--master-port={master_port}"])


@app.command()
def evaluate(
    params: Path = ParamsOpt,
    ref: Path = typer.Option(None, "--ref", help="Folder of reference wavs (folder mode)."),
    gen: Path = typer.Option(None, "--gen", help="Folder of generated wavs, matched to --ref by file name."),
    out: Path = typer.Option(None, "--out", help="JSON file for the folder-mode scores."),
) -> None:
    """Score the trained generator (copy-synthesis of evaluation.split: MCD, MR-STFT, log-mel L1,
    PESQ, F0 RMSE, V/UV F1, real-time factor) -> metrics/eval.json. With --ref/--gen/--out: score
    any two folders of wavs matched by file name (e.g. another vocoder's output) into one JSON."""
    if ref is None and gen is None:
        _run_flow("evaluate", params)
        return
    if ref is None or gen is None or out is None:
        typer.secho("error: folder mode needs --ref, --gen and --out", fg="red", err=True)
        raise typer.Exit(2)
    from ganpipe.atomic import write_json
    from ganpipe.evaluation import score_folders

    try:
        result = score_folders(ref, gen)
    except FileNotFoundError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    write_json(out, result)
    typer.echo(json.dumps({"pairs": result["pairs"], "skipped": len(result["skipped"]), **result["means"]}))


@app.command()
def preset(
    action: str = typer.Argument(..., help="flags | apply"),
    config: str = typer.Argument(..., help="A file in configs/ (path or name, e.g. ljspeech_hifigan_v1)."),
    params: Path = ParamsOpt,
) -> None:
    """Use a ready configuration from configs/. 'flags' prints -S arguments for an experiment:
    dvc exp run $(ganpipe preset flags ljspeech_hifigan_v1); 'apply' merges it into params.yaml."""
    from ganpipe import presets

    try:
        if action == "flags":
            typer.echo(" ".join(shlex.quote(a) for a in presets.flags(config, params)))
        elif action == "apply":
            presets.apply(config, params)
            typer.echo(f"{params}: applied {config}")
        else:
            raise ConfigError(f"unknown action {action!r}; allowed: flags, apply")
    except ConfigError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None


@app.command("params")
def show_params(params: Path = ParamsOpt) -> None:
    """Validate params.yaml and print the resolved configuration (presets expanded) as JSON."""
    _check(params)
    p = load_params(params)
    out = p.model_dump(mode="json")
    out["mel"] = p.mel_config().to_dict()
    typer.echo(json.dumps(out, indent=2))


@app.command()
def repro(args: list[str] = typer.Argument(None, help="Extra arguments for `dvc repro`.")) -> None:
    """Run the whole pipeline with DVC (`dvc repro`): only stages whose inputs changed re-run."""
    _check(Path("params.yaml"))
    raise typer.Exit(subprocess.call(["dvc", "repro", *(args or [])]))


if __name__ == "__main__":
    app()
