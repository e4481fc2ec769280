"""``ganpipe`` command line: one sub-command per pipeline stage, plus helpers.

Stage commands launch the stage's Prefect flow (``python -m flows.<stage>``) in the current
directory, the project root, where ``params.yaml`` and ``prefect.toml`` live. (The library never
imports the flows; the CLI starts them as programs, exactly as ``dvc repro`` does.)
"""

from __future__ import annotations

import json
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
    # Plain (click) help: typer's rich panels list every flag, --help included, as taking a <bool> value.
    rich_markup_mode=None,
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
    nproc_per_node: int = typer.Option(None, help="Processes per node (default: train.nproc_per_node); "
                                       "more than one process in all trains with DDP under torchrun."),
    nnodes: int = typer.Option(None, help="Nodes (default: train.nnodes); run this on each."),
    rdzv_endpoint: str = typer.Option(None, help="host:port of the c10d rendezvous (default: train.rdzv_endpoint)."),
    rdzv_id: str = typer.Option(None, help="The job's name at the rendezvous (default: train.rdzv_id)."),
) -> None:
    """Train model.variant on data/features (+ data/prepared audio). Resumes from checkpoints/
    after a kill; CUDA when available; logs to MLflow; writes models/generator.pt and
    metrics/train.json. Several processes/nodes: DDP via torchrun (README "Training on several GPUs
    or machines")."""
    flags = {"--nproc-per-node": nproc_per_node, "--nnodes": nnodes, "--rdzv-endpoint": rdzv_endpoint,
             "--rdzv-id": rdzv_id}
    _run_flow("train", params, [f"{flag}={value}" for flag, value in flags.items() if value is not None])


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
    from ganpipe.evaluation import NoPairsError, score_folders

    try:
        result = score_folders(ref, gen)
    except (FileNotFoundError, NoPairsError) as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    write_json(out, result)
    typer.echo(json.dumps({"pairs": result["pairs"], "skipped": len(result["skipped"]), **result["means"]}))


@app.command()
def register(
    params: Path = ParamsOpt,
    promote: bool = typer.Option(False, "--promote", help="Make this version the champion whatever the rule says."),
) -> None:
    """Register models/generator.pt in the MLflow registry (name from registry.model_name); every
    new version gets alias 'candidate' and becomes 'champion' only if made on the main line (no DVC
    experiment, no uncommitted changes: registry.promote_from) and it beats the champion on the same
    evaluation clips (the champion is re-scored on them when they differ) on registry.primary_metric
    by registry.margin (or there is none), above registry.min_quality and, for a fine-tune, its parent.
    Re-running adds no duplicate and re-evaluates the promotion (e.g. after a git commit)."""
    _run_flow("register", params, ["--promote"] if promote else [])


@app.command()
def promote(
    name: str = typer.Argument(..., help="The registered model."),
    version: str = typer.Argument(..., help="Its version to make champion (e.g. the challenger)."),
    reason: str = typer.Option("approved", "--reason", help="Why: logged as the version's decision_reason tag."),
    by: str = typer.Option(None, "--by", help="Who approved it (tag approved_by)."),
    params: Path = ParamsOpt,
) -> None:
    """Make VERSION of NAME the champion by hand (registry.approval: manual approves a challenger
    this way); the reason is logged as a tag on the version."""
    from ganpipe.guards import promote_by_hand

    _check(params)
    try:
        tags = promote_by_hand(load_params(params), params.resolve().parent, name, version, reason, by)
    except Exception as exc:  # noqa: BLE001 - no such model or version: say so
        typer.secho(f"error: cannot promote {name} version {version}: {exc}", fg="red", err=True)
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"model_name": name, "version": version, **tags}))


def _import_formats_help() -> str:
    from ganpipe.importing import FORMATS  # torch-free: the table of source formats

    return "Source format: " + "; ".join(f"{row.name} ({row.description})" for row in FORMATS.values()) + "."


