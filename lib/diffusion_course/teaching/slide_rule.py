"""The slide rule of every chapter: which slide type each notebook cell gets for RISE / reveal.js, and tagging the
notebook files with it. The offline HTML export is :mod:`.slides_export`; the command line that runs both is
:mod:`.slides` (``python -m diffusion_course.teaching.slides tag|export ...``).

The tagging rule
----------------
Each cell gets ``metadata["slideshow"] = {"slide_type": ...}``, decided in this order (first match wins):

1. **Locked by hand.** A cell whose ``metadata["slideshow"]["locked"]`` is true is left exactly as it is (set the
   slide type you want and ``"locked": true``; the tagger never touches it, and later cells follow its slide type).
2. **Empty** cells (source blank) are ``"skip"``.
3. **Boilerplate and helpers** are ``"skip"``: a code cell tagged ``helper``/``helpers``/``slides-skip``, or whose
   first line is a ``# helper`` comment (``# helper``, ``# helpers: ...``), or whose code lines are at least half,
   and at least three, ``import``/``from ... import``/``%magic`` lines and which displays nothing (no figure, table or widget; printed
   text may be there): the setup cell at the top of each chapter. Skipped cells are
   hidden, not removed: run the notebook (Run All) before presenting so the code behind later slides exists.
4. A markdown cell whose first line is a ``#`` or ``##`` heading opens a new ``"slide"``; a ``###`` heading opens a
   ``"subslide"`` (one idea per slide: the chapter's sections are its slides, their subsections the vertical steps).
5. The first cell that is shown opens a ``"slide"`` whatever it is (a deck starts with a slide).
6. A cell tagged ``solution`` opens its own ``"subslide"``: revealing a solution is a deliberate step.
7. A long cell (more than ``LONG_CELL_LINES`` = 15 source lines) opens its own ``"subslide"``, so that it and its
   output get the screen.
8. A markdown cell that comes after a code cell on the same (sub)slide is a ``"fragment"``: the commentary appears
   after the result it talks about.
9. Everything else is ``"-"`` (continues the current slide). Outputs are never hidden: a big figure stays with its
   code, and slides taller than the screen scroll.

``python -m diffusion_course.teaching.slides tag notebooks/*.ipynb`` applies the rule in place. It only adds or changes
``metadata["slideshow"]`` of each cell and rewrites the file the way the notebooks are written
(``json.dump(nb, f, indent=1, ensure_ascii=False)`` plus a newline), so every other byte stays the same; a file whose
tags are already right is not rewritten (the command is idempotent). ``--check`` only reports files that would change.

``python -m diffusion_course.teaching.slides export ...`` (``make slides``) writes the offline reveal.js pages: see
:mod:`diffusion_course.teaching.slides_export`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

SLIDE_TYPES = ("slide", "subslide", "fragment", "-", "skip", "notes")
LONG_CELL_LINES = 15
HELPER_TAGS = frozenset({"helper", "helpers", "slides-skip"})
_HELPER_COMMENT = re.compile(r"^#\s*helpers?\b", re.IGNORECASE)
_IMPORT_LINE = re.compile(r"^(import\s|from\s+\S+\s+import\s|%)")


# --------------------------------------------------------------------------------------------------------------- tagging
def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return src if isinstance(src, str) else "".join(src)


def _heading_level(text: str) -> int:
    """1..6 for a markdown ATX heading on the cell's first non-blank line, else 0."""
    for line in text.splitlines():
        if line.strip():
            m = re.match(r"^(#{1,6})(\s|$)", line.lstrip())
            return len(m.group(1)) if m else 0
    return 0


def _is_boilerplate(cell: dict) -> bool:
    """A helper cell (tag or ``# helper`` first line) or a setup cell that is mostly imports and magics."""
    if HELPER_TAGS & set(cell.get("metadata", {}).get("tags", [])):
        return True
    lines = [ln.strip() for ln in _source(cell).splitlines()]
    first = next((ln for ln in lines if ln), "")
    if _HELPER_COMMENT.match(first):
        return True
    code, imports, in_paren = 0, 0, False
    for ln in lines:
        if not ln or ln.startswith("#"):
            continue
        if in_paren:  # continuation of a parenthesised import: part of that import
            in_paren = ")" not in ln
            continue
        code += 1
        if _IMPORT_LINE.match(ln):
            imports += 1
            in_paren = "(" in ln and ")" not in ln
    shows = any(o.get("output_type") in ("display_data", "execute_result") for o in cell.get("outputs", []))
    return imports >= 3 and 2 * imports >= code and not shows  # a cell that displays something is content, imports or not


def slide_types(cells: Sequence[dict]) -> list[str | None]:
    """The slide type the rule gives each cell (``None`` for a locked cell, which keeps its own)."""
    out: list[str | None] = []
    started = False  # a slide has been opened
    code_on_slide = False  # the current (sub)slide already shows a code cell
    for cell in cells:
        meta = cell.get("metadata", {}).get("slideshow", {})
        kind = cell.get("cell_type")
        text = _source(cell)
        if isinstance(meta, dict) and meta.get("locked") is True:
            out.append(None)
            st = meta.get("slide_type", "-")
        else:
            level = _heading_level(text) if kind == "markdown" else 0
            n_lines = len(text.strip("\n").splitlines())
            if not text.strip():
                st = "skip"
            elif kind == "code" and _is_boilerplate(cell):
                st = "skip"
            elif level in (1, 2):
                st = "slide"
            elif not started:
                st = "slide"
            elif level == 3:
                st = "subslide"
            elif "solution" in cell.get("metadata", {}).get("tags", []):
                st = "subslide"
            elif n_lines > LONG_CELL_LINES:
                st = "subslide"
            elif kind == "markdown" and code_on_slide:
                st = "fragment"
            else:
                st = "-"
            out.append(st)
        if st in ("skip", "notes"):
            continue
        if st in ("slide", "subslide"):
            started, code_on_slide = True, False
        started = True
        code_on_slide = code_on_slide or kind == "code"
    return out


def tag_notebook(nb: dict) -> int:
    """Apply the rule to ``nb`` in place; returns how many cells changed."""
    changed = 0
    for cell, st in zip(nb["cells"], slide_types(nb["cells"])):
        if st is None:
            continue
        md = cell.setdefault("metadata", {})
        current = md.get("slideshow")
        new = dict(current) if isinstance(current, dict) else {}
        new["slide_type"] = st
        if current == new:
            continue
        was_sorted = list(md) == sorted(md)
        md["slideshow"] = new
        if was_sorted:  # nbformat writes sorted keys: keep the order a re-execution would give
            for key in sorted(md):
                md[key] = md.pop(key)
        changed += 1
    return changed


def dumps_notebook(nb: dict) -> str:
    """The notebooks' on-disk form: ``json.dump(nb, f, indent=1, ensure_ascii=False)`` and a trailing newline."""
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def tag_file(path: str | Path, *, check: bool = False) -> bool:
    """Tag one notebook file in place (or, with ``check``, only say whether it would change). True if it changed."""
    path = Path(path)
    if path.suffix != ".ipynb" or not path.is_file():
        raise ValueError(f"path must be an existing .ipynb file, got {str(path)!r}")
    raw = path.read_text(encoding="utf-8")
    nb = json.loads(raw)
    tag_notebook(nb)
    text = dumps_notebook(nb)
    if text == raw:
        return False
    if not check:
        path.write_text(text, encoding="utf-8")
    return True
