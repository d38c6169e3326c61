"""Where a shipped file came from: the git commit and whether the tree was clean, for the cards written by
:mod:`.make_weights` and ``python -m diffusion_course.colour train``."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

__all__ = ["git_state"]


def git_state() -> dict[str, Any]:
    """The commit and whether tracked files differ from it, taken when training starts."""
    root = Path(__file__).resolve().parents[2]  # the checkout (lib/diffusion_course/ -> lib/ -> root)

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "unknown"

    dirty = git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": git("rev-parse", "HEAD"), "git_tree_dirty": bool(dirty) if dirty != "unknown" else "unknown"}