@app.command("import-model")
def import_model(
    checkpoint: Path = typer.Argument(..., help="The published checkpoint (see --format for each source's files)."),
    fmt: str = typer.Option(..., "--format", help=_import_formats_help()),
    out: Path = typer.Option(..., "--out", "-o", help="The ganpipe generator file to write (e.g. models/lj_v1.pt)."),
    config: Path = typer.Option(None, "--config", help="Its training config: jik876's and BigVGAN's config.json, "
                                                       "Vocos' config.yaml (required), the toolkit's config.yml "
                                                       "(default: beside the checkpoint)."),
    stats: Path = typer.Option(None, "--stats", help="pwg: feature statistics stats.h5 | stats.npy (default: "
                                                     "beside the checkpoint)."),
    discriminator: Path = typer.Option(None, "--discriminator", help="jik876: do_XXXXXXXX, bigvgan: "
                                                                     "bigvgan_discriminator_optimizer.pt, to import "
                                                                     "the discriminators too."),
    register: bool = typer.Option(False, "--register", help="Then score it by copy-synthesis and register it "
                                                            "(candidate/champion rules of `ganpipe register`)."),
    name: str = typer.Option(None, "--name", help="--register: the registered model's name (default: "
                                                  "registry.model_name's rule)."),
    eval_dir: Path = typer.Option(None, "--eval-dir", help="--register: score on this folder of reference wavs "
                                                           "instead of evaluation.split of data/prepared."),
    promote: bool = typer.Option(False, "--promote", help="--register: make it the champion whatever the rule says."),
    params: Path = ParamsOpt,
) -> None:
    """Import a published vocoder checkpoint (jik876/hifi-gan; kan-bayashi/ParallelWaveGAN: HiFi-GAN,
    MelGAN, multi-band MelGAN, Parallel WaveGAN; NVIDIA/BigVGAN; gemelo-ai/vocos) as a ganpipe
    generator file: weights (and discriminators when given), architecture and the mel configuration
    (and statistics) it was trained with. Use it with `ganpipe synthesize --model FILE`; --register
    scores and registers it."""
    from ganpipe.importing import FORMATS, ImportModelError
    from ganpipe.importing import import_model as run_import

    if fmt not in FORMATS:
        typer.secho(f"error: unknown --format {fmt!r}; allowed: {', '.join(FORMATS)}", fg="red", err=True)
        raise typer.Exit(2)
    if not register and (name or eval_dir or promote):
        typer.secho("error: --name, --eval-dir and --promote go with --register", fg="red", err=True)
        raise typer.Exit(2)
    if register:
        _check(params)
    try:
        result = run_import(fmt, checkpoint, out, config=config, stats=stats, discriminator=discriminator)
    except ImportModelError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    for note in result.notes:
        typer.secho(f"note: {note}", fg="yellow", err=True)
    summary: dict = result.to_dict()
    if register:
        from ganpipe.importing.registration import register_imported
        from ganpipe.model_registry import RegistryError

        try:
            registration, metrics = register_imported(out, load_params(params), ".", name, eval_dir, promote)
        except (RegistryError, FileNotFoundError, ValueError) as exc:
            typer.secho(f"error: {out} was written, but not registered: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        summary["eval"] = {k: metrics.get(k) for k in ("utterances", "skipped", "mcd", "mrstft", "logmel_l1", "split")}
        summary["registered"] = {k: getattr(registration, k) for k in ("model_name", "version", "decision",
                                                                         "decision_reason", "aliases", "model_uri")}
    typer.echo(json.dumps(summary))


@app.command()
def retrain(
    params: Path = ParamsOpt,
    pull: bool = typer.Option(False, "--pull/--no-pull", help="dvc pull --allow-missing before the pipeline."),
    push: bool = typer.Option(True, "--push/--no-push", help="dvc push after the pipeline."),
    fine_tune: bool = typer.Option(False, "--fine-tune", help="Start training from the current champion's weights."),
    command: str = typer.Option(None, "--command", help="Run this instead of dvc repro (shell-split)."),
    project_dir: Path = typer.Option(Path("."), "--project-dir", show_default=False,
                                     help="The project (default: the current directory)."),
) -> None:
    """One retraining cycle: (dvc pull) -> dvc repro -> dvc push -> register -> promote only if
    better; a failure leaves the champion untouched. On a cron schedule: `ganpipe schedule`."""
    extra = ["--project-dir", str(project_dir)]
    extra += (["--pull"] if pull else []) + ([] if push else ["--no-push"]) + (["--fine-tune"] if fine_tune else [])
    extra += ["--command", command] if command else []
    _run_flow("retrain", params, extra)


@app.command()
def preset(
    action: str = typer.Argument(..., help="flags | apply"),
    config: str = typer.Argument(..., help="A file in configs/ (path or name, e.g. ljspeech_hifigan_v1)."),
    params: Path = ParamsOpt,
) -> None:
    """Use a ready configuration from configs/. 'flags' prints -S arguments for an experiment, made to
    be used unquoted: dvc exp run $(ganpipe preset flags ljspeech_hifigan_v1); 'apply' merges it
    into params.yaml."""
    from ganpipe import presets

    try:
        if action == "flags":
            # each flag is one shell word with nothing to unquote: $(...) passes it to dvc as printed
            typer.echo(" ".join(presets.flags(config, params)))
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
    if p.mel.preset == "from_model":  # the starting model's (read, or fetched from the registry)
        from ganpipe.training.starting_model import resolve_feature_mel

        try:
            out["mel"] = {"preset": "from_model", **resolve_feature_mel(p).config.to_dict()}
        except (OSError, ValueError) as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
    else:
        out["mel"] = p.mel_config().to_dict()
    typer.echo(json.dumps(out, indent=2))


@app.command()
def validate(
    params: Path = ParamsOpt,
    out: Path = typer.Option(None, "--out", help="Write this file (the same bytes while the params are valid)."),
    mel_out: Path = typer.Option(None, "--mel-out",
                                 help="Write the features' mel and statistics here as JSON (mel.preset from_model: "
                                      "the starting model's); the features stage depends on it."),
) -> None:
    """The first stage of the pipeline: check all of params.yaml (every key and value, and the model
    the train stage will build from model.* and train.*) before any stage deletes its outputs. A bad
    value fails naming the key and the allowed values (exit 2)."""
    from ganpipe.atomic import write_text
    from ganpipe.params_check import STAMP_TEXT, resolve

    try:
        _, feature_mel = resolve(params)
    except ConfigError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    if mel_out is not None:
        feature_mel.write(mel_out)
    if out is not None:
        write_text(out, STAMP_TEXT)
    typer.echo(f"{params}: valid")


@app.command()
def experiments(
    as_json: bool = typer.Option(False, "--json", help="The rows as JSON (name, rev, params, metrics)."),
    all_commits: bool = typer.Option(False, "--all-commits", help="Experiments of every commit (dvc exp show -A)."),
) -> None:
    """DVC experiments side by side: only the params that differ, the evaluation metrics (mcd, mrstft,
    pesq, f0_rmse_cents, vuv_f1) and the Griffin-Lim baseline's (gl_*); readable when piped."""
    from ganpipe.experiments import ExperimentsError, render, show, table

    try:
        rows = show(["-A"] if all_commits else [])
    except ExperimentsError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(rows, indent=1, default=str) if as_json else render(*table(rows)))


