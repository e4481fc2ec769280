"""The one device resolver: a ``*.device`` setting (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``) ->
a :class:`torch.device`, for the features, train and evaluate stages alike.

``auto`` is CUDA when available, else the CPU. A device that is asked for by name and absent fails
at once, naming the setting, instead of falling back to the CPU or crashing deep inside a stage.
"""

from __future__ import annotations

import torch


class DeviceUnavailable(RuntimeError):
    """A setting names a device this machine does not have."""


def resolve_device(choice: str, setting: str = "device") -> torch.device:
    """``choice`` as a device; ``setting`` (e.g. ``evaluation.device``) names it in the error."""
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(choice)
    except RuntimeError:
        raise ValueError(f"{setting} is {choice!r}: not a device (auto, cpu, cuda, cuda:N or mps)") from None
    problem = _absent(device)
    if problem:
        raise DeviceUnavailable(f"{setting} is {choice!r} but {problem}; set {setting}: auto or cpu")
    return device


def _absent(device: torch.device) -> str | None:
    """Why ``device`` cannot be used here (``None``: it can)."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return "no CUDA device is available"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"only {torch.cuda.device_count()} CUDA device(s) are available"
    if device.type == "mps" and not torch.backends.mps.is_available():
        return "no MPS device is available"
    return None
