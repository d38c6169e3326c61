"""The student edition (`make student`): solutions marked the nbgrader way are removed, outputs cleared, and the
edition still runs top to bottom, its checkers saying "not written yet" instead of raising."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from diffusion_course.teaching.student import BEGIN, END, make_student_edition, strip_solutions, student_notebook

ROOT = Path(__file__).resolve().parents[1]
EXERCISE_CHAPTERS = ("02", "03", "04", "05", "07", "08", "10", "11", "12", "13")


def test_indented_solutions_become_a_stub_and_top_level_ones_go():
    src = f"def f(x):\n    # the rule\n    {BEGIN}\n    y = 2 * x\n    return y\n    {END}\n\n\nresult = check(f)\n{BEGIN}\nassert result\n{END}"
    out = strip_solutions(src)
    assert out == "def f(x):\n    # the rule\n    raise NotImplementedError  # your code here\n\n\nresult = check(f)"
    assert strip_solutions("print(1)") == "print(1)"


@pytest.mark.parametrize(
    "src, match",
    [(f"{BEGIN}\nx = 1", "never closed"), (f"x = 1\n{END}", "never opened"), (f"{BEGIN}\n{BEGIN}\n{END}", "inside another")],
)
def test_unbalanced_markers_name_the_cell(src, match):
    with pytest.raises(ValueError, match=f"nb.ipynb, cell 3: .*{match}|nb.ipynb, cell 3: a solution opened .*{match}"):
        strip_solutions(src, "nb.ipynb, cell 3")


def test_a_whole_solution_cell_goes_with_its_heading():
    nb = {"cells": [
        {"cell_type": "markdown", "metadata": {}, "source": ["**Solution** (collapsed):"]},
        {"cell_type": "code", "metadata": {"tags": ["solution"]}, "outputs": [{"output_type": "stream", "name": "stdout", "text": "x"}],
         "execution_count": 3, "source": [f"{BEGIN}\n", "def f(x):\n", "    return x\n", END]},
        {"cell_type": "code", "metadata": {}, "outputs": [{"output_type": "stream", "name": "stdout", "text": "y"}], "execution_count": 4,
         "source": ["print(2)"]},
    ], "metadata": {"widgets": {"state": {}}}, "nbformat": 4, "nbformat_minor": 5}
    out = student_notebook(nb)
    assert [("".join(c["source"]), c["outputs"], c["execution_count"]) for c in out["cells"]] == [("print(2)", [], None)]
    assert "widgets" not in out["metadata"] and len(nb["cells"]) == 3  # the original is untouched


@pytest.fixture(scope="module")
def edition(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("student")
    make_student_edition(ROOT / "notebooks", out)
    return out


def test_the_edition_holds_every_chapter_without_solutions_or_outputs(edition):
    names = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert sorted(p.name for p in edition.glob("*.ipynb")) == names
    for name in names:
        nb = json.loads((edition / name).read_text())
        code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        assert BEGIN not in code and END not in code, name
        assert all("solution" not in c.get("metadata", {}).get("tags", []) for c in nb["cells"]), name
        assert all(c.get("outputs", []) == [] for c in nb["cells"]), name
    for chapter in EXERCISE_CHAPTERS:  # every exercise chapter had a marked solution, and it is gone
        teacher = (ROOT / "notebooks").glob(f"{chapter}_*.ipynb").__next__().read_text()
        assert BEGIN in teacher, chapter
    # e.g. chapter 02's reference q_sample is nowhere in its student edition
    assert "alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * eps" not in (edition / "02_forward_process.ipynb").read_text()


@pytest.mark.parametrize("chapter", EXERCISE_CHAPTERS)
def test_the_student_edition_runs_and_its_checkers_say_not_written_yet(edition, chapter):
    """Every exercise chapter of the edition executes top to bottom under `smoke`; its checker cells report
    "not written yet" for the learner's stub instead of raising."""
    import nbformat
    from nbclient import NotebookClient

    path = next(edition.glob(f"{chapter}_*.ipynb"))
    nb = nbformat.read(path, as_version=4)
    env = {"COURSE_PROFILE": "smoke", "MPLBACKEND": "agg"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(ROOT / "notebooks")}}).execute()
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    printed = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.get("output_type") == "stream")
    assert "not written yet" in printed, chapter
