"""Where the course's files live (every chapter): the data folder of the shipped weights, cards and downloaded
datasets, and finding one shipped file in it with an error that names the command that makes it."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DATA_DIR", "SHIPPED_MARKER", "find_data_dir", "find_shipped"]


SHIPPED_MARKER = "mnist_classifier.json"  # a file every copy of the shipped data holds


def find_data_dir(environ: dict | None = None, source_tree: Path | None = None, prefix: str | None = None) -> Path:
    """Where the shipped weights and downloaded datasets live: $DIFFUSION_COURSE_DATA if set; else the source tree's
    data/ (a clone, or an editable install); else <sys.prefix>/share/diffusion_course/data, where a non-editable
    ``pip install .`` puts the shipped files; else the source-tree path (created on the first download)."""
    import os
    import sys

    env = (os.environ if environ is None else environ).get("DIFFUSION_COURSE_DATA")
    if env:
        return Path(env).expanduser()
    tree = source_tree if source_tree is not None else Path(__file__).resolve().parents[3] / "data"
    if (tree / SHIPPED_MARKER).exists():
        return tree
    installed = Path(prefix if prefix is not None else sys.prefix) / "share" / "diffusion_course" / "data"
    if (installed / SHIPPED_MARKER).exists():
        return installed
    return tree


DATA_DIR = find_data_dir()


def find_shipped(name: str, directory: str | Path | None = None, made_by: str = "`make weights` (or `python -m diffusion_course.weights.make --help`)") -> Path:
    """The shipped file ``name`` in ``directory`` (default DATA_DIR); a missing file says which command makes it."""
    path = Path(directory or DATA_DIR) / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run {made_by} to produce it")
    return path
