""":class:`ModelBundle`: a built generator, its discriminators, and what the trainer needs to know."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from torch import nn

from .normalization import count_parameters

ModelKind = Literal["vocoder", "unconditional"]
Conditioning = Literal["none", "speaker", "class"]
AdversarialLoss = Literal["lsgan", "hinge", "hinge-relu", "wgan-gp", "bce"]
VariantKind = Literal["vocoder", "waveform", "spectrogram", "frames"]


@dataclass(frozen=True)
class VariantDescription:
    """What the pipeline needs to know about a variant. Stages (training, evaluation, packaging,
    serving) ask this — never the variant's name; each variant's builder in :mod:`.registry` fills it.

    kind: ``vocoder`` (mel -> waveform), ``waveform`` (latent -> waveform clip), ``spectrogram``
        (latent -> log-magnitude image; ``generator.spectrogram`` fits its statistics, normalises real
        clips and renders audio by Griffin-Lim) or ``frames`` (latent -> single mel frames, no audio).
    consumes: what the generator takes (``mel`` or ``latent``).
    discriminates: what the discriminators see of a real training example (``waveform``,
        ``log_magnitude``, ``mel_frame``).
    mel_params: the build options taken from the ``mel`` section when params.yaml does not set them.
    label_option: the build option that takes the number of labels (``n_speakers`` / ``n_classes``).
    subbands: the training forward is ``generator.forward_subbands`` (PQMF sub-bands, ``generator.pqmf``).
    clip_samples / sample_rate: the audio clip an unconditional generator makes (None: vocoders, frames).
    onnx_exportable: the whole path to audio can be exported to ONNX (vocoders that draw their own
        noise are refused at export, see ganpipe.serving.backends).
    rendering / latent_distribution: how the audio is made and the latents drawn (model metadata).
    """

    kind: VariantKind
    consumes: Literal["mel", "latent"]
    discriminates: Literal["waveform", "log_magnitude", "mel_frame"]
    mel_params: tuple[str, ...]
    label_option: Literal["n_speakers", "n_classes"]
    subbands: bool
    clip_samples: int | None
    sample_rate: int
    onnx_exportable: bool
    rendering: str | None = None
    latent_distribution: str | None = None

    @property
    def makes_audio(self) -> bool:
        return self.kind != "frames"

    def needs_statistics(self, generator: nn.Module) -> bool:
        """A spectrogram generator whose normalisation statistics were never fitted (no audio yet)."""
        return self.kind == "spectrogram" and not bool(generator.spectrogram.fitted)

    def to_audio(self, generator: nn.Module, output: Any) -> Any:
        """The generator's output as a waveform ``(B, 1, samples)``."""
        if self.kind == "spectrogram":
            return generator.spectrogram.to_audio(output)
        if self.kind == "frames":
            raise ValueError("this generator makes single mel frames, not audio")
        return output

    def real_example(self, generator: nn.Module, batch: dict[str, Any]) -> Any:
        """What the discriminators see of a real training batch (``wav`` / ``mel`` keys)."""
        if self.discriminates == "log_magnitude":
            return generator.spectrogram.normalize(batch["wav"])
        if self.discriminates == "mel_frame":
            return batch["mel"]
        return batch["wav"]


@dataclass(frozen=True)
class TensorSpec:
    """Per-example tensor layout; ``None`` marks the variable axis (mel frames / samples).

    names: ``mel`` (log-mel, ``(n_mels, frames)``), ``latent`` (``(latent_dim,)``), ``waveform``
    (``(1, samples)``, in [-1, 1]), ``log_magnitude`` (SpecGAN's normalised ``(1, 128, 128)``),
    ``mel_frame`` (``(n_mels,)``).
    """

    name: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class ModelBundle:
    """Everything :func:`ganpipe.models.build` makes for one variant.

    variant / config: the registry name and the resolved hyper-parameters;
        ``build(variant, **config)`` rebuilds the same architecture.
    kind: ``vocoder`` (mel -> audio; ``generator(mel, speaker=None)``) or ``unconditional``
        (latent -> sample; ``generator(z, labels=None)``, ``generator.sample_latent(n)``).
    discriminators: every adversary, each called as ``d(x, labels=None)`` and returning a
        :class:`~ganpipe.models.outputs.DiscriminatorOutput`.
    hop_length: vocoders: samples generated per mel frame (the generator's upsampling factor);
        ``None`` for unconditional models.
    min_frames: vocoders: the fewest mel frames the generator accepts (MelGAN-style reflection
        padding needs a few); ``None`` for unconditional models.
    conditioning / n_classes: label conditioning of the generator (speaker ids for vocoders, class
        ids otherwise) and the number of ids (0 when ``none``).
    discriminator_uses_labels: the discriminators have a projection head and need ``labels``.
    discriminator_classifies: the discriminators return AC-GAN ``class_logits``.
    adversarial_loss: the loss the reference trains this model with (a recommendation; the trainer
        uses the variant's recipe row, ganpipe/training/recipes.py).
    description: what the pipeline needs to know about the variant (:class:`VariantDescription`).
    """

    variant: str
    kind: ModelKind
    generator: nn.Module
    discriminators: nn.ModuleDict
    sample_rate: int
    hop_length: int | None
    min_frames: int | None
    input_spec: TensorSpec
    output_spec: TensorSpec
    conditioning: Conditioning
    n_classes: int
    discriminator_uses_labels: bool
    discriminator_classifies: bool
    adversarial_loss: AdversarialLoss
    config: dict[str, Any]
    description: VariantDescription

    def parameter_counts(self) -> dict[str, int]:
        """``{'generator': n, 'discriminator.<name>': n, ...}`` as the modules stand."""
        counts = {"generator": count_parameters(self.generator)}
        for name, module in self.discriminators.items():
            counts[f"discriminator.{name}"] = count_parameters(module)
        return counts