@app.command()
def repro(args: list[str] = typer.Argument(None, help="Extra arguments for `dvc repro`.")) -> None:
    """Run the whole pipeline with DVC (`dvc repro`): only stages whose inputs changed re-run."""
    _check(Path("params.yaml"))
    raise typer.Exit(subprocess.call(["dvc", "repro", *(args or [])]))


_SYNTH = {  # the options of `ganpipe synthesize`
    "model": typer.Option(None, "--model", "-m", help="Registered model: models:/NAME@champion, models:/NAME/3, a "
                          "model folder, or a generator file (models/generator.pt, ganpipe import-model -o FILE)."),
    "server": typer.Option(None, "--server", help="Or a `ganpipe serve` URL (http://127.0.0.1:8080): the server's "
                           "model synthesises (token: $GANPIPE_SERVE_API_KEY)."),
    "mel": typer.Option(None, "--mel", help="Vocoders: log-mel .npy, (n_mels, frames), made with the model's mel "
                        "(ganpipe mel --model MODEL in.wav -o x.npy)."),
    "wav": typer.Option(None, "--wav", help="Vocoders: audio file to re-synthesise (copy-synthesis)."),
    "n": typer.Option(None, "--n", help="Unconditional models: number of clips to generate (1..256; default 1)."),
    "seed": typer.Option(None, "--seed", help="Unconditional models: seed of the latents (default 0)."),
    "latents": typer.Option(None, "--latents", help="Unconditional models: .npy of latents (batch, latent_dim) "
                            "instead of --n."),
    "label": typer.Option(None, "--label", help="Unconditional class-conditioned models: class name or index."),
    "out": typer.Option(..., "--out", "-o", help="Output WAV (16-bit PCM at the model's sample rate). Several clips: "
                        "a folder (clip_000.wav, ...) or NAME.wav (NAME_000.wav, ...)."),
    "mel_config": typer.Option(None, "--mel-config", help="JSON of the mel parameters used for --mel (checked "
                               "against the model's)."),
    "speaker": typer.Option(None, "--speaker", help="Speaker name or index (speaker-conditioned vocoders)."),
    "backend": typer.Option("torch", "--backend", help="torch | onnx (the ONNX export inside the model) | "
                            "onnx-int8 (its int8 export: registry.export_int8) | bf16 (fp32 with a warning "
                            "without AVX-512 BF16)."),
    "resample": typer.Option(False, "--resample", help="--wav: resample to the model's rate instead of failing."),
    "tracking_uri": typer.Option(None, "--tracking-uri", help="MLflow store (default: $MLFLOW_TRACKING_URI, else "
                                 "params.yaml's)."),
}


