"""The course as a static website, from the committed, executed notebooks (nothing is executed):  make site

    python tools/build_site.py                  # build/site/index.html: open it in a browser, from file:// or any static host
    python tools/build_site.py --out DIR        # elsewhere
    python tools/build_site.py --no-slides      # without the static slides (build/site/slides/)

Sphinx with myst-nb and sphinx-book-theme (site/conf.py) renders the pages: pure Python from PyPI, no node, the
notebooks' stored outputs as they are, a table of contents, search and previous / next links, all as local files.
This script first writes the Sphinx source folder, build/site-src:

- index.md, the home page: the README's opening, its run profiles and its table of notebooks (with the Colab and
  Binder links), links to the instructor's guide and to each chapter's slides;
- notebooks/NN_*.ipynb, a copy of each chapter with a "Run this chapter" box under its title (the local command, the
  run profiles and the profile of the stored run, Colab / Binder, the slides), every saved widget drawn as a still
  picture of its saved state (diffusion_course.teaching.slides_export.snapshot_widgets, as in the static slides) with
  a line saying that the explorers are live in JupyterLab, solutions folded away (hide-input) as JupyterLab folds
  them, and the launch cell (tools/launch_cell.py) left out;
- notebooks/INSTRUCTORS.md, the instructor's guide.

Then it runs Sphinx into build/site, writes the static slides of every chapter into build/site/slides/
(``make slides``'s export, its reveal.js and MathJax copied from vendor/), and stops with an error if any page would
load anything from the network (tests/test_site.py also opens the pages in Chromium with the network blocked).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import launch_cell  # noqa: E402  (tools/launch_cell.py: the repository's address and the launch cell's tag)

CONF_DIR = ROOT / "site"
NOTEBOOKS = ROOT / "notebooks"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ('<p class="course-widget-note">A still picture of this widget as it was saved: the explorers are live in '
               "JupyterLab (<code>make lab</code>), where moving a control recomputes the picture.</p>")
PROFILES_LINE = ("`COURSE_PROFILE=smoke` proves every cell runs in seconds; `cpu` (the default without CUDA) gives meaningful results "
                 "in minutes, the image chapters loading the shipped weights; `gpu` (the default with CUDA) aims at full quality, trained from scratch.")


def chapters() -> list[Path]:
    """The chapter notebooks, in order."""
    return sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))


def _text(x) -> str:
    return x if isinstance(x, str) else "".join(x)


# ------------------------------------------------------------------------------------------------------- chapter pages
def stored_profile(nb: dict) -> str | None:
    """The run profile the stored outputs were made under, as the setup cell printed it (``describe()``), or None."""
    for cell in nb["cells"]:
        if cell["cell_type"] != "code" or launch_cell.is_launch_cell(cell):
            continue
        for out in cell.get("outputs", []):
            text = _text(out.get("text", "")) + _text(out.get("data", {}).get("text/plain", ""))
            m = re.search(r"profile '(smoke|cpu|gpu)'", text)
            if m:
                return m.group(1)
        return None  # only the setup cell (the first code cell) says it
    return None


def run_box(name: str, profile: str | None, runtime: str | None) -> str:
    """The "Run this chapter" box of one chapter page (MyST markdown)."""
    stored = f" The outputs on this page are a stored run under `{profile}`." if profile else ""
    timed = f" The whole chapter under `cpu`: {runtime} (the README's table)." if runtime and runtime[0].isdigit() else ""
    return "\n".join([
        "```{admonition} Run this chapter",
        ":class: tip course-run-box",
        "",
        f"- **On your machine:** `make lab`, then open `notebooks/{name}` and run every cell; headless: "
        f"`COURSE_PROFILE=cpu .venv/bin/jupyter nbconvert --to notebook --execute --output-dir build/cpu notebooks/{name}` "
        "(`make run PROFILE=cpu` runs every chapter).",
        f"- **Run profiles:** {PROFILES_LINE}{stored}{timed}",
        f"- **Where you have a GPU:** [Open in Colab]({launch_cell.colab_url(name)}) · [Launch on Binder]({launch_cell.binder_url(name)}). "
        "The first code cell installs the course where it is missing; on Colab's GPU runtime the chapter then runs under `gpu`.",
        f'- **Slides:** <a class="course-slides-link" href="../slides/{Path(name).stem}.slides.html">this chapter as static slides</a> '
        "(`make slides`); live slides: Alt+R in JupyterLab.",
        "```",
    ])


def site_outputs(nb: dict) -> dict:
    """A copy of ``nb`` fit for the site: widgets as pictures of their saved state, no remote stylesheet."""
    from diffusion_course.teaching.slides_export import offline_outputs, snapshot_widgets

    nb = offline_outputs(snapshot_widgets(copy.deepcopy(nb)))
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "text/html" in data and "course-widget-snapshot" in _text(data["text/html"]):
                data["text/html"] = _text(data["text/html"]) + WIDGET_NOTE
            elif data.pop(WIDGET_VIEW, None) is not None:  # a widget kind the snapshot cannot draw: its text form and the note
                data["text/html"] = f"<pre>{_text(data.pop('text/plain', 'an interactive widget'))}</pre>{WIDGET_NOTE}"
    return nb


def chapter_page(path: Path, runtimes: dict[str, str]) -> dict:
    """The site's copy of one chapter notebook."""
    nb = site_outputs(json.loads(path.read_text(encoding="utf-8")))
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if launch_cell.is_launch_cell(cell):
            tags.append("remove-cell")  # for Colab and Binder; the box above the chapter says what it does
        elif "solution" in tags:
            tags.append("hide-input")  # folded away, as JupyterLab shows it (source_hidden)
    title = next((i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "markdown"), -1)
    box = {"cell_type": "markdown", "metadata": {}, "source": run_box(path.name, stored_profile(nb), runtimes.get(path.name))}
    rest = None
    if title >= 0:  # the box goes right under the chapter's title line, before the rest of the opening cell
        head, _, tail = _text(nb["cells"][title]["source"]).partition("\n")
        if head.startswith("# ") and tail.strip():
            nb["cells"][title]["source"] = head
            rest = {"cell_type": "markdown", "metadata": {}, "source": tail.lstrip("\n")}
    new = [box] + ([rest] if rest else [])
    if (nb.get("nbformat", 4), nb.get("nbformat_minor", 0)) >= (4, 5):
        for cell, cell_id in zip(new, ("course-run-box", "course-opening")):
            cell["id"] = cell_id
    nb["cells"][title + 1:title + 1] = new
    return nb


