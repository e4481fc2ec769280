"""int8 export of a vocoder generator: ONNX Runtime static quantization calibrated on its own mels.

:func:`export_int8` exports the fp32 ONNX model (:func:`ganpipe.inference.export_onnx`), calibrates the
activation ranges (MinMax) on windows of the model's own mels and writes a QOperator model
(``QLinearConv`` / ``QLinearLeakyRelu`` / ``QLinearAdd``): uint8 activations, int8 weights per output
channel. What was measured on the 2-core AMD EPYC this was built on (benchmarks/RESULTS.md,
2026-12-06): QOperator ran 2.45x and QDQ 2.14x the fp32 ONNX path on HiFi-GAN V1 (5 s, 1 thread), so
QOperator is the format; u8u8 weights (no ``vpmaddubsw`` saturation) gave the same output as u8s8
and were slower. ``ConvTranspose`` (the upsampling layers) stays fp32 (ONNX Runtime has no
quantized kernel for it).

``keep_fp32``: node kinds left in fp32 by name: ``"first"`` (the first quantizable layer, e.g.
HiFi-GAN's ``conv_pre``) and ``"last"`` (``conv_post`` / Vocos' head); the default keeps both.

Calibration windows (:func:`calibration_windows`): up to ``max_windows`` crops of ``frames`` frames
of the given mels (un-normalised log-mels as the model takes them, already normalised where the model
normalises), each ``(1, n_mels, frames)``.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

QUANTIZABLE = ("Conv", "MatMul", "Gemm")
DEFAULT_KEEP = ("first", "last")
FORMAT = "QOperator"


def calibration_windows(mels: Iterable[np.ndarray], frames: int = 96, max_windows: int = 8) -> list[np.ndarray]:
    """Crops of ``frames`` frames (the middle of each mel; the whole mel when shorter) as float32
    ``(1, n_mels, frames)`` arrays, at most ``max_windows`` of them."""
    out: list[np.ndarray] = []
    for mel in mels:
        mel = np.asarray(mel, dtype=np.float32)
        if mel.ndim == 3:
            mel = mel[0]
        if mel.ndim != 2:
            raise ValueError(f"calibration mels must be (n_mels, frames), got shape {mel.shape}")
        start = max(0, (mel.shape[1] - frames) // 2)
        out.append(np.ascontiguousarray(mel[None, :, start:start + frames]))
        if len(out) >= max_windows:
            break
    if not out:
        raise ValueError("no calibration mels: onnx-int8 needs some of the model's own mels")
    return out


def kept_nodes(model: Any, keep: Sequence[str] = DEFAULT_KEEP) -> list[str]:
    """Names of the quantizable nodes of ``model`` (onnx.ModelProto) that ``keep`` leaves in fp32."""
    nodes = [n for n in model.graph.node if n.op_type in QUANTIZABLE]
    names: list[str] = []
    for what in keep:
        if what == "first" and nodes:
            names.append(nodes[0].name)
        elif what == "last" and nodes:
            names.append(nodes[-1].name)
        elif what not in ("first", "last"):
            names.append(what)  # an explicit node name
    return list(dict.fromkeys(names))


def quantize_onnx(fp32: bytes | str | Path, calibration: Sequence[np.ndarray], *,
                  keep_fp32: Sequence[str] = DEFAULT_KEEP, quant_format: str = FORMAT,
                  weight_type: str = "int8", input_name: str = "mel") -> tuple[bytes, dict[str, Any]]:
    """Static quantization of an fp32 ONNX vocoder; returns (model bytes, what was done)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter([{input_name: np.ascontiguousarray(c, dtype=np.float32)} for c in calibration])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    model = onnx.load_from_string(fp32) if isinstance(fp32, bytes) else onnx.load(str(fp32))
    exclude = kept_nodes(model, keep_fp32)
    with tempfile.TemporaryDirectory(prefix="ganpipe-int8-") as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, str(src))
        quantize_static(str(src), str(dst), _Reader(),
                        quant_format=QuantFormat.QOperator if quant_format == "QOperator" else QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8 if weight_type == "int8" else QuantType.QUInt8,
                        nodes_to_exclude=exclude, calibrate_method=CalibrationMethod.MinMax)
        data = dst.read_bytes()
    info = {"format": quant_format, "activations": "uint8 per-tensor (MinMax)",
            "weights": f"{weight_type} per-channel", "kept_fp32": exclude,
            "calibration_windows": len(calibration),
            "calibration_frames": int(sum(np.asarray(c).shape[-1] for c in calibration))}
    return data, info


def export_int8(generator: Any, calibration_mels: Iterable[np.ndarray], path: str | Path | io.BytesIO | None = None,
                *, keep_fp32: Sequence[str] = DEFAULT_KEEP, frames: int = 96, max_windows: int = 8,
                quant_format: str = FORMAT) -> tuple[bytes, dict[str, Any]]:
    """The int8 ONNX model of ``generator`` (weight norm removed on a copy), calibrated on crops of
    ``calibration_mels``; returns (bytes, info) and writes the bytes to ``path`` when given."""
    from ganpipe.inference import export_onnx

    if getattr(generator, "speaker_conditioning", None) is not None:
        raise ValueError("onnx-int8: speaker-conditioned generators are not supported (two inputs)")
    windows = calibration_windows(calibration_mels, frames, max_windows)
    data, info = quantize_onnx(export_onnx(generator), windows, keep_fp32=keep_fp32, quant_format=quant_format)
    if isinstance(path, io.BytesIO):
        path.write(data)
    elif path is not None:
        Path(path).write_bytes(data)
    return data, info
