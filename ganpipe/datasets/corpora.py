"""The corpora ganpipe knows how to fetch: where each archive lives, how big it is, its checksum.

Sources of the sizes and checksums (checked when this table was written):

* LJSpeech-1.1, VCTK 0.92, LibriTTS: TensorFlow Datasets ``checksums.tsv`` files (url, size in
  bytes, sha256), which agree with the sha256 values carried by torchaudio's dataset modules.
* MAESTRO v3.0.0: sha256 from the MAESTRO dataset page (magenta.tensorflow.org); the page gives the
  size only as "101GB", so the exact byte count is unknown (``size_bytes=None``).
* SC09 (WaveGAN tarball): no published size or checksum was found; both are ``None`` and
  :func:`ganpipe.datasets.download.fetch` downloads it unverified, with a warning.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

ChecksumAlgo = Literal["sha256", "md5"]

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")


class UnknownDatasetError(KeyError):
    """A dataset (or LibriTTS subset) name that the registry does not know."""

    def __str__(self) -> str:  # KeyError's default repr-quotes the message
        return str(self.args[0])


@dataclass(frozen=True)
class ArchiveSpec:
    """One downloadable archive of a corpus.

    ``size_bytes`` / ``checksum`` are ``None`` when no trustworthy published value exists; the
    download is then not verified. ``extracted_root`` is the single top-level folder inside the
    archive, or ``None`` when the archive's members sit at its root (VCTK 0.92).
    """

    url: str
    filename: str
    size_bytes: int | None
    checksum_algo: ChecksumAlgo
    checksum: str | None
    extracted_root: str | None

    def __post_init__(self) -> None:
        if self.checksum_algo not in ("sha256", "md5"):
            raise ValueError(f"{self.filename}: unsupported checksum_algo {self.checksum_algo!r}")
        if self.checksum is not None:
            want = 64 if self.checksum_algo == "sha256" else 32
            if len(self.checksum) != want or any(c not in "0123456789abcdef" for c in self.checksum):
                raise ValueError(f"{self.filename}: {self.checksum_algo} checksum must be {want} "
                                 f"lower-case hex digits, got {self.checksum!r}")
        if self.size_bytes is not None and self.size_bytes <= 0:
            raise ValueError(f"{self.filename}: size_bytes must be positive")

    @property
    def stem(self) -> str:
        """The file name without its archive extension (``dev-clean.tar.gz`` -> ``dev-clean``)."""
        for suffix in _ARCHIVE_SUFFIXES:
            if self.filename.endswith(suffix):
                return self.filename[: -len(suffix)]
        return self.filename

    @property
    def verified(self) -> bool:
        """True when a checksum is known, i.e. a download of it can be verified."""
        return self.checksum is not None


@dataclass(frozen=True)
class DatasetSpec:
    """A corpus: descriptive metadata, the layout used by :func:`layouts.discover`, its archives.

    ``sample_rate`` is the native rate of the audio (``None`` when it depends on the files).
    ``long_audio``: the files are long pieces (music), which the prepare stage cuts into training
    clips when ``audio.clips.enabled`` is ``auto``.
    """

    name: str
    description: str
    license: str
    sample_rate: int | None
    layout: str
    archives: tuple[ArchiveSpec, ...] = ()
    long_audio: bool = False


_OPENSLR_60 = "https://www.openslr.org/resources/60"

# (subset, size in bytes, sha256) -- TFDS libritts/checksums.tsv, same sha256 as torchaudio.
_LIBRITTS: tuple[tuple[str, int, str], ...] = (
    ("dev-clean", 1291469655, "da0864e1bd26debed35da8a869dd5c04dfc27682921936de7cff9c8a254dbe1a"),
    ("dev-other", 924804676, "d413eda26f3a152ac7c9cf3658ef85504dfb1b625296e5fa83727f5186cca79c"),
    ("test-clean", 1230670113, "234ea5b25859102a87024a4b9b86641f5b5aaaf1197335c95090cde04fe9a4f5"),
    ("test-other", 964502297, "33a5342094f3bba7ccc2e0500b9e72d558f72eb99328ac8debe1d9080402f10d"),
    ("train-clean-100", 7723686890,
     "c5608bf1ef74bb621935382b8399c5cdd51cd3ee47cec51f00f885a64c6c7f6b"),
    ("train-clean-360", 27504073644,
     "ce7cff44dcac46009d18379f37ef36551123a1dc4e5c8e4eb73ae57260de4886"),
    ("train-other-500", 44565031479,
     "e35f7e34deeb2e2bdfe4403d88c8fdd5fbf64865cae41f027a185a6965f0a5df"),
)

LIBRITTS_SUBSETS: tuple[str, ...] = tuple(s for s, _, _ in _LIBRITTS)

DATASETS: dict[str, DatasetSpec] = {
    "ljspeech": DatasetSpec(
        name="ljspeech",
        description="LJ Speech 1.1: 13,100 clips (~24 h) of a single female English speaker.",
        license="Public domain",
        sample_rate=22050,
        layout="ljspeech",
        archives=(ArchiveSpec(
            url="https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2",
            filename="LJSpeech-1.1.tar.bz2",
            size_bytes=2748572632,
            checksum_algo="sha256",
            checksum="be1a30453f28eb8dd26af4101ae40cbf2c50413b1bb21936cbcdc6fae3de8aa5",
            extracted_root="LJSpeech-1.1",
        ),),
    ),
    "vctk": DatasetSpec(
        name="vctk",
        description="CSTR VCTK Corpus 0.92: 110 English speakers, 48 kHz FLAC (mic1 used).",
        license="CC BY 4.0",
        sample_rate=48000,
        layout="vctk",
        archives=(ArchiveSpec(
            url="https://datashare.ed.ac.uk/bitstream/handle/10283/3443/VCTK-Corpus-0.92.zip",
            filename="VCTK-Corpus-0.92.zip",
            size_bytes=11747302977,
            checksum_algo="sha256",
            checksum="f96258be9fdc2cbff6559541aae7ea4f59df3fcaf5cf963aae5ca647357e359c",
            extracted_root=None,  # wav48_silence_trimmed/, txt/, ... sit at the zip's root
        ),),
    ),
    "libritts": DatasetSpec(
        name="libritts",
        description="LibriTTS (OpenSLR 60): multi-speaker English audiobook speech at 24 kHz.",
        license="CC BY 4.0",
        sample_rate=24000,
        layout="libritts",
        archives=tuple(
            ArchiveSpec(
                url=f"{_OPENSLR_60}/{subset}.tar.gz",
                filename=f"{subset}.tar.gz",
                size_bytes=size,
                checksum_algo="sha256",
                checksum=sha,
                extracted_root="LibriTTS",
            )
            for subset, size, sha in _LIBRITTS
        ),
    ),
    "sc09": DatasetSpec(
        name="sc09",
        description="SC09 (WaveGAN): spoken digits zero-nine from Speech Commands, 1 s at 16 kHz; "
                    "the digit is the class label.",
        license="CC BY 4.0",
        sample_rate=16000,
        layout="sc09",
        archives=(ArchiveSpec(
            url="http://deepyeti.ucsd.edu/cdonahue/sc09.tar.gz",
            filename="sc09.tar.gz",
            size_bytes=None,  # not published
            checksum_algo="sha256",
            checksum=None,  # not published
            extracted_root="sc09",
        ),),
    ),
    "maestro": DatasetSpec(
        name="maestro",
        description="MAESTRO v3.0.0: ~200 h of virtuosic piano (audio + MIDI), 44.1-48 kHz stereo.",
        license="CC BY-NC-SA 4.0",
        sample_rate=44100,
        layout="maestro",
        archives=(ArchiveSpec(
            url="https://storage.googleapis.com/magentadata/datasets/maestro/v3.0.0/"
                "maestro-v3.0.0.zip",
            filename="maestro-v3.0.0.zip",
            size_bytes=None,  # published only as "101GB"
            checksum_algo="sha256",
            checksum="6680fea5be2339ea15091a249fbd70e49551246ddbd5ca50f1b2352c08c95291",
            extracted_root="maestro-v3.0.0",
        ),),
        long_audio=True,
    ),
    "local": DatasetSpec(
        name="local",
        description="A local folder of wav/flac/ogg files; speaker from the first sub-folder.",
        license="(yours)",
        sample_rate=None,
        layout="local",
    ),
    "demo": DatasetSpec(
        name="demo",
        description="Embedded synthetic corpus generated on the fly (no download).",
        license="Apache-2.0 (generated)",
        sample_rate=22050,
        layout="demo",
    ),
    "demo_music": DatasetSpec(
        name="demo_music",
        description="Embedded synthetic piano-like music (chords, arpeggios, melodies with reverb), "
                    "generated on the fly (no download).",
        license="Apache-2.0 (generated)",
        sample_rate=16000,
        layout="demo",
        long_audio=True,
    ),
}


def get_dataset(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}") from None


def archives_for(name: str, libritts_subsets: Iterable[str] = ("dev-clean",)) -> list[ArchiveSpec]:
    """The archives to fetch for dataset ``name``, in download order.

    For ``libritts`` only the archives of ``libritts_subsets`` (in the order given, duplicates
    dropped); for ``local``/``demo``/``demo_music`` an empty list. Unknown names raise :class:`UnknownDatasetError`.
    """
    spec = get_dataset(name)
    if name != "libritts":
        return list(spec.archives)
    by_subset = {a.stem: a for a in spec.archives}
    chosen: list[ArchiveSpec] = []
    for subset in libritts_subsets:
        if subset not in by_subset:
            raise UnknownDatasetError(
                f"unknown LibriTTS subset {subset!r}; known: {', '.join(LIBRITTS_SUBSETS)}")
        if by_subset[subset] not in chosen:
            chosen.append(by_subset[subset])
    if not chosen:
        raise UnknownDatasetError("libritts needs at least one subset")
    return chosen
