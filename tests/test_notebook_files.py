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


MAIN_PATH_MAX = 50  # a chapter reads in one sitting: at most this many cells before its "Going deeper" part
GOING_DEEPER = "## Going deeper"


def main_path_cells(nb: dict) -> list[int]:
    """Indices of a chapter's main-path cells: every cell except an optional "## Going deeper" part, which starts at a
    markdown cell whose source begins with that heading and runs up to (not including) the closing last cell, and
    except the launch cell of tools/launch_cell.py (it installs the course where it is missing and shows nothing)."""
    cells = nb["cells"]
    launch = {i for i, c in enumerate(cells) if "launch" in c.get("metadata", {}).get("tags", [])}  # setup for Colab, not reading
    return [i for i in _reading_path(cells) if i not in launch]


def _reading_path(cells: list[dict]) -> list[int]:
    start = next((i for i, c in enumerate(cells) if c["cell_type"] == "markdown" and "".join(c["source"]).lstrip().startswith(GOING_DEEPER)), None)
    if start is None:
        return list(range(len(cells)))
    return [*range(start), len(cells) - 1]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_main_path_reads_in_one_sitting(path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    cells = nb["cells"]
    main = main_path_cells(nb)
    assert len(main) <= MAIN_PATH_MAX, f"{path.name}: {len(main)} cells on the main path (at most {MAIN_PATH_MAX}); move a side study to '{GOING_DEEPER}'"
    last = "".join(cells[-1]["source"]).lstrip()
    assert cells[-1]["cell_type"] == "markdown" and last.startswith("## "), (
        f"{path.name}: the last cell is the chapter's summary under its own '## ' heading, outside any collapsed part")
    deeper = [c for c in cells if c["cell_type"] == "markdown" and "".join(c["source"]).lstrip().startswith(GOING_DEEPER)]
    for cell in deeper:
        assert cell["metadata"].get("jp-MarkdownHeadingCollapsed") is True, f"{path.name}: the '{GOING_DEEPER}' heading is stored collapsed"


def _answer_lines(source: str) -> list[str]:
    """The code lines inside a cell's solution markers, unless the cell is a checker's (its unmarked code calls a
    ``check_*`` function: what it marks only shows that the instructor's edition passes, and the student edition
    removes it)."""
    lines, outside, inside = [], [], False
    for line in source.split("\n"):
        if line.strip() in ("### BEGIN SOLUTION", "### END SOLUTION"):
            inside = line.strip() == "### BEGIN SOLUTION"
        elif line.strip() and not line.strip().startswith("#"):
            (lines if inside else outside).append(line)
    return [] if re.search(r"\bcheck_\w+\(", "\n".join(outside)) else lines


def test_answer_lines_see_an_answer_and_not_a_checker_assert():
    assert _answer_lines("r = check_f(f)\n### BEGIN SOLUTION\nassert r\nprint(f(1))\n### END SOLUTION") == []
    assert _answer_lines("def f(x):\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION") == ["    return x + 1"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_solutions_are_hidden_in_the_main_edition(path):
    """Every exercise's solution is marked for the student edition and stored collapsed, so a learner who opens the
    chapter sees the exercise, not its answer (the reveal is one click)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or not _answer_lines("".join(cell["source"])):
            continue
        assert "solution" in cell["metadata"].get("tags", []), f"{path.name}, cell {i}: a solution cell is tagged 'solution'"
        assert cell["metadata"].get("jupyter", {}).get("source_hidden") is True, f"{path.name}, cell {i}: a solution cell is stored collapsed"


def test_chapter_00_lists_every_exercise_as_it_is():
    """Chapter 00's exercise table names, for each chapter, every checker that chapter calls, and no chapter without one."""
    start = json.loads((ROOT / "notebooks" / "00_start_here.ipynb").read_text(encoding="utf-8"))
    table = next("".join(c["source"]) for c in start["cells"] if "".join(c["source"]).startswith("## How the exercises work"))
    rows = {m.group(1): set(re.findall(r"check_\w+", m.group(2))) for m in re.finditer(r"^\| (\d\d) \|(.*)$", table, re.M)}
    calls = {}
    for path in NOTEBOOKS[1:]:
        nb = json.loads(path.read_text(encoding="utf-8"))
        code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        found = set(re.findall(r"\b(check_\w+)\(", code))
        if found:
            calls[path.name[:2]] = found
    assert set(rows) == set(calls), f"chapter 00 lists exercises for {sorted(rows)}, the chapters have them in {sorted(calls)}"
    for chapter, found in calls.items():
        assert found <= rows[chapter], f"chapter {chapter} calls {sorted(found - rows[chapter])}, which chapter 00's table does not name"
    count = {2: "Two", 10: "Ten", 11: "Eleven", 12: "Twelve", 13: "Thirteen", 14: "Fourteen", 15: "Fifteen"}.get(len(calls), str(len(calls)))
    assert f"{count} chapters ask you" in table, f"the table's sentence gives the count: {count}"
