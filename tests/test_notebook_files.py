"""Every chapter is saved with the kernelspec JupyterLab writes, so opening it in JupyterLab does not modify it (a
different display name marks the notebook changed on open, and autosave then rewrites the file). The browser test
checks the same thing in a real JupyterLab for chapters 00 and 02; `python build/normalize_nb.py notebooks/*.ipynb`
fixes a notebook that fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def _installed_kernelspec() -> dict:
    """The kernelspec JupyterLab writes: the installed python3 kernel's display name and language."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    return {"display_name": spec.display_name, "language": spec.language, "name": "python3"}


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 10


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_the_kernelspec_jupyterlab_writes(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    want = _installed_kernelspec()
    assert nb["metadata"].get("kernelspec") == want, (
        f"{path.name}: kernelspec {nb['metadata'].get('kernelspec')} differs from what JupyterLab writes ({want}); "
        "run: python build/normalize_nb.py notebooks/*.ipynb")
    assert nb["metadata"].get("language_info", {}).get("name") == "python"
    assert nb["nbformat"] == 4