# ---------------------------------------------------------------------------------------------------------- home page
def readme_section(readme: str, heading: str) -> str:
    """The README's ``## heading`` section, without its heading line."""
    m = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", readme, re.S | re.M)
    if not m:
        raise ValueError(f"README.md has no '## {heading}' section")
    return m.group(1).strip()


def _relink(markdown: str, docs: set[str]) -> str:
    """Relative links to anything but a page of the site point at the file in the repository instead."""
    def fix(m: re.Match) -> str:
        target = m.group(2)
        if re.match(r"[a-z]+:", target) or target.startswith("#") or target.split("#")[0] in docs:
            return m.group(0)
        return f"{m.group(1)}({launch_cell.REPOSITORY}/blob/{launch_cell.BRANCH}/{target})"
    return re.sub(r"(\[[^\]]*\])\(([^)\s]+)\)", fix, markdown)


def home_page(readme: str, names: list[str]) -> str:
    """index.md: the README's map of the course as the home page, and the table of contents."""
    intro = readme.split("\n## ", 1)[0].split("\n", 1)[1].strip()
    docs = {f"notebooks/{n}" for n in names} | {"notebooks/INSTRUCTORS.md"}
    slides = "\n".join(f'- <a class="course-slides-link" href="slides/{Path(n).stem}.slides.html">{n[:2]} · {Path(n).stem[3:].replace("_", " ")}</a>'
                       for n in names)
    parts = [
        "# Diffusion from Scratch", intro,
        "Each chapter page below is the chapter notebook as it was last executed, outputs and all; to run it, see the box "
        "under its title. The [instructor's guide](notebooks/INSTRUCTORS.md) has a lecture plan per chapter.",
        "## Run profiles", readme_section(readme, "Run profiles"),
        "## The notebooks", readme_section(readme, "The notebooks"),
        "## Slides of every chapter",
        "Static reveal.js slides (`make slides`), with MathJax and reveal.js as local files:", slides,
        "```{toctree}\n:hidden:\n:caption: Chapters\n\n" + "\n".join(f"notebooks/{Path(n).stem}" for n in names) + "\n```",
        "```{toctree}\n:hidden:\n:caption: Teaching\n\nnotebooks/INSTRUCTORS\n```",
    ]
    return _relink("\n\n".join(parts), docs) + "\n"