@app.command("synthesize")
def synthesize_command(
    model: str = _SYNTH["model"], mel: Path = _SYNTH["mel"], wav: Path = _SYNTH["wav"], n: int = _SYNTH["n"],
    seed: int = _SYNTH["seed"], latents: Path = _SYNTH["latents"], label: str = _SYNTH["label"],
    out: Path = _SYNTH["out"], mel_config: Path = _SYNTH["mel_config"], speaker: str = _SYNTH["speaker"],
    backend: str = _SYNTH["backend"], resample: bool = _SYNTH["resample"], tracking_uri: str = _SYNTH["tracking_uri"],
    server: str = _SYNTH["server"],
) -> None:
    """Vocode a mel (--mel x.npy) or re-synthesise audio (--wav in.wav) with a registered vocoder, or
    generate clips with a registered unconditional model (--n 4 --seed 0, or --latents z.npy)
    -> WAV. Mel parameters that differ from the model's (--mel-config, or the array's n_mels) are
    reported by name instead of producing wrong audio; options of the other kind of model are refused.
    The rules are the library's (ganpipe.serving.rules), as for ganpipe.synthesis.synthesize."""
    import warnings

    from ganpipe.serving.api import MelRangeWarning, SynthesisError, synthesize

    if (model is None) == (server is None):
        typer.secho("error: give exactly one of --model or --server", fg="red", err=True)
        raise typer.Exit(2)
    if server is not None:
        from ganpipe.serving.server import synthesize_remote

        try:
            audio, sample_rate = synthesize_remote(server, mel=mel, wav=wav, mel_config=mel_config, speaker=speaker,
                                                   resample=resample, n=n, seed=seed, label=label)
        except SynthesisError as exc:
            typer.secho(f"error: {exc}", fg="red", err=True)
            raise typer.Exit(2) from None
        _write_clips(out, audio[None] if audio.ndim == 1 else audio, sample_rate, server, one_file=audio.ndim == 1)
        return
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", MelRangeWarning)
            audio, sample_rate = synthesize(
                model, mel=mel, wav=wav, mel_config=mel_config, speaker=speaker, resample=resample, n=n, seed=seed,
                latents=latents, label=label, backend=backend, tracking_uri=tracking_uri)
    except SynthesisError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    for w in caught:  # a mel of another kind than the model's: said, not fatal; other warnings as usual
        if issubclass(w.category, MelRangeWarning):
            typer.secho(f"warning: {w.message}", fg="yellow", err=True)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    if mel is not None and audio.ndim == 2 and audio.shape[0] == 1:  # a (1, n_mels, frames) array: one mel
        audio = audio[0]
    if audio.ndim == 1:
        _write_clips(out, audio[None], sample_rate, model, one_file=True)
    else:
        _write_clips(out, audio, sample_rate, model)


