"""Every chapter is saved with the kernelspec JupyterLab writes, so opening it in JupyterLab does not modify it (a
different display name marks the notebook changed on open, and autosave then rewrites the file). The browser test
checks the same thing in a real JupyterLab for chapters 00 and 02. Stored progress bars are plain text, kept as
JupyterLab shows them (no widget bar that reopens as "model not found", no thousand overwritten updates).
`make tidy` (tools/tidy_notebooks.py) fixes a notebook that fails here."""

from __future__ import annotations

import json
import re
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
        "run: make tidy")
    assert nb["metadata"].get("language_info", {}).get("name") == "python"
    assert nb["nbformat"] == 4


def _widget_state(nb: dict) -> dict:
    return nb["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_stored_progress_bars_are_text_as_shown(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    state = _widget_state(nb)
    for i, cell in enumerate(nb["cells"]):
        outputs = cell.get("outputs", [])
        for a, b in zip(outputs, outputs[1:]):
            assert not (a.get("output_type") == b.get("output_type") == "stream" and a["name"] == b["name"]), (
                f"{path.name}, cell {i}: consecutive {a['name']} outputs not merged; run: make tidy")
        for out in outputs:
            if out.get("output_type") == "stream":
                text = "".join(out["text"])
                assert re.search(r"\r(?=[^\n])", text) is None, f"{path.name}, cell {i}: text overwritten by a carriage return is stored; run: make tidy"
            view = out.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            if view:
                model = state.get(view["model_id"], {})
                kids = [state.get(k.replace("IPY_MODEL_", ""), {}).get("model_name") for k in model.get("state", {}).get("children", [])]
                assert "FloatProgressModel" not in kids, (
                    f"{path.name}, cell {i}: a widget progress bar (tqdm.auto) is stored; it reopens as 'model not found'. "
                    "Use a text bar (tqdm.std) and re-execute")
