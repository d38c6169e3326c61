"""The student edition: every notebook with its solutions removed and its outputs cleared, for handing out.

Solutions are marked the nbgrader way, inside code cells::

    ### BEGIN SOLUTION
    ...the instructor's code...
    ### END SOLUTION

A marked region inside a function body (indented) becomes ``raise NotImplementedError`` at the same indentation, so a
checker reports "not written yet"; a marked region at the top level of a cell is removed (e.g. the ``assert result``
after a checker, which only the instructor's edition can pass). A cell left empty is dropped, together with a
"**Solution**" heading cell right before it. Outputs, execution counts and stored widget states are cleared.

    python -m diffusion_course.teaching.student                  # notebooks/ -> build/student/
    make student
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

__all__ = ["BEGIN", "END", "strip_solutions", "student_notebook", "make_student_edition", "main"]

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


def strip_solutions(source: str, where: str = "cell") -> str:
    """``source`` with every marked solution region replaced (indented: ``raise NotImplementedError``) or removed
    (top level). Raises ValueError naming ``where`` for an unbalanced or nested marker."""
    out: list[str] = []
    inside: str | None = None  # the indentation of the open BEGIN marker
    for n, line in enumerate(source.split("\n"), 1):
        stripped = line.strip()
        if stripped == BEGIN:
            if inside is not None:
                raise ValueError(f"{where}: line {n} opens a solution inside another (a second {BEGIN!r} before {END!r})")
            inside = line[: len(line) - len(line.lstrip())]
            if inside:
                out.append(f"{inside}raise NotImplementedError  # your code here")
            continue
        if stripped == END:
            if inside is None:
                raise ValueError(f"{where}: line {n} closes a solution that was never opened ({END!r} without {BEGIN!r})")
            inside = None
            continue
        if inside is None:
            out.append(line)
    if inside is not None:
        raise ValueError(f"{where}: a solution opened with {BEGIN!r} is never closed with {END!r}")
    return "\n".join(out).strip("\n")


def _is_solution_heading(cell: dict) -> bool:
    text = "".join(cell["source"]).strip().lower()
    return cell["cell_type"] == "markdown" and (text.startswith("**solution**") or text.startswith("the solution"))


def student_notebook(nb: dict, name: str = "notebook") -> dict:
    """A copy of the notebook (nbformat 4 JSON as a dict) with solutions stripped and outputs cleared."""
    nb = copy.deepcopy(nb)
    cells: list[dict] = []
    for i, cell in enumerate(nb["cells"]):
        src = "".join(cell["source"])
        if cell["cell_type"] == "code":
            new = strip_solutions(src, f"{name}, cell {i}")
            if new != src.strip("\n") and not new.strip():
                if cells and _is_solution_heading(cells[-1]):
                    cells.pop()  # the heading of a solution that is gone
                continue
            lines = new.split("\n")
            cell["source"] = [ln + "\n" for ln in lines[:-1]] + [lines[-1]]
            cell["outputs"], cell["execution_count"] = [], None
            meta = cell.get("metadata", {})
            meta.pop("execution", None)
            if "solution" in meta.get("tags", []):
                meta["tags"] = [t for t in meta["tags"] if t != "solution"]
        cells.append(cell)
    nb["cells"] = cells
    nb.get("metadata", {}).pop("widgets", None)
    return nb


def make_student_edition(src: str | Path = "notebooks", out: str | Path = "build/student") -> list[Path]:
    """Write the student edition of every numbered notebook in ``src`` to ``out``; returns the written paths."""
    src, out = Path(src), Path(out)
    notebooks = sorted(src.glob("[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise ValueError(f"src must hold the course's numbered notebooks (NN_name.ipynb); found none in {src}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in notebooks:
        nb = student_notebook(json.loads(path.read_text()), path.name)
        target = out / path.name
        target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m diffusion_course.teaching.student", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--src", default="notebooks")
    p.add_argument("--out", default="build/student")
    args = p.parse_args(argv)
    for path in make_student_edition(args.src, args.out):
        print(path)


if __name__ == "__main__":
    main()