@app.command("serve")
def serve_command(
    model: str = typer.Option(None, "--model", "-m", help="models:/NAME@ALIAS (followed), models:/NAME/3, a model "
                              "folder or a generator file (default: serve.model, else the project's champion)."),
    host: str = typer.Option(None, "--host"), port: int = typer.Option(None, "--port"),
    backend: str = typer.Option(None, "--backend", help="torch | onnx"),
    threads: int = typer.Option(None, "--threads"), workers: int = typer.Option(None, "--workers"),
    queue: int = typer.Option(None, "--queue"), poll_seconds: float = typer.Option(None, "--poll-seconds"),
    max_request_mb: float = typer.Option(None, "--max-request-mb"),
    api_key_env: str = typer.Option(None, "--api-key-env", help="Name of the variable holding the bearer token."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help="MLflow store of models:/ URIs."),
    params: Path = ParamsOpt,
) -> None:
    """Serve a vocoder over HTTP (serve.* of params.yaml; these flags override it): /v1/vocode,
    /v1/copy-synthesis, /v1/generate, /v1/model, /healthz, /readyz, /metrics (README: Serve it)."""
    from ganpipe.serving.server import run_command

    overrides = {"model": model, "host": host, "port": port, "backend": backend, "threads": threads,
                 "workers": workers, "queue": queue, "poll_seconds": poll_seconds, "max_request_mb": max_request_mb,
                 "api_key_env": api_key_env}
    raise typer.Exit(run_command(params, overrides, tracking_uri))


@app.command("mel")
def mel_command(
    wavs: list[Path] = typer.Argument(..., help="WAV file(s)."),
    out: Path = typer.Option(..., "--out", "-o", help="The .npy file (one WAV) or a folder (<name>.npy each)."),
    model: str = typer.Option(None, "--model", "-m", help="The mel this model takes: a generator file, "
                                                          "models:/NAME@alias, models:/NAME/3 or a model folder."),
    preset: str = typer.Option(None, "--preset", help="Or a mel preset: hifigan | pwg | params (params.yaml's mel)."),
    resample: bool = typer.Option(False, "--resample", help="Resample audio at another rate to the mel's (soxr)."),
    tracking_uri: str = typer.Option(None, "--tracking-uri", help="MLflow store of models:/ URIs."),
    params: Path = ParamsOpt,
) -> None:
    """WAV(s) -> exactly the (n_mels, frames) .npy log-mel that `ganpipe synthesize --mel` and the REST
    endpoint expect from --model (its own mel, un-normalised: the model normalises itself)."""
    from ganpipe.mel_export import MelExportError, export, source_of

    try:
        source = source_of(model, preset, params, tracking_uri)
        done = export(wavs, out, source, resample)
    except MelExportError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps({"mels": done, "mel_config": source.config.to_dict()}))


