"""int8 export of a vocoder generator: ONNX Runtime static quantization calibrated on its own mels.

:func:`export_int8` exports the fp32 ONNX model (:func:`ganpipe.serving.backends.export_onnx`), calibrates the
activation ranges (MinMax) on windows of the model's own mels and writes a QOperator model: each
quantized convolution is a ``QLinearConv`` (uint8 activations per tensor, int8 weights per output
channel) between a ``QuantizeLinear`` and a ``DequantizeLinear``; everything else stays fp32.
Measured on the 2-core AMD EPYC (Zen 3: AVX2, no VNNI) this was built on, published LJ V1, 5 s,
1 thread, with every op quantized: QOperator 2.45x, QDQ 2.14x, QOperator with uint8 weights 2.23x
the fp32 ONNX path (same run, load average ~11): QOperator int8 weights it is. ``ConvTranspose``
(the upsampling layers) stays fp32 (the quantizer leaves it).

``keep_fp32``: layers left in fp32: ``"first"`` (the first quantizable layer, e.g. HiFi-GAN's
``conv_pre``), ``"last"`` (``conv_post`` / Vocos' head) and ``"after_last_upsample"`` (HiFi-GAN's
last multi-receptive-field stage, at the waveform's rate), the default, decided by measurement on the
published LJ V1 (3 clips, 3 s each, vs ground truth; fp32: MCD 2.601 dB, PESQ 3.382): everything in
int8 (QLinearAdd / QLinearLeakyRelu too): MCD 8.0, PESQ 1.95; convolutions only, first/last fp32:
MCD 5.85, PESQ 2.50 (2.08x fp32); that and the last stage fp32: MCD 2.676, PESQ 3.385 (1.98x).
Only convolutions and matmuls are quantized (:data:`OP_TYPES`): the residual stream stays fp32.

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
DEFAULT_KEEP = ("first", "last", "after_last_upsample")
# Only convolutions (and matmuls) run in int8; activations, residual adds and everything else stay fp32,
# with a Quantize / Dequantize pair around each quantized layer.
# Gemm left out: ORT 1.31's quantizer fails on Vocos' Gemm (its bias is not an initializer).
OP_TYPES: tuple[str, ...] | None = ("Conv", "MatMul")
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
    """Names of the quantizable nodes of ``model`` (onnx.ModelProto) that ``keep`` leaves in fp32:
    ``"first"``, ``"last"``, ``"after_last_upsample"`` (every layer after the last ``ConvTranspose``:
    those at the waveform's rate) or node-name patterns (``fnmatch``, e.g. ``"/mrfs.3/*"``)."""
    from fnmatch import fnmatchcase

    graph = list(model.graph.node)
    nodes = [n for n in graph if n.op_type in QUANTIZABLE]
    names: list[str] = []
    for what in keep:
        if what == "first" and nodes:
            names.append(nodes[0].name)
        elif what == "last" and nodes:
            names.append(nodes[-1].name)
        elif what == "after_last_upsample":
            ups = [i for i, n in enumerate(graph) if n.op_type == "ConvTranspose"]
            if ups:
                names.extend(n.name for n in graph[ups[-1] + 1:] if n.op_type in QUANTIZABLE)
        else:
            names.extend(n.name for n in nodes if fnmatchcase(n.name, what))
    return list(dict.fromkeys(names))


def quantize_onnx(fp32: bytes | str | Path, calibration: Sequence[np.ndarray], *,
                  keep_fp32: Sequence[str] = DEFAULT_KEEP, quant_format: str = FORMAT,
                  weight_type: str = "int8", input_name: str = "mel",
                  op_types: Sequence[str] | None = OP_TYPES) -> tuple[bytes, dict[str, Any]]:
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
                        nodes_to_exclude=exclude, calibrate_method=CalibrationMethod.MinMax,
                        op_types_to_quantize=list(op_types) if op_types else None)
        data = dst.read_bytes()
    info = {"format": quant_format, "activations": "uint8 per-tensor (MinMax)",
            "weights": f"{weight_type} per-channel", "kept_fp32": exclude,
            "quantized_op_types": list(op_types) if op_types else "all",
            "calibration_windows": len(calibration),
            "calibration_frames": int(sum(np.asarray(c).shape[-1] for c in calibration))}
    return data, info


def export_int8(generator: Any, calibration_mels: Iterable[np.ndarray], path: str | Path | io.BytesIO | None = None,
                *, keep_fp32: Sequence[str] = DEFAULT_KEEP, frames: int = 96, max_windows: int = 8,
                quant_format: str = FORMAT, op_types: Sequence[str] | None = OP_TYPES) -> tuple[bytes, dict[str, Any]]:
    """The int8 ONNX model of ``generator`` (weight norm removed on a copy), calibrated on crops of
    ``calibration_mels``; returns (bytes, info) and writes the bytes to ``path`` when given."""
    from ganpipe.serving.backends import export_onnx

    if getattr(generator, "speaker_conditioning", None) is not None:
        raise ValueError("onnx-int8: speaker-conditioned generators are not supported (two inputs)")
    windows = calibration_windows(calibration_mels, frames, max_windows)
    data, info = quantize_onnx(export_onnx(generator), windows, keep_fp32=keep_fp32, quant_format=quant_format,
                               op_types=op_types)
    if isinstance(path, io.BytesIO):
        path.write(data)
    elif path is not None:
        Path(path).write_bytes(data)
    return data, info
