"""Typed, validated configuration loaded from ``params.yaml``.

Every knob of the pipeline lives in ``params.yaml``. :func:`load_params` reads it into the
:class:`Params` tree below and fails *before any work* with a :class:`ConfigError` that names the
offending key (dotted path) and, where the choice is closed, the allowed values.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ganpipe.models.catalogue import VARIANT_NAMES

if TYPE_CHECKING:
    from ganpipe.mel import MelConfig

DEFAULT_PARAMS = Path("params.yaml")


class ConfigError(ValueError):
    """A configuration problem, with the offending key named in the message."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------
# dataset
# --------------------------------------------------------------------------------------------
DatasetName = Literal["demo", "demo_music", "ljspeech", "vctk", "libritts", "sc09", "maestro", "local"]
LibriTTSSubset = Literal[
    "dev-clean", "dev-other", "test-clean", "test-other",
    "train-clean-100", "train-clean-360", "train-other-500",
]


class DemoParams(_Strict):
    """The embedded, synthetic default corpus (see ganpipe/datasets/demo.py)."""

    n_speakers: int = Field(4, ge=1, le=64)
    utterances_per_speaker: int = Field(20, ge=1, le=10_000)
    min_seconds: float = Field(1.5, gt=0.1)
    max_seconds: float = Field(4.0, gt=0.1)
    sample_rate: int = Field(22050, ge=8000, le=96000)
    seed: int = 1234

    @model_validator(mode="after")
    def _range(self) -> DemoParams:
        if self.max_seconds < self.min_seconds:
            raise ValueError("max_seconds must be >= min_seconds")
        return self


class DemoMusicParams(_Strict):
    """The embedded, synthetic piano-like corpus (see ganpipe/datasets/demo_music.py)."""

    pieces: int = Field(24, ge=1, le=10_000)
    min_seconds: float = Field(6.0, ge=2.0)
    max_seconds: float = Field(12.0, ge=2.0)
    sample_rate: int = Field(16000, ge=8000, le=96000)
    reverb: float = Field(0.35, ge=0.0, le=1.0)  # wet share of the room reverb (0 = dry)
    seed: int = 1234

    @model_validator(mode="after")
    def _range(self) -> DemoMusicParams:
        if self.max_seconds < self.min_seconds:
            raise ValueError("max_seconds must be >= min_seconds")
        return self


class DownloadParams(_Strict):
    retries: int = Field(3, ge=0, le=20)
    retry_delay_seconds: float = Field(5.0, ge=0)
    timeout_seconds: float = Field(60.0, gt=0)
    chunk_bytes: int = Field(1 << 20, ge=4096)
    # Optional mirror: replaces the registry URL of a single-archive dataset (same checksum).
    url_override: str | None = None


class DatasetParams(_Strict):
    name: DatasetName = "demo"
    raw_dir: str = "data/raw"
    # dataset 'local': a directory of wav/flac/ogg files; speaker taken from the first sub-folder.
    # Always a path: dvc.yaml makes it a dependency of the download stage (DVC hashes the folder,
    # by content, wherever it is), so its default is the project's own, near-empty data/local.
    local_dir: str = "data/local"
    speaker_from_subfolder: bool = True
    libritts_subsets: tuple[LibriTTSSubset, ...] = ("dev-clean",)
    demo: DemoParams = DemoParams()
    demo_music: DemoMusicParams = DemoMusicParams()
    # maestro: null downloads the whole archive (~101 GB); N fetches only the first N performances
    # of maestro_split (per the archive's CSV) with HTTP Range requests, each CRC32-checked.
    maestro_max_files: int | None = Field(None, ge=1)
    maestro_max_hours: float | None = Field(None, gt=0.0)  # or a duration budget (CSV durations); both: the smaller
    maestro_split: Literal["train", "validation", "test"] = "train"
    # a server that ignores Range requests: error (stop, naming the URL) or full (download it all)
    maestro_without_range: Literal["error", "full"] = "error"
    download: DownloadParams = DownloadParams()

    @model_validator(mode="after")
    def _local(self) -> DatasetParams:
        if not self.local_dir:
            raise ValueError("dataset.local_dir must be a folder (default data/local): dvc.yaml's "
                             "download stage depends on it")
        if self.name == "libritts" and not self.libritts_subsets:
            raise ValueError("dataset.libritts_subsets must name at least one subset")
        return self


