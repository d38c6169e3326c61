"""The launch cell of every chapter: where the course is not installed (Colab, Binder, any fresh Python), it installs
it with one ``pip install`` of the repository, and the chapter's own setup cell then picks the run profile as
everywhere else (``gpu`` on a CUDA machine such as Colab's GPU runtime, else ``cpu``).

    python tools/launch_cell.py notebooks/*.ipynb           # insert the cell, or bring it up to date (idempotent)
    python tools/launch_cell.py --check notebooks/*.ipynb   # change nothing; exit 1 when a notebook would change

The cell is the first code cell of the notebook (placed just before the chapter's setup cell), tagged ``launch``,
stored without outputs; a notebook whose launch cell is already right is not rewritten. Where the course is
importable (``make lab``, ``make test``) the cell does nothing. ``COURSE_INSTALL_SOURCE`` overrides what it installs
(a local checkout's path, a wheel, another branch): tests/test_site.py points it at the local checkout in a fresh
virtual environment. tools/readme_runtimes.py leaves cells tagged ``launch`` out of a chapter's code hash, so adding
the cell keeps the README's run-time column valid.

REPOSITORY and BRANCH below are the one place that names where the course lives: the install source, the "Open in
Colab" and Binder links of the website (tools/build_site.py) and of the README's table of notebooks come from them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from urllib.parse import quote

from diffusion_course.teaching.slide_rule import dumps_notebook as dumps  # the chapters' on-disk form, as the slide tagger writes it

REPOSITORY = "https://github.com/diffusion-from-scratch/diffusion-course"
BRANCH = "main"
TAG = "launch"
SOURCE_ENV = "COURSE_INSTALL_SOURCE"


def install_source() -> str:
    """What the launch cell installs by default: the repository at BRANCH, through pip's git support."""
    return f"git+{REPOSITORY}.git@{BRANCH}"


def launch_source() -> str:
    """The launch cell's code."""
    return f"""\
# Colab, Binder or a fresh Python: install the course when it is missing (one pip install), then run on as usual.
import importlib
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("diffusion_course") is None:
    source = os.environ.get("{SOURCE_ENV}", "{install_source()}")
    print(f"diffusion_course is not installed here: pip install {{source}}")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", source], check=True)
    importlib.invalidate_caches()"""


def _github_path() -> str:
    """'owner/name' of REPOSITORY (a GitHub address)."""
    prefix = "https://github.com/"
    if not REPOSITORY.startswith(prefix):
        raise ValueError(f"REPOSITORY must be a https://github.com/owner/name address for Colab and Binder links; got {REPOSITORY!r}")
    return REPOSITORY.removeprefix(prefix).strip("/")


def colab_url(notebook: str) -> str:
    """'Open in Colab' for ``notebook`` (a file name in notebooks/, e.g. '08_ddim.ipynb')."""
    return f"https://colab.research.google.com/github/{_github_path()}/blob/{BRANCH}/notebooks/{notebook}"


def binder_url(notebook: str) -> str:
    """A Binder launch of ``notebook`` in JupyterLab (Binder builds the image from environment.yml)."""
    return f"https://mybinder.org/v2/gh/{_github_path()}/{BRANCH}?labpath={quote('notebooks/' + notebook, safe='')}"


def _source_text(cell: dict) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def _as_lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def is_launch_cell(cell: dict) -> bool:
    """A code cell tagged ``launch``."""
    return cell.get("cell_type") == "code" and TAG in cell.get("metadata", {}).get("tags", [])


def new_cell(nb: dict) -> dict:
    """The launch cell, in the notebook's format (a cell id where nbformat 4.5+ wants one)."""
    cell = {"cell_type": "code", "execution_count": None, "metadata": {"slideshow": {"slide_type": "skip"}, "tags": [TAG]},
            "outputs": [], "source": _as_lines(launch_source())}
    if (nb.get("nbformat", 4), nb.get("nbformat_minor", 0)) >= (4, 5):
        cell = {"id": "launch", **cell}
    return cell


def apply(nb: dict) -> bool:
    """Put the launch cell in ``nb`` (in place) just before its first other code cell; True when ``nb`` changed."""
    cells = nb["cells"]
    existing = [i for i, c in enumerate(cells) if is_launch_cell(c)]
    others = [c for c in cells if not is_launch_cell(c)]
    first_code = next((i for i, c in enumerate(others) if c.get("cell_type") == "code"), len(others))
    want = new_cell(nb)
    if len(existing) == 1:
        old = cells[existing[0]]
        if "id" in old:
            want["id"] = old["id"]
        kept = {k: v for k, v in old.get("metadata", {}).items() if k != "execution"}  # a run's timestamps are output
        want["metadata"] = {**kept, **want["metadata"], "tags": list(dict.fromkeys([*kept.get("tags", []), TAG]))}
    ordered = others[:first_code] + [want] + others[first_code:]
    if ordered == cells:
        return False
    nb["cells"] = ordered
    return True


def apply_file(path: str | Path, *, check: bool = False) -> bool:
    """Apply to one file (unless ``check``); True when it changes (or would)."""
    path = Path(path)
    if path.suffix != ".ipynb" or not path.is_file():
        raise ValueError(f"path must be an existing .ipynb file, got {str(path)!r}")
    nb = json.loads(path.read_text(encoding="utf-8"))
    changed = apply(nb)
    if changed and not check:
        path.write_text(dumps(nb), encoding="utf-8")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a notebook would change")
    args = parser.parse_args(argv)
    changed = [p for p in args.notebooks if apply_file(p, check=args.check)]
    verb = "would change" if args.check else "updated"
    for p in changed:
        print(f"{verb}: {p}")
    print(f"{len(changed)} of {len(args.notebooks)} notebooks {verb}")
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