def _write_clips(out: Path, clips, sample_rate: int, model: str, one_file: bool = False) -> None:
    """One clip -> ``out`` (a .wav file) or ``out/clip_000.wav``; several -> ``out/clip_NNN.wav``
    (``out`` a folder) or ``NAME_NNN.wav`` beside ``out`` = ``NAME.wav``. ``one_file``: the audio of a
    vocoder, written to ``out`` whatever its name (the JSON names one file)."""
    from ganpipe.audio import write_audio

    if one_file:
        write_audio(out, clips[0], sample_rate, "pcm16")
        typer.echo(json.dumps({"out": str(out), "sample_rate": sample_rate, "samples": int(clips.shape[-1]),
                               "seconds": round(clips.shape[-1] / sample_rate, 3), "model": model}))
        return
    if out.suffix.lower() == ".wav":
        paths = [out] if len(clips) == 1 else [out.with_name(f"{out.stem}_{i:03d}.wav") for i in range(len(clips))]
    else:
        if out.exists() and not out.is_dir():
            typer.secho(f"error: {out} exists and is not a folder (name a .wav file or a folder)", fg="red", err=True)
            raise typer.Exit(2)
        paths = [out / f"clip_{i:03d}.wav" for i in range(len(clips))]
    for path, clip in zip(paths, clips):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_audio(path, clip, sample_rate, "pcm16")
    typer.echo(json.dumps({"out": [str(p) for p in paths], "sample_rate": sample_rate,
                           "samples": int(clips.shape[-1]), "seconds": round(clips.shape[-1] / sample_rate, 3),
                           "model": model}))


@app.command()
def schedule(
    cron: str = typer.Option("0 3 * * 0", "--cron", help="Cron schedule of the retrain (default: Sundays 03:00)."),
    timezone: str = typer.Option("UTC", "--timezone", help="Time zone of the cron schedule."),
    name: str = typer.Option("ganpipe-retrain", "--name", help="Deployment name (retrain/<name>)."),
    pull: bool = typer.Option(False, "--pull/--no-pull", help="dvc pull before the pipeline."),
    push: bool = typer.Option(True, "--push/--no-push", help="dvc push after the pipeline."),
    fine_tune: bool = typer.Option(False, "--fine-tune", help="Start training from the champion's weights."),
    command: str = typer.Option(None, "--command", help="Run this instead of dvc repro (shell-split)."),
    when_changed: bool = typer.Option(False, "--when-changed",
                                      help="Check every --poll-minutes instead of the cron schedule; a cycle "
                                           "retrains only when the data (or code, params) changed."),
    poll_minutes: int = typer.Option(15, "--poll-minutes", help="With --when-changed: minutes between checks."),
    pool: str = typer.Option(None, "--pool",
                             help="Deploy to this Prefect process work pool (created if missing) and return, "
                                  "instead of serving: `prefect worker start --pool NAME` runs the retrains."),
    params: Path = ParamsOpt,
) -> None:
    """Serve the retrain flow on a cron schedule: creates the Prefect deployment retrain/<name> on
    the server at PREFECT_API_URL (start one with `prefect server start`) and runs its scheduled
    and manually triggered runs (`prefect deployment run retrain/<name>`) until stopped (Ctrl-C).
    With --pool NAME it deploys to a process work pool instead and returns: the runs go to
    `prefect worker start --pool NAME` processes (on the GPU machine, say; same checkout path).
    Each run: dvc status (nothing changed: no new version, in seconds) -> dvc repro -> dvc push ->
    register -> promote only if better -> commit + tag."""
    _check(params)
    extra = ["--serve", "--cron", cron, "--timezone", timezone, "--name", name]
    extra += ["--when-changed", "--poll-minutes", str(poll_minutes)] if when_changed else []
    extra += ["--pool", pool] if pool else []
    extra += (["--pull"] if pull else []) + ([] if push else ["--no-push"]) + (["--fine-tune"] if fine_tune else [])
    extra += ["--command", command] if command else []
    _run_flow("retrain", params, extra)


if __name__ == "__main__":
    app()