# --------------------------------------------------------------------------------------------
# audio (prepare stage)
# --------------------------------------------------------------------------------------------
class ClipParams(_Strict):
    """Long audio (music) cut into training clips by the prepare stage (ganpipe/prepare.py)."""

    # auto: on for corpora of long pieces (ganpipe.datasets.corpora: maestro, demo_music), off for
    # the speech corpora; true/false force it.
    enabled: Literal["auto"] | bool = "auto"
    seconds: float = Field(4.0, ge=0.5, le=600.0)  # longest clip; each ends at the quietest moment of its last quarter


class AudioParams(_Strict):
    sample_rate: int = Field(22050, ge=8000, le=96000)
    output_format: Literal["pcm16", "float"] = "pcm16"
    normalize: Literal["none", "peak", "loudness"] = "none"
    peak_db: float = Field(-1.0, le=0.0)
    loudness_lufs: float = Field(-23.0, le=0.0, ge=-70.0)
    trim_silence: bool = True
    trim_top_db: float = Field(40.0, gt=0.0)
    trim_margin_seconds: float = Field(0.05, ge=0.0)
    resample_quality: Literal["VHQ", "HQ", "MQ", "LQ", "QQ"] = "VHQ"  # libsoxr quality
    silence_threshold_db: float = Field(-60.0, le=0.0)
    min_seconds: float = Field(0.5, ge=0.0)
    max_seconds: float = Field(30.0, gt=0.0)  # with clips on: not applied to the (cut) source
    clips: ClipParams = ClipParams()


# --------------------------------------------------------------------------------------------
# mel
# --------------------------------------------------------------------------------------------
MelPresetName = Literal["hifigan", "pwg", "custom", "from_model"]

# Reference parameter sets. ``hifigan``: jik876/hifi-gan config_v1 (22.05 kHz). ``pwg``: the
# kan-bayashi ParallelWaveGAN LJSpeech recipe (log10, 80-7600 Hz, mean/var normalised features).
MEL_PRESETS: dict[str, dict[str, Any]] = {
    "hifigan": dict(n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=0.0, fmax=8000.0,
                    log_base="e", clamp=1e-5, normalize="none"),
    "pwg": dict(n_fft=1024, hop_length=256, win_length=1024, n_mels=80, fmin=80.0, fmax=7600.0,
                log_base="10", clamp=1e-10, normalize="meanvar"),
}


class MelParams(_Strict):
    """``preset`` supplies defaults; any field given explicitly overrides it. ``from_model``: the whole
    mel configuration and its statistics are the starting model's (``train.fine_tune_from``), resolved
    by the validate stage (ganpipe.training.starting_model); no field may be set beside it."""

    preset: MelPresetName = "hifigan"
    n_fft: int | None = Field(None, ge=16, le=16384)
    hop_length: int | None = Field(None, ge=1)
    win_length: int | None = Field(None, ge=16)
    n_mels: int | None = Field(None, ge=1, le=512)
    fmin: float | None = Field(None, ge=0.0)
    fmax: float | None = Field(None, gt=0.0)
    log_base: Literal["e", "10"] | None = None
    clamp: float | None = Field(None, gt=0.0)
    normalize: Literal["none", "meanvar"] | None = None

    @model_validator(mode="after")
    def _custom_complete(self) -> MelParams:
        if self.preset == "custom":
            missing = [k for k in MEL_PRESETS["hifigan"] if getattr(self, k) is None]
            if missing:
                raise ValueError(f"preset 'custom' needs every mel field; missing: {', '.join(missing)}")
        if self.preset == "from_model":
            given = [k for k in MEL_PRESETS["hifigan"] if getattr(self, k) is not None]
            if given:
                raise ValueError("preset 'from_model' takes every mel field from train.fine_tune_from's model; "
                                 f"remove: {', '.join(f'mel.{k}' for k in given)}")
        return self

    def resolved(self) -> dict[str, Any]:
        if self.preset == "from_model":
            raise ValueError("mel.preset: from_model: the mel is the starting model's (train.fine_tune_from); "
                             "resolve it with ganpipe.training.starting_model.resolve_feature_mel")
        base = dict(MEL_PRESETS.get(self.preset, {}))
        for key in MEL_PRESETS["hifigan"]:
            value = getattr(self, key)
            if value is not None:
                base[key] = value
        return base


