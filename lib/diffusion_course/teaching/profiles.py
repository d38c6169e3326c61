"""Run profiles (chapter 0, used by every notebook): one switch, ``COURSE_PROFILE`` = smoke | cpu | gpu, sets every size that costs time."""

from __future__ import annotations

import os
from typing import TypeVar

import torch

from .._internal.devices import pick_device

__all__ = ["PROFILES", "active_profile", "pick", "device", "describe"]

PROFILES = ("smoke", "cpu", "gpu")
V = TypeVar("V")


def active_profile() -> str:
    """The profile named by the environment variable COURSE_PROFILE; default "gpu" when CUDA is available, else "cpu"."""
    name = os.environ.get("COURSE_PROFILE", "").strip().lower()
    if not name:
        return "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"COURSE_PROFILE must be one of {', '.join(PROFILES)}; got {name!r}")
    return name


def pick(*, smoke: V, cpu: V, gpu: V, name: str | None = None) -> V:
    """The value for the active profile; with ``name``, also prints "name = value  (profile ...)" so the learner sees it."""
    value = {"smoke": smoke, "cpu": cpu, "gpu": gpu}[active_profile()]
    if name is not None:
        print(f"{name} = {value!r}  (profile {active_profile()!r}; smoke={smoke!r}, cpu={cpu!r}, gpu={gpu!r})")
    return value


def device() -> torch.device:
    """The compute device for the active profile: COURSE_DEVICE when set (cpu | cuda | cuda:N | mps, e.g. ``mps`` on an
    Apple-silicon Mac); otherwise under "gpu" the first of CUDA, MPS, CPU that is present, and the CPU under "cpu" and
    "smoke" (whose sizes are chosen for it)."""
    if os.environ.get("COURSE_DEVICE", "").strip() or active_profile() == "gpu":
        return pick_device()
    return torch.device("cpu")


def describe() -> str:
    """One line naming the profile, the device and the torch version."""
    dev = device()
    name = {"cuda": lambda: torch.cuda.get_device_name(dev), "mps": lambda: "Apple MPS"}.get(dev.type, lambda: f"CPU, {torch.get_num_threads()} threads")()
    return f"profile {active_profile()!r} on {dev.type} ({name}), torch {torch.__version__}"
