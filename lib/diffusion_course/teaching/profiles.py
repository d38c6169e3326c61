"""Run profiles (chapter 0, used by every notebook): one switch, ``COURSE_PROFILE`` = smoke | cpu | gpu, sets every size that costs time.

A second, optional variable, ``COURSE_SIZES`` = smoke | cpu | gpu, overrides the sizes alone: a :func:`pick` whose three
values are all bools is a *switch* (a branch such as "train from scratch") and always follows ``COURSE_PROFILE``, while
every other pick (step counts, sample counts, widths) follows ``COURSE_SIZES``. So ``COURSE_PROFILE=gpu
COURSE_SIZES=smoke`` takes every branch of the gpu profile at the smoke profile's sizes, in seconds on a CPU."""

from __future__ import annotations

import os
from typing import TypeVar

import torch

from .._internal.devices import pick_device

__all__ = ["PROFILES", "active_profile", "active_sizes", "pick", "device", "describe"]

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


def active_sizes() -> str:
    """The sizes named by the environment variable COURSE_SIZES (smoke | cpu | gpu); unset or empty: the active profile's."""
    name = os.environ.get("COURSE_SIZES", "").strip().lower()
    if not name:
        return active_profile()
    if name not in PROFILES:
        raise ValueError(f"COURSE_SIZES must be one of {', '.join(PROFILES)} (or unset: the profile's own sizes); got {name!r}")
    return name


def pick(*, smoke: V, cpu: V, gpu: V, name: str | None = None) -> V:
    """The value for the active profile; with ``name``, also prints "name = value  (profile ...)" so the learner sees it.

    A switch (all three values bools) follows COURSE_PROFILE; any other value follows COURSE_SIZES when that is set.
    When the two differ, the printed line names both, the one that chose the value first."""
    values = {"smoke": smoke, "cpu": cpu, "gpu": gpu}
    profile, sizes = active_profile(), active_sizes()
    switch = all(isinstance(v, bool) for v in values.values())
    value = values[profile if switch else sizes]
    if name is not None:
        ran = f"profile {profile!r}"
        if sizes != profile:
            ran = f"profile {profile!r}, sizes {sizes!r}" if switch else f"sizes {sizes!r}, profile {profile!r}"
        print(f"{name} = {value!r}  ({ran}; smoke={smoke!r}, cpu={cpu!r}, gpu={gpu!r})")
    return value


def device() -> torch.device:
    """The compute device for the active profile: COURSE_DEVICE when set (cpu | cuda | cuda:N | mps, e.g. ``mps`` on an
    Apple-silicon Mac); otherwise under "gpu" the first of CUDA, MPS, CPU that is present, and the CPU under "cpu" and
    "smoke" (whose sizes are chosen for it)."""
    if os.environ.get("COURSE_DEVICE", "").strip() or active_profile() == "gpu":
        return pick_device()
    return torch.device("cpu")


def describe() -> str:
    """One line naming the profile (and the sizes, when COURSE_SIZES names others), the device and the torch version."""
    dev = device()
    name = {"cuda": lambda: torch.cuda.get_device_name(dev), "mps": lambda: "Apple MPS"}.get(dev.type, lambda: f"CPU, {torch.get_num_threads()} threads")()
    profile, sizes = active_profile(), active_sizes()
    with_sizes = f" with {sizes!r} sizes" if sizes != profile else ""
    return f"profile {profile!r}{with_sizes} on {dev.type} ({name}), torch {torch.__version__}"