# --------------------------------------------------------------------------------------------
# split, features
# --------------------------------------------------------------------------------------------
class SplitParams(_Strict):
    # hash: a clip's split is a pure function of its own id (a salted hash bucket), so a growing
    # corpus never moves a clip; seeded: exact per-group counts from a seeded ranking (a clip can
    # move when others are added). See ganpipe/split.py.
    method: Literal["hash", "seeded"] = "hash"
    seed: int = 1234  # the salt of the hash / the seed of the ranking
    valid_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    # seeded: stratify by speaker (every speaker contributes to every split in proportion).
    per_speaker: bool = True
    # hash: what the hash is of: each utterance's id, or its speaker's (speaker-level split: all
    # clips of a speaker in one split, unseen speakers in valid/test).
    unit: Literal["utterance", "speaker"] = "utterance"
    # Optional CSV/TSV with columns ``utt_id,split`` that fixes the split of every utterance.
    list_file: str | None = None
    # Golden sets: files listing utterance ids (one a line, or the first CSV column); a listed id is
    # in that split whatever the hash says; ids not in the corpus (yet) are ignored. With test_list
    # set, only its ids are test (the rest: valid by hash, or valid_list, else train).
    test_list: str | None = None
    valid_list: str | None = None

    @model_validator(mode="after")
    def _sum(self) -> SplitParams:
        if self.valid_fraction + self.test_fraction >= 1.0:
            raise ValueError("valid_fraction + test_fraction must be < 1")
        if self.list_file and (self.test_list or self.valid_list):
            raise ValueError("split.list_file fixes every split: use it or split.test_list / split.valid_list, "
                             "not both")
        if self.method == "seeded" and (self.test_list or self.valid_list):
            raise ValueError("split.test_list / split.valid_list need split.method: hash (allowed: hash, seeded)")
        return self


class FeaturesParams(_Strict):
    task_runner: Literal["threads", "dask"] = "threads"
    workers: int = Field(2, ge=1, le=1024)
    # Address of an existing Dask scheduler (tcp://host:8786); null starts a local cluster.
    dask_address: str | None = None
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Utterances per Prefect task (a shard); batching happens inside a shard.
    shard_size: int = Field(64, ge=1)
    # Maximum seconds of audio stacked into one batched STFT call.
    batch_seconds: float = Field(60.0, gt=0.0)


# --------------------------------------------------------------------------------------------
# model, train
# --------------------------------------------------------------------------------------------
Auto = Literal["auto"]


