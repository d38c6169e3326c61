"""The course website (`make site`, tools/build_site.py) and the launch cell (tools/launch_cell.py).

Fast tests (every run): the launch tool on copies of the chapters (first code cell, tag, no outputs, idempotent, the
README's code hash unchanged, hidden from the slides), the launch cell doing nothing where the course is installed, the
chapter pages' run box and widget pictures, the home page from the README, and the README's Colab / Binder links.

`make site-test` (COURSE_SITE_TEST=1; .ci/run runs it after make test; COURSE_SITE_DIR=build/site checks a site
already built instead) builds the site from the notebooks into a
temporary folder and opens it in headless Chromium from file:// with every non-local request aborted: every page
loads, formulas are typeset by MathJax (no raw $$ left), stored figures and the first frame of each animation are
shown, widgets show their saved picture with the note, nothing asks the network, search finds a word, internal links
and anchors resolve. It writes a 1280×720 screenshot of chapter 08 to build/site_screenshot_08_ddim.png.

The slow test test_launch_cell_installs_the_course_in_a_fresh_venv runs the launch cell in a fresh virtual
environment with COURSE_INSTALL_SOURCE pointed at a copy of this checkout (its dependencies borrowed from the
project's environment, so that no PyTorch is downloaded), then the profile logic there.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
SITE_TEST = os.environ.get("COURSE_SITE_TEST") == "1"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(name, module)
    spec.loader.exec_module(module)
    return module


launch = _tool("launch_cell")
site = _tool("build_site")
runtimes = _tool("readme_runtimes")


def _nb(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _src(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


# ------------------------------------------------------------------------------------------------------- launch cell
def test_launch_tool_on_copies_of_the_chapters(tmp_path: Path) -> None:
    from diffusion_course.teaching.slide_rule import slide_types

    copies = []
    for path in NOTEBOOKS:
        shutil.copy(path, tmp_path / path.name)
        copies.append(tmp_path / path.name)
    before = {p.name: runtimes.code_sha256(p) for p in copies}
    changed = [p for p in copies if launch.apply_file(p)]
    assert changed == [p for p in copies if not any(launch.is_launch_cell(c) for c in _nb(ROOT / "notebooks" / p.name)["cells"])]
    for p in copies:
        nb, orig = _nb(p), _nb(ROOT / "notebooks" / p.name)
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        first = code[0]
        assert launch.is_launch_cell(first) and _src(first) == launch.launch_source(), p.name
        assert first["outputs"] == [] and first["execution_count"] is None
        assert sum(launch.is_launch_cell(c) for c in nb["cells"]) == 1
        assert [c for c in nb["cells"] if not launch.is_launch_cell(c)] == [c for c in orig["cells"] if not launch.is_launch_cell(c)]
        assert runtimes.code_sha256(p) == before[p.name], "the README's run-time hash must ignore the launch cell"
        assert slide_types(nb["cells"])[nb["cells"].index(first)] == "skip", "the launch cell is hidden from the slides"
    assert not [p for p in copies if launch.apply_file(p)], "a second run changes nothing"
    assert launch.main(["--check", *map(str, copies)]) == 0


def test_launch_tool_updates_a_stale_cell_in_place(tmp_path: Path) -> None:
    path = tmp_path / NOTEBOOKS[1].name
    shutil.copy(NOTEBOOKS[1], path)
    launch.apply_file(path)
    nb = _nb(path)
    i = next(i for i, c in enumerate(nb["cells"]) if launch.is_launch_cell(c))
    nb["cells"][i].update(source=["print('old')\n"], execution_count=4, outputs=[{"output_type": "stream", "name": "stdout", "text": ["x"]}])
    nb["cells"][i]["metadata"]["execution"] = {"iopub.status.busy": "2026-01-01"}
    stale = copy.deepcopy(nb)
    nb["cells"].insert(0, nb["cells"].pop(i))  # also out of place
    path.write_text(launch.dumps(nb), encoding="utf-8")
    assert launch.main(["--check", str(path)]) == 1
    assert launch.apply_file(path)
    fixed = _nb(path)
    assert [c for c in fixed["cells"] if not launch.is_launch_cell(c)] == [c for c in stale["cells"] if not launch.is_launch_cell(c)]
    cell = next(c for c in fixed["cells"] if launch.is_launch_cell(c))
    assert _src(cell) == launch.launch_source() and cell["outputs"] == [] and "execution" not in cell["metadata"]
    with pytest.raises(ValueError, match="path"):
        launch.apply_file(tmp_path / "missing.ipynb")


def test_launch_cell_does_nothing_where_the_course_is_installed() -> None:
    run = subprocess.run([sys.executable, "-c", launch.launch_source()], capture_output=True, text=True, timeout=120,
                         env={**os.environ, launch.SOURCE_ENV: "/nonexistent/never-installed"})
    assert run.returncode == 0 and run.stdout == "", (run.stdout, run.stderr)


def test_launch_links_name_the_repository_chapter() -> None:
    assert launch.colab_url("08_ddim.ipynb") == (
        f"https://colab.research.google.com/github/{launch.REPOSITORY.removeprefix('https://github.com/')}/blob/{launch.BRANCH}/notebooks/08_ddim.ipynb")
    assert launch.binder_url("08_ddim.ipynb").endswith(f"/{launch.BRANCH}?labpath=notebooks%2F08_ddim.ipynb")
    assert launch.install_source() == f"git+{launch.REPOSITORY}.git@{launch.BRANCH}"
    assert launch.install_source() in launch.launch_source()


def test_the_readme_table_carries_colab_and_binder_links_per_chapter() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(0) for m in re.finditer(r"^\| \d\d \| \[[^\]]+\]\(notebooks/([^)]+\.ipynb)\) \|.*$", readme, re.M)}
    assert sorted(rows) == [p.name for p in NOTEBOOKS]
    for name, row in rows.items():
        assert f"]({launch.colab_url(name)})" in row and f"]({launch.binder_url(name)})" in row, name


def test_launch_cell_installs_the_course_in_a_fresh_venv(tmp_path: Path) -> None:
    """The cell in a fresh venv where diffusion_course is not importable: it pip-installs the source that
    COURSE_INSTALL_SOURCE names (a copy of this checkout, as a clone would be), after which the package imports from
    the new environment, finds its shipped weights, and picks `cpu` without CUDA and `gpu` with it. A few minutes of
    pip on two cores, so it runs in `make site-test` (which .ci/run runs) beside the site's own checks."""
    if not SITE_TEST:
        pytest.skip("the fresh-venv install runs in `make site-test` (COURSE_SITE_TEST=1), which .ci/run runs")
    checkout = tmp_path / "checkout"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, files):
        if (ROOT / rel).is_file():
            (checkout / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, checkout / rel)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    site_dir = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], capture_output=True, text=True,
                              check=True).stdout.strip()
    ours = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (Path(site_dir) / "borrowed_dependencies.pth").write_text("\n".join(ours) + "\n")  # a plain path: its own .pth files are not read
    probe = "import importlib.util; print(importlib.util.find_spec('diffusion_course'))"
    assert subprocess.run([str(py), "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "None"
    after = f"""
import diffusion_course, torch
from diffusion_course import active_profile, describe, load_pretrained_unet
assert diffusion_course.__file__.startswith({str(venv)!r}), diffusion_course.__file__
print(describe())
model, card = load_pretrained_unet()
print("weights", sum(p.numel() for p in model.parameters()))
print("no cuda:", active_profile())
torch.cuda.is_available = lambda: True
print("with cuda:", active_profile())
"""
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_PROFILE", "COURSE_SIZES", "PYTHONPATH", "VIRTUAL_ENV")}
    env.update({launch.SOURCE_ENV: str(checkout), "OMP_NUM_THREADS": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    start = time.perf_counter()
    run = subprocess.run([str(py), "-c", launch.launch_source() + "\n" + after], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=1200)
    print(f"launch cell in a fresh venv: {time.perf_counter() - start:.0f} s")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert f"pip install {checkout}" in run.stdout
    assert "profile 'cpu'" in run.stdout and "no cuda: cpu" in run.stdout and "with cuda: gpu" in run.stdout, run.stdout
    assert re.search(r"weights \d{6,}", run.stdout), run.stdout


# -------------------------------------------------------------------------------------------------------- page source
def test_chapter_pages_carry_the_run_box_and_widget_pictures() -> None:
    readme_times = site.readme_runtimes()
    for path in NOTEBOOKS:
        page = site.chapter_page(path, readme_times)
        orig = _nb(path)
        box = _src(page["cells"][1])
        needles = (f"notebooks/{path.name}", "COURSE_PROFILE=cpu", "make lab", "`gpu`", launch.colab_url(path.name), launch.binder_url(path.name),
                   f"../slides/{path.stem}.slides.html")
        for needle in needles:
            assert needle in box, (path.name, needle)
        assert WIDGET_VIEW not in json.dumps(page) and "widgets" not in page["metadata"]
        views = sum(WIDGET_VIEW in o.get("data", {}) for c in orig["cells"] for o in c.get("outputs", []))
        pictures = sum(site.WIDGET_NOTE in "".join(o.get("data", {}).get("text/html", "")) for c in page["cells"] for o in c.get("outputs", []))
        assert pictures == views, path.name
        for cell in page["cells"]:
            tags = cell.get("metadata", {}).get("tags", [])
            assert ("solution" not in tags or "hide-input" in tags) and (not launch.is_launch_cell(cell) or "remove-cell" in tags)


def test_stored_profile_reads_the_setup_cell() -> None:
    out = {"output_type": "stream", "name": "stdout", "text": ["profile 'cpu' on CPU, 1 threads\n"]}
    nb = {"cells": [{"cell_type": "markdown", "source": "# t", "metadata": {}},
                    {"cell_type": "code", "source": "x", "metadata": {"tags": ["launch"]}, "outputs": []},
                    {"cell_type": "code", "source": "print(describe())", "metadata": {}, "outputs": [out]}]}
    assert site.stored_profile(nb) == "cpu"
    nb["cells"][2]["outputs"] = []
    assert site.stored_profile(nb) is None


def test_home_page_is_the_readme_map() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    names = [p.name for p in NOTEBOOKS]
    page = site.home_page(readme, names)
    for name in names:
        assert f"](notebooks/{name})" in page and f"notebooks/{Path(name).stem}\n" in page and f"slides/{Path(name).stem}.slides.html" in page
    assert "](notebooks/INSTRUCTORS.md)" in page and "## Run profiles" in page
    left = [t for t in re.findall(r"\]\(([^)\s]+)\)", page) if not re.match(r"[a-z]+:", t) and t.split("#")[0] not in
            {f"notebooks/{n}" for n in names} | {"notebooks/INSTRUCTORS.md"} and not t.startswith("#")]
    assert not left, left
    assert site._relink("[a](tools/x.py) [b](notebooks/08_ddim.ipynb)", {"notebooks/08_ddim.ipynb"}) == (
        f"[a]({launch.REPOSITORY}/blob/{launch.BRANCH}/tools/x.py) [b](notebooks/08_ddim.ipynb)")


# ------------------------------------------------------------------------------------------- the built site, offline
class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for key in ("id", "name"):
            if a.get(key):
                self.ids.add(a[key])
        if tag in ("a", "link") and a.get("href"):
            self.refs.append(a["href"])
        if tag in ("img", "script") and a.get("src"):
            self.refs.append(a["src"])


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    if not SITE_TEST:
        pytest.skip("the site build and browser check run in `make site-test` (COURSE_SITE_TEST=1), which .ci/run runs")
    if os.environ.get("COURSE_SITE_DIR"):  # check a site already built (make site) instead of building one
        return {"out": Path(os.environ["COURSE_SITE_DIR"]).resolve(), "seconds": None, "warnings": []}
    out = tmp_path_factory.mktemp("site") / "site"
    start = time.perf_counter()
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "build_site.py"), "--out", str(out)], capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - start
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    print(f"\nsite built in {seconds:.0f} s (load average {os.getloadavg()[0]:.1f}): {run.stdout.strip()}")
    warnings = [ln for ln in run.stderr.splitlines() if "WARNING" in ln or "ERROR" in ln]
    return {"out": out, "seconds": seconds, "warnings": warnings}


def test_site_has_every_page_and_no_remote_load(built: dict) -> None:
    out = built["out"]
    for name in ["index.html", "search.html", "notebooks/INSTRUCTORS.html"] + [f"notebooks/{p.stem}.html" for p in NOTEBOOKS]:
        assert (out / name).is_file(), name
    for p in NOTEBOOKS:
        assert (out / "slides" / f"{p.stem}.slides.html").is_file()
    assert not site.remote_pages(out)
    sphinx = [w for w in built["warnings"] if "traitlets" not in w]  # nbconvert's alt-text notes, from the slides' export
    assert not sphinx, sphinx[:20]


def test_internal_links_resolve(built: dict) -> None:
    out = built["out"]
    parsed = {}
    for page in out.rglob("*.html"):
        if page.relative_to(out).parts[0] in ("slides", "_static"):  # the slides' own links are #/n; _static holds theme templates
            continue
        p = _Links()
        p.feed(page.read_text(encoding="utf-8", errors="replace"))
        parsed[page] = p
    broken = []
    for page, p in parsed.items():
        for ref in p.refs:
            parts = urlsplit(ref)
            if parts.scheme or ref.startswith("//") or ref.startswith("javascript:"):
                continue
            target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
            if not target.exists():
                broken.append(f"{page.relative_to(out)} -> {ref}")
            elif parts.fragment and target.suffix == ".html" and target in parsed and parts.fragment not in parsed[target].ids:
                broken.append(f"{page.relative_to(out)} -> {ref} (no such anchor)")
    assert not broken, broken[:30]


def _browser():
    if not Path(CHROMIUM).exists():
        line = f"!!! SITE BROWSER CHECK NOT RUN: no Chromium at {CHROMIUM} !!!"
        if os.environ.get("CI") == "true":
            pytest.fail(line)
        pytest.skip(line)
    from playwright.sync_api import sync_playwright

    return sync_playwright


PAGE_CHECK = """() => {
  const main = document.querySelector('article') || document.body;
  const clone = main.cloneNode(true);
  clone.querySelectorAll('pre, code, mjx-container, .highlight, script, style').forEach(e => e.remove());
  const text = clone.textContent;
  const imgs = Array.from(main.querySelectorAll('img'));
  const shown = (e) => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0 && getComputedStyle(e).visibility !== 'hidden'; };
  const anim = Array.from(main.querySelectorAll('.animation img'));
  return {
    math: main.querySelectorAll('.math').length,
    typeset: Array.from(main.querySelectorAll('.math')).filter(e => e.querySelector('mjx-container')).length,
    mjx_errors: main.querySelectorAll('mjx-merror, [data-mjx-error]').length,
    raw_dollars: (text.match(/\\$\\$/g) || []).length,
    raw_parens: (text.match(/\\\\\\(|\\\\\\[/g) || []).length,
    output_imgs: main.querySelectorAll('.cell_output img').length,
    broken_imgs: imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => (i.getAttribute('src') || '').slice(0, 80)),
    hidden_output_imgs: Array.from(main.querySelectorAll('.cell_output img')).filter(i => !shown(i)).length,
    anim: anim.length, anim_shown: anim.filter(i => i.naturalWidth > 0 && shown(i)).length,
    widgets: main.querySelectorAll('.course-widget-snapshot').length, widget_notes: main.querySelectorAll('.course-widget-note').length,
    colab: main.querySelectorAll('.course-run-box a[href*="colab.research.google.com"]').length,
    binder: main.querySelectorAll('.course-run-box a[href*="mybinder.org"]').length,
    slides: main.querySelectorAll('.course-run-box a.course-slides-link').length,
    prev_next: document.querySelectorAll('.prev-next-area a').length,
    toc: document.querySelectorAll('.bd-sidebar-primary a.reference.internal').length,
  };
}"""


def _stored(path: Path) -> dict:
    """What the site's copy of a chapter (build/site-src: the chapter as it was when the build read it) stores."""
    nb = _nb(path)
    outs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    htmls = ["".join(o.get("data", {}).get("text/html", "")) for o in outs]
    return {"png": sum("image/png" in o.get("data", {}) for o in outs), "widgets": sum(site.WIDGET_NOTE in h for h in htmls),
            "anim": sum(h.count('class="animation"') for h in htmls)}


def test_every_page_renders_offline_in_chromium(built: dict) -> None:
    sync_playwright = _browser()
    out = built["out"]
    blocked, errors, results = [], [], {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 720})

            def route(r):
                if r.request.url.startswith(("file:", "data:", "blob:")):
                    return r.continue_()
                blocked.append(r.request.url)
                return r.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            for path in NOTEBOOKS:
                page.goto((out / "notebooks" / f"{path.stem}.html").as_uri(), wait_until="load", timeout=120_000)
                page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=60_000)
                page.evaluate("() => MathJax.startup.promise")
                results[path.name] = page.evaluate(PAGE_CHECK)
                if path.name.startswith("08_"):
                    page.evaluate("() => window.scrollTo(0, 0)")
                    (ROOT / "build").mkdir(exist_ok=True)
                    page.screenshot(path=str(ROOT / "build" / "site_screenshot_08_ddim.png"))
            page.goto((out / "search.html").as_uri() + "?q=posterior", wait_until="load")
            page.wait_for_function("() => document.querySelectorAll('#search-results li').length > 0", timeout=60_000)
            hits = page.evaluate("() => document.querySelectorAll('#search-results li').length")
            page.goto((out / "index.html").as_uri(), wait_until="load")
            home = page.evaluate("() => ({chapters: document.querySelectorAll('a[href^=\"notebooks/\"]').length, "
                                 "slides: document.querySelectorAll('a.course-slides-link').length})")
        finally:
            browser.close()
    assert not blocked, f"requests that would leave the machine: {sorted(set(blocked))[:10]}"
    assert not errors, errors[:5]
    assert hits > 0 and home["chapters"] >= len(NOTEBOOKS) and home["slides"] == len(NOTEBOOKS), (hits, home)
    for name, r in results.items():
        stored = _stored(out.with_name(out.name + "-src") / "notebooks" / name)
        assert r["typeset"] == r["math"] and r["mjx_errors"] == 0, (name, r)
        assert r["raw_dollars"] == 0 and r["raw_parens"] == 0, (name, "math left as source text", r)
        assert not r["broken_imgs"] and r["hidden_output_imgs"] == 0, (name, r)
        assert r["output_imgs"] >= stored["png"], (name, r, stored)
        assert r["anim"] == stored["anim"] and r["anim_shown"] == r["anim"], (name, r, stored)
        assert r["widgets"] == stored["widgets"] == r["widget_notes"], (name, r, stored)
        assert r["colab"] == r["binder"] == r["slides"] == 1, (name, r)
        assert r["prev_next"] >= 2 and r["toc"] >= len(NOTEBOOKS), (name, r)
    print("\n".join(f"{n}: {r['math']} formulas, {r['output_imgs']} images, {r['anim']} animations, {r['widgets']} widget pictures"
                    for n, r in results.items()))
