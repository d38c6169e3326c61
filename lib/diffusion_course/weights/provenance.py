"""Where a shipped file came from (chapters 6-11): the command, git commit, tree state, device and time written into
every card by ``python -m diffusion_course.weights.make``."""

from __future__ import annotations

import datetime
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch

from .._internal.devices import pick_device

__all__ = ["git_state", "COMMAND", "PARTS_DIR", "card_provenance", "default_device"]


def git_state() -> dict[str, Any]:
    """The commit and whether tracked files differ from it, taken when training starts."""
    root = Path(__file__).resolve().parents[3]  # the checkout (lib/diffusion_course/weights/ -> ... -> root)

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": git("rev-parse", "HEAD"), "git_tree_dirty": bool(dirty) if dirty != "unknown" else "unknown"}


COMMAND = "python -m diffusion_course.weights.make"


PARTS_DIR = "checkpoints/eval"  # under data/ (git-ignored): one file per scored setting, merged by `collect`


def card_provenance(seconds: float, device: torch.device, repo: dict[str, Any]) -> dict[str, Any]:
    """Where and how a set of weights was made: command, commit, device, time."""
    cpu = f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else cpu
    return {
        "command": COMMAND + " " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
        **repo,
        "device": name,
        "torch": torch.__version__,
        "seconds": round(seconds, 1),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def default_device() -> torch.device:
    """Where ``make weights`` trains and samples: :func:`pick_device` (COURSE_DEVICE, else CUDA, MPS, CPU)."""
    return pick_device()
