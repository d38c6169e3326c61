"""Where tensors go (every chapter): one rule picks the compute device, so a CUDA card, an Apple-silicon Mac and a plain
CPU all run the course unchanged. ``COURSE_DEVICE`` (cpu | cuda | cuda:N | mps) overrides it.

Apple's MPS backend has no float64: the package keeps every float64 computation on the CPU (schedules are derived in
float64 and stored float32; samplers' per-step coefficients are Python floats), which tests/test_devices.py checks
with a guard that fails on any float64 tensor made from device tensors."""

from __future__ import annotations

import os

import torch

__all__ = ["pick_device", "DEVICE_KINDS", "mps_available"]

DEVICE_KINDS = ("cpu", "cuda", "mps")


def mps_available() -> bool:
    """True on an Apple-silicon Mac whose torch build has the MPS backend."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``prefer`` if given, else the environment variable COURSE_DEVICE, else CUDA when
    present, then MPS, then the CPU. A device that is asked for by name but absent raises ValueError (naming it) rather
    than silently falling back."""
    name = (prefer if prefer is not None else os.environ.get("COURSE_DEVICE", "")).strip().lower()
    if not name:
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    kind = name.split(":", 1)[0]
    if kind not in DEVICE_KINDS or (kind != "cuda" and ":" in name):
        raise ValueError(f"COURSE_DEVICE must be one of cpu, cuda, cuda:N, mps; got {name!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"COURSE_DEVICE asks for {name!r} but torch sees no CUDA device (torch {torch.__version__}); unset it or use cpu")
    if kind == "mps" and not mps_available():
        raise ValueError("COURSE_DEVICE asks for 'mps' but this torch build has no usable MPS backend; unset it or use cpu")
    return torch.device(name)
