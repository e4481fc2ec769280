"""A MAESTRO-like zip built in memory (the remote_zip and MAESTRO flow tests serve it over HTTP)."""

from __future__ import annotations

import io
import zipfile

import numpy as np

ROOT = "maestro-v3.0.0"
ZIP_PATH = "/maestro/maestro-v3.0.0.zip"
# (split, audio member relative to the CSV, duration in seconds, compression)
ROWS = [
    ("train", "2004/piece_a.wav", 100.0, zipfile.ZIP_DEFLATED),
    ("validation", "2004/piece_b.wav", 50.0, zipfile.ZIP_STORED),
    ("train", "2006/piece_c.wav", 200.0, zipfile.ZIP_STORED),
    ("test", "2006/piece_d.wav", 80.0, zipfile.ZIP_DEFLATED),
    ("train", "2008/piece_e.wav", 300.0, zipfile.ZIP_DEFLATED),
    ("train", "2009/piece_f.wav", 300.0, zipfile.ZIP_DEFLATED),
]


def _wav_bytes(seed: int) -> bytes:
    """A real (noisy, so hardly compressible) 16-bit WAV of 4 s (128 kB)."""
    import soundfile as sf

    rng = np.random.default_rng(seed)
    t = np.arange(64000) / 16000
    x = 0.3 * np.sin(2 * np.pi * (220 + 40 * seed) * t) + 0.05 * rng.standard_normal(t.size)
    buf = io.BytesIO()
    sf.write(buf, x.astype(np.float32), 16000, subtype="PCM_16", format="WAV")
    return buf.getvalue()


def build_zip(rows=ROWS, zip64_member: int = 2) -> tuple[bytes, dict[str, bytes]]:
    """A MAESTRO-like zip: ROOT/maestro-v3.0.0.csv, the audio members, MIDI files; member
    ``zip64_member`` is written with zip64 extra fields."""
    members: dict[str, bytes] = {}
    csv_lines = ["canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration"]
    for i, (split, audio, seconds, _) in enumerate(rows):
        csv_lines.append(f'Composer {i},"Title, {i}",{split},{audio[:4]},{audio[:-4]}.midi,{audio},{seconds}')
        members[f"{ROOT}/{audio}"] = _wav_bytes(i)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{ROOT}/maestro-v3.0.0.csv", "\n".join(csv_lines) + "\n",
                    compress_type=zipfile.ZIP_DEFLATED)
        for i, (_, audio, _, comp) in enumerate(rows):
            name = f"{ROOT}/{audio}"
            zf.writestr(f"{ROOT}/{audio[:-4]}.midi", b"MThd" + bytes(200), compress_type=zipfile.ZIP_DEFLATED)
            info = zipfile.ZipInfo(name, date_time=(2018, 1, 1, 0, 0, 0))
            info.compress_type = comp
            with zf.open(info, "w", force_zip64=(i == zip64_member)) as fh:
                fh.write(members[name])
    return buf.getvalue(), members