class ModelParams(_Strict):
    variant: str = "hifigan_v3"  # a name of ganpipe.models.catalogue.VARIANT_NAMES
    # Architecture overrides passed to ganpipe.models.build (e.g. upsample_initial_channel: 128);
    # unknown names fail at build time with the variant's allowed options.
    overrides: dict[str, Any] = Field(default_factory=dict)
    # Conditioning on speaker (vocoders) / class (wavegan, specgan) labels from the manifest.
    conditioning: Literal["none", "labels"] = "none"
    # Auxiliary classifier loss on the discriminators (AC-GAN); needs conditioning: labels.
    ac_gan: bool = False

    @field_validator("variant")
    @classmethod
    def _known_variant(cls, value: str) -> str:
        if value not in VARIANT_NAMES:
            raise ValueError(f"unknown variant {value!r}; allowed: {', '.join(VARIANT_NAMES)}")
        return value

    @model_validator(mode="after")
    def _ac(self) -> ModelParams:
        if self.ac_gan and self.conditioning == "none":
            raise ValueError("model.ac_gan needs model.conditioning: labels")
        return self


class TrainParams(_Strict):
    """Training loop knobs. ``auto`` takes the value of the variant's published recipe
    (ganpipe/training/recipes.py)."""

    steps: int = Field(300, ge=1)
    # auto = jik876's for HiFi-GAN (the paper's code), else the ParallelWaveGAN toolkit's LJSpeech
    # recipe (WaveGAN/SpecGAN/mel_mlp_gan: their papers'); pwg = the toolkit's hifigan.v1.yaml for HiFi-GAN
    recipe: Literal["auto", "jik876", "pwg", "vocos", "paper", "bigvgan"] = "auto"
    batch_size: Annotated[int, Field(ge=1)] | Auto = "auto"
    segment_samples: int | Auto = "auto"  # vocoders: audio samples per example (multiple of hop)
    # hinge-relu: hinge for G too, relu(1 - D(G(x))) (Vocos)
    adversarial_loss: Literal["auto", "bce", "lsgan", "hinge", "hinge-relu", "wgan-gp"] = "auto"
    label_smoothing: float = Field(0.0, ge=0.0, lt=0.5)  # one-sided, on real labels (bce)
    lr_generator: float | Auto = "auto"
    lr_discriminator: float | Auto = "auto"
    optimizer: Literal["auto", "adam", "adamw", "radam"] = "auto"
    adam_betas: tuple[Annotated[float, Field(ge=0.0, lt=1.0)], Annotated[float, Field(ge=0.0, lt=1.0)]] | Auto = "auto"
    adam_eps: Annotated[float, Field(gt=0.0)] | Auto = "auto"
    weight_decay: Annotated[float, Field(ge=0.0)] | Auto = "auto"
    amsgrad: bool | Auto = "auto"
    scheduler: Literal["auto", "exponential_per_epoch", "exponential_per_update", "step", "multistep",
                       "cosine_warmup"] = "auto"
    lr_gamma: Annotated[float, Field(gt=0.0, le=1.0)] | Auto = "auto"
    lr_step_size: Annotated[int, Field(ge=1)] | Auto = "auto"  # scheduler: step (updates)
    lr_milestones: list[Annotated[int, Field(ge=1)]] | Auto = "auto"  # scheduler: multistep (updates)
    lr_warmup_steps: Annotated[int, Field(ge=0)] | Auto = "auto"  # scheduler: cosine_warmup (updates)
    lr_total_steps: Annotated[int, Field(ge=1)] | Auto = "auto"  # scheduler: cosine_warmup: lr 0 here (updates)
    # a discriminator's (mpd, mrd, msd...) weight in the adversarial + feature-matching losses; others 1
    discriminator_weights: dict[str, Annotated[float, Field(ge=0.0)]] | Auto = "auto"
    lambda_mel: float | Auto = "auto"
    lambda_fm: float | Auto = "auto"
    lambda_adv: float | Auto = "auto"
    lambda_stft: float | Auto = "auto"
    lambda_gp: float = Field(10.0, ge=0.0)
    lambda_ac: float = Field(1.0, ge=0.0)
    critic_steps: int | Auto = "auto"  # discriminator updates per generator update
    discriminator_start_step: int | Auto = "auto"  # two-stage training: G alone before this step
    mel_loss_fmax: Annotated[float, Field(gt=0.0)] | None | Auto = "auto"  # mel L1 loss top (Hz); null: full band
    # the mel L1 loss: jik876 (the feature mel's frames), centred (the toolkit's), multiscale (BigVGAN-v2's 7 scales),
    # torchaudio (Vocos' loss mel)
    mel_loss_framing: Literal["auto", "jik876", "centred", "multiscale", "torchaudio"] = "auto"
    fm_include_final: bool | Auto = "auto"  # feature matching counts each discriminator's final output too
    average_by_discriminators: bool | Auto = "auto"  # adversarial/feature losses: mean over sub-discriminators
    update_order: Literal["auto", "d_first", "g_first"] = "auto"
    grad_clip_generator: Annotated[float, Field(ge=0.0)] | Auto = "auto"  # max grad norm, 0 = off
    grad_clip_discriminator: Annotated[float, Field(ge=0.0)] | Auto = "auto"
    grad_clip_per_discriminator: bool | Auto = "auto"  # each discriminator clipped apart (BigVGAN)
    grad_clip: float = Field(0.0, ge=0.0)  # > 0: both networks at this norm (where grad_clip_* are auto)
    ema_decay: float = Field(0.0, ge=0.0, lt=1.0)  # 0 = off; else EMA of generator weights
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"  # autocast (CUDA or CPU); fp16 adds a GradScaler
    compile: bool = False  # torch.compile of the generator/discriminator forwards
    device: Literal["auto", "cpu", "cuda"] = "auto"
    num_workers: int = Field(2, ge=0)
    checkpoint_every: int = Field(100, ge=1)
    keep_last: int = Field(3, ge=1)
    log_every: int = Field(10, ge=1)
    validate_every: int = Field(100, ge=1)
    samples_to_log: int = Field(2, ge=0)
    max_nonfinite_steps: int = Field(20, ge=1)  # consecutive skipped steps before stopping
    seed: int = 1234
    threads: int = Field(0, ge=0)  # torch CPU threads; 0 = library default
    # a generator file (ours or an imported published one), a training checkpoint or models:/NAME@alias
    fine_tune_from: str | None = None
    # also start the discriminators from fine_tune_from's (a file holding discriminators_state_dict)
    fine_tune_discriminator: bool = False
    # DDP under torchrun when nproc_per_node * nnodes > 1 (ganpipe/training/launch.py); several nodes meet at
    # torchrun's c10d rendezvous, rdzv_endpoint (host:port on one of them), as the job rdzv_id
    nproc_per_node: int = Field(1, ge=1, le=1024)
    nnodes: int = Field(1, ge=1, le=4096)
    rdzv_endpoint: str | None = None
    rdzv_id: str = Field("ganpipe", pattern=r"^[A-Za-z0-9_.-]+$")
    dist_backend: Literal["auto", "nccl", "gloo"] = "auto"  # auto: nccl on CUDA, gloo on the CPU

    @model_validator(mode="after")
    def _fine_tune(self) -> TrainParams:
        if self.fine_tune_discriminator and not self.fine_tune_from:
            raise ValueError("train.fine_tune_discriminator needs train.fine_tune_from (the file whose "
                             "discriminators to start from)")
        return self

    @field_validator("rdzv_endpoint")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is None:
            return value
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"train.rdzv_endpoint must be host:port (e.g. node0.example:29400), got {value!r}")
        return value

    @model_validator(mode="after")
    def _rendezvous(self) -> TrainParams:
        if self.nnodes > 1 and self.rdzv_endpoint is None:
            raise ValueError(f"train.nnodes: {self.nnodes} needs train.rdzv_endpoint (host:port of the c10d "
                             "rendezvous, on one of the nodes, the same in every node's params.yaml)")
        return self