def readme_runtimes() -> dict[str, str]:
    """The README's `cpu` run-time cell of each chapter (tools/readme_runtimes.py reads the table)."""
    import readme_runtimes as rt

    return rt.readme_cells((ROOT / "README.md").read_text(encoding="utf-8"))


def write_source(src: Path) -> list[str]:
    """Write the Sphinx source folder ``src``; returns the chapter file names."""
    if src.exists():
        shutil.rmtree(src)
    (src / "notebooks").mkdir(parents=True)
    names = [p.name for p in chapters()]
    runtimes = readme_runtimes()
    for path in chapters():
        (src / "notebooks" / path.name).write_text(launch_cell.dumps(chapter_page(path, runtimes)), encoding="utf-8")
    guide = (NOTEBOOKS / "INSTRUCTORS.md").read_text(encoding="utf-8")
    (src / "notebooks" / "INSTRUCTORS.md").write_text(_relink(guide, set(names)), encoding="utf-8")
    (src / "index.md").write_text(home_page((ROOT / "README.md").read_text(encoding="utf-8"), names), encoding="utf-8")
    return names


# -------------------------------------------------------------------------------------------------------------- build
def remote_pages(out: Path) -> dict[str, list[str]]:
    """Every HTML page under ``out`` that would load something from the network by itself, with what it loads."""
    from diffusion_course.teaching.slides_export import remote_references

    found = {}
    for page in sorted(out.rglob("*.html")):
        refs = remote_references(page.read_text(encoding="utf-8", errors="replace"))
        if refs:
            found[str(page.relative_to(out))] = sorted(set(refs))
    return found


def build(out: Path, *, slides: bool = True, jobs: str = "1") -> dict:
    """Build the site into ``out``; returns what was built (pages, seconds)."""
    from sphinx.cmd.build import build_main

    start = time.perf_counter()
    out, src = Path(out), Path(out).with_name(Path(out).name + "-src")
    names = write_source(src)
    if out.exists():
        shutil.rmtree(out)
    os.environ["COURSE_SITE_REPOSITORY"] = launch_cell.REPOSITORY
    os.environ["COURSE_SITE_BRANCH"] = launch_cell.BRANCH
    code = build_main(["-b", "html", "-q", "-j", jobs, "-c", str(CONF_DIR), "-d", str(src / ".doctrees"), str(src), str(out)])
    if code:
        raise RuntimeError(f"sphinx-build failed with exit code {code}")
    sphinx_s = time.perf_counter() - start
    if slides:
        from diffusion_course.teaching.slides_export import export

        export(chapters(), out / "slides")
    remote = remote_pages(out)
    if remote:
        raise RuntimeError(f"pages that would load from the network: {remote}")
    missing = [n for n in names if not (out / "notebooks" / f"{Path(n).stem}.html").is_file()]
    if missing:
        raise RuntimeError(f"no page was written for {missing}")
    pages = sorted(str(p.relative_to(out)) for p in out.rglob("*.html") if p.relative_to(out).parts[0] not in ("slides", "_static"))
    return {"pages": pages, "chapters": len(names), "seconds": time.perf_counter() - start, "sphinx_seconds": sphinx_s}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "build" / "site"))
    parser.add_argument("--no-slides", action="store_true", help="leave out the static slides (build/site/slides/)")
    parser.add_argument("--jobs", default="1", help="Sphinx's -j (processes reading the pages; 'auto' for every core)")
    args = parser.parse_args(argv)
    info = build(Path(args.out), slides=not args.no_slides, jobs=args.jobs)
    print(f"{args.out}/index.html: {len(info['pages'])} pages ({info['chapters']} chapters), "
          f"{'' if args.no_slides else 'slides in slides/, '}built in {info['seconds']:.0f} s (Sphinx {info['sphinx_seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