class EvaluationParams(_Strict):
    split: Literal["train", "valid", "test"] = "test"
    max_utterances: int | None = Field(None, ge=1)  # null = the whole split
    samples_to_save: int = Field(4, ge=0)  # generated wavs + mel plots kept for listening
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # Vocoders: Griffin-Lim from the same mel, scored beside the model (0 = no baseline)
    griffin_lim_iterations: int = Field(32, ge=0, le=1000)
    # Unconditional variants: generated clips compared with the split's clips.
    generated_clips: int = Field(64, ge=2)
    ndb_bins: int = Field(10, ge=2)


# Artifact stores an experiment may name (tracking.artifact_location as a URI, not a folder).
ARTIFACT_SCHEMES = ("file", "s3", "gs", "wasbs", "hdfs", "sftp", "mlflow-artifacts")


class TrackingParams(_Strict):
    """MLflow tracking + registry (a sqlite database and an artifact folder inside the project).

    ``$MLFLOW_TRACKING_URI`` wins over ``tracking_uri`` (a team's server: its address and
    credentials live in the environment, never here; ganpipe/mlflow_store.py)."""

    enabled: bool = True
    tracking_uri: str = "sqlite:///.mlflow/mlflow.db"
    # A folder (relative to the project) or a URI of ARTIFACT_SCHEMES; on a tracking server
    # (http/https) a folder is ignored: the server's artifact store is used.
    artifact_location: str = ".mlflow/artifacts"
    experiment: str = "ganpipe"
    # How long a step waits for an unreachable tracking server before it fails (register) or goes
    # on without it (training): ganpipe/tracking_outage.py.
    server_timeout_seconds: float = Field(120.0, gt=0.0, le=3600.0)

    @field_validator("tracking_uri")
    @classmethod
    def _no_password(cls, uri: str) -> str:
        from urllib.parse import urlsplit

        if urlsplit(uri).password is not None:
            raise ValueError("tracking.tracking_uri holds a password: params.yaml is committed; set "
                             "$MLFLOW_TRACKING_URI (or MLFLOW_TRACKING_USERNAME/MLFLOW_TRACKING_PASSWORD) instead")
        return uri

    @field_validator("artifact_location")
    @classmethod
    def _known_store(cls, location: str) -> str:
        head, sep, _ = location.partition(":")
        if sep and len(head) > 1 and head.lower() not in ARTIFACT_SCHEMES:
            raise ValueError(f"tracking.artifact_location {location!r}: a folder, or a URI of "
                             f"{', '.join(ARTIFACT_SCHEMES)}")
        return location


# Metrics a registry can promote on (the keys of metrics/eval.json; kept in step with
# ganpipe.metrics.METRIC_KEYS by tests/registry/test_registry.py). Unconditional variants: frechet_mel, ndb_fraction.
# auto: mcd for vocoders, frechet_mel for unconditional variants (ganpipe.promotion.primary_metric_for).
PrimaryMetric = Literal["auto", "mcd", "mrstft", "logmel_l1", "pesq", "f0_rmse_cents", "vuv_f1",
                        "frechet_mel", "ndb_fraction"]


class RegistryParams(_Strict):
    """Register stage + retraining: the MLflow registered model, its aliases and promotion rule.

    Every registered version gets ``candidate_alias``; it also gets ``champion_alias`` when it was
    made on the main line (``promote_from``) and there is no champion yet, or when its metrics are
    comparable with the champion's and it beats it on ``primary_metric`` by more than ``margin``
    (in the metric's own units; direction from ganpipe.metrics.HIGHER_IS_BETTER). ``auto``: ``mcd``
    for vocoders, ``frechet_mel`` for unconditional variants; an explicit metric must be a key of
    metrics/eval.json, or the registration fails naming the metrics there.
    """

    enabled: bool = True
    # null: ganpipe-<dataset.name>-<model.variant>
    model_name: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
    primary_metric: PrimaryMetric = "auto"
    margin: float = Field(0.0, ge=0.0)
    # main: only a version made on the main line (committed, not a DVC experiment) may displace the
    # champion; any: experiments and uncommitted changes too (see ganpipe/promotion.py).
    promote_from: Literal["main", "any"] = "main"
    candidate_alias: str = Field("candidate", pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    champion_alias: str = Field("champion", pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    # Score the champion (and a fine-tune's parent) on the new version's evaluation clips when its
    # evaluation set or mel differs, cached on its version (ganpipe/rescoring.py).
    rescore: bool = True
    # A floor on the primary metric: a version worse than this is never promoted (null: none).
    min_quality: float | None = None
    # auto: the rule promotes; manual: the version the rule would promote gets challenger_alias, and
    # `ganpipe promote NAME VERSION` (or the alias in the MLflow UI) makes it champion.
    approval: Literal["auto", "manual"] = "auto"
    challenger_alias: str = Field("challenger", pattern=r"^[A-Za-z_][A-Za-z0-9_\-]*$")
    # A fine-tune (train.fine_tune_from) worse than its parent on the same clips is not promoted.
    fine_tune_must_beat_parent: bool = True
    # Also log an ONNX export of the generator inside the model (pyfunc param backend=onnx).
    export_onnx: bool = True
    # also log the int8 export (pyfunc param backend=onnx-int8), calibrated on the
    # project's train/valid mels (or data/prepared clips); see ganpipe/lowprec/registration.py.
    export_int8: bool = False
    # Seconds to wait for another registration / DVC command holding the project lock.
    lock_timeout_seconds: float = Field(600.0, gt=0.0)
    # Prefect task retries of transient failures (DVC lock held, database busy, network).
    retries: int = Field(3, ge=0, le=20)
    retry_delay_seconds: float = Field(10.0, ge=0.0)

    @model_validator(mode="after")
    def _aliases(self) -> RegistryParams:
        if len({self.candidate_alias, self.champion_alias, self.challenger_alias}) < 3:
            raise ValueError("registry.candidate_alias, registry.champion_alias and registry.challenger_alias "
                             "must differ")
        for alias in (self.candidate_alias, self.champion_alias, self.challenger_alias):
            if alias.lower() == "latest" or (alias[:1] in "vV" and alias[1:].isdigit()):
                raise ValueError(f"alias {alias!r} is reserved by MLflow (latest, v<number>)")
        return self

    def registered_name(self, dataset: str, variant: str) -> str:
        return self.model_name or f"ganpipe-{dataset}-{variant}"


class RetrainParams(_Strict):
    """The retrain flow (flows/retrain.py): what a cycle leaves in git."""

    # auto: commit when the tree was clean at the start of the cycle; true: always (a dirty start
    # included: only the pipeline's outputs are committed); false: never. The commit (on the current
    # branch) holds dvc.lock, metrics and plots and is tagged <registered model>-v<version>.
    commit: bool | Literal["auto"] = "auto"


class ServeParams(_Strict):
    """``ganpipe serve`` (ganpipe/serving/server.py); each key also a CLI flag that overrides it."""

    model: str | None = None  # null: models:/<registry model name>@<registry.champion_alias>
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    backend: Literal["torch", "onnx"] = "torch"  # onnx: the ONNX export inside the registered model
    threads: int = Field(2, ge=1, le=256)  # torch / ONNX Runtime intra-op threads
    workers: int = Field(1, ge=1, le=64)  # inference calls at a time
    queue: int = Field(16, ge=0, le=10_000)  # requests waiting beyond the workers; more: 503 + Retry-After
    retry_after_seconds: int = Field(1, ge=1, le=3600)
    max_request_mb: float = Field(64.0, gt=0)  # larger bodies: 413
    poll_seconds: float = Field(30.0, ge=0)  # follow a models:/NAME@ALIAS every N s (0: never)
    stream_first_frames: int = Field(16, ge=1, le=100_000)  # first streamed block (time to first audio)
    stream_block_frames: int = Field(256, ge=1, le=100_000)  # later blocks (throughput)
    # The NAME of the environment variable holding the bearer token (the token itself never goes in
    # params.yaml); the variable unset or empty: no authentication.
    api_key_env: str = Field("GANPIPE_SERVE_API_KEY", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    cors_origins: list[str] = []  # [] = CORS off
    access_log: bool = True  # one JSON line per request on stderr


class Params(_Strict):
    dataset: DatasetParams = DatasetParams()
    audio: AudioParams = AudioParams()
    mel: MelParams = MelParams()
    split: SplitParams = SplitParams()
    features: FeaturesParams = FeaturesParams()
    # Sections owned by later stages are validated by their own models; accepted here as-is so
    # that one params.yaml can hold them.
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    tracking: TrackingParams = TrackingParams()
    evaluation: EvaluationParams = EvaluationParams()
    registry: RegistryParams = RegistryParams()
    retrain: RetrainParams = RetrainParams()
    serve: ServeParams = ServeParams()

    @model_validator(mode="after")
    def _cross(self) -> Params:
        if self.mel.preset == "from_model":  # the model's own mel: checked against audio.* at validate
            if not self.train.fine_tune_from:
                raise ValueError("mel.preset 'from_model' needs train.fine_tune_from (the model whose mel "
                                 "and statistics the features use)")
            return self
        mel = self.mel.resolved()
        nyquist = self.audio.sample_rate / 2
        if mel["fmax"] > nyquist:
            raise ValueError(
                f"mel.fmax ({mel['fmax']}) exceeds Nyquist ({nyquist}) of audio.sample_rate "
                f"({self.audio.sample_rate})")
        if mel["fmin"] >= mel["fmax"]:
            raise ValueError(f"mel.fmin ({mel['fmin']}) must be < mel.fmax ({mel['fmax']})")
        if mel["win_length"] > mel["n_fft"]:
            raise ValueError(f"mel.win_length ({mel['win_length']}) must be <= mel.n_fft ({mel['n_fft']})")
        if mel["hop_length"] > mel["win_length"]:
            raise ValueError(f"mel.hop_length ({mel['hop_length']}) must be <= mel.win_length")
        return self

    def mel_config(self) -> MelConfig:
        """The mel of params.yaml (``mel.preset: from_model``: a ValueError; the model's mel is read by
        ganpipe.training.starting_model.resolve_feature_mel)."""
        from ganpipe.mel import MelConfig

        return MelConfig(sample_rate=self.audio.sample_rate, **self.mel.resolved())


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """Field names of the section at ``loc`` (e.g. ('mel',)) of the Params tree."""
    model: Any = Params
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return []
        model = field.annotation
    return list(model.model_fields)


def _format_error(err: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    etype = err["type"]
    if etype == "extra_forbidden":
        allowed = _allowed_keys(err["loc"][:-1])
        return f"unknown key '{key}'" + (f" (allowed: {', '.join(allowed)})" if allowed else "")
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    got = err.get("input")
    if etype in ("literal_error", "enum"):
        return f"key '{key}': {msg} (got {got!r})"
    if etype == "value_error":
        return f"key '{key}': {msg}" if err["loc"] else msg
    return f"key '{key}': {msg} (got {got!r})"


def parse_params(data: dict[str, Any] | None, source: str = "params.yaml") -> Params:
    """Validate a parsed params mapping; raise :class:`ConfigError` naming each bad key."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping, got {type(data).__name__}")
    try:
        return Params.model_validate(data)
    except ValidationError as exc:
        lines = [_format_error(e) for e in exc.errors(include_url=False)]
        raise ConfigError(f"{source}: invalid configuration:\n  - " + "\n  - ".join(lines)) from None


def load_params(path: str | Path = DEFAULT_PARAMS) -> Params:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"parameters file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_params(data, source=str(path))

