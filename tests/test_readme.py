"""The README cannot drift from the project: every make target, module, weights command, file and notebook it names
exists, every chapter on disk is in its table of notebooks (and nothing else is), and its run-time column is the
benchmark's JSON, timed on the chapters' current code."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
CODE = re.findall(r"`([^`\n]+)`", README) + [ln for block in re.findall(r"```[a-z]*\n(.*?)```", README, re.S) for ln in block.splitlines()]


def _make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (ROOT / "Makefile").read_text(), re.M))


def test_every_make_target_the_readme_names_exists() -> None:
    named = {m for text in CODE for m in re.findall(r"(?:^|\s)make ([a-z][a-z-]*)", text)}
    assert named, "the README names no make target?"
    assert not named - _make_targets(), f"README names make targets the Makefile lacks: {sorted(named - _make_targets())}"


def test_every_module_and_weights_command_the_readme_names_exists() -> None:
    modules = {m for text in CODE for m in re.findall(r"python -m ([a-z_][a-z_.]*)", text)}
    assert "diffusion_course.weights.make" in modules
    missing = sorted(m for m in modules if importlib.util.find_spec(m) is None)
    assert not missing, f"README names modules that do not exist: {missing}"
    from diffusion_course.weights.make import main

    commands = {c for text in CODE for c in re.findall(r"diffusion_course\.weights\.make ([a-z][a-z-]+)", text)}
    for cmd in commands:  # argparse exits with 0 on --help for a known command, 2 for an unknown one
        try:
            main([cmd, "--help"])
        except SystemExit as e:
            assert e.code == 0, f"README names the weights command {cmd!r}, which does not exist"


def test_every_file_the_readme_names_exists() -> None:
    paths = set()
    for text in CODE:
        for token in text.split():
            token = token.strip("(),;:'\"")
            if token.startswith(("build/", "file://", "http", "<", "$", "-")) or "*" in token or "NN" in token:
                continue  # made by a command, or a pattern
            if re.fullmatch(r"[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]*)+|[A-Za-z0-9_\-]+\.(md|py|ipynb|json|toml|yml|txt|safetensors)", token):
                paths.add(token)
    linked = set(re.findall(r"\]\(((?!http)[^)#\s]+)\)", README))
    pkg = ROOT / "lib" / "diffusion_course"
    roots = [ROOT, ROOT / "tools", pkg, *(d for d in pkg.iterdir() if d.is_dir())]
    made = {"assets/"}  # build/slides/assets/, written by make slides
    missing = sorted(p for p in paths | linked if p not in made and not any((r / p).exists() for r in roots))
    assert not missing, f"README names files that do not exist: {missing}"


def test_the_notebook_table_lists_exactly_the_chapters() -> None:
    on_disk = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    rows = re.findall(r"^\| (\d\d) \| \[[^\]]+\]\(notebooks/([^)]+\.ipynb)\)", README, re.M)
    assert [f for _, f in rows] == on_disk, (rows, on_disk)
    assert all(f.startswith(n + "_") for n, f in rows)


# --- the run-time column comes from the benchmark's JSON (tools/readme_runtimes.py) ---------------------------------


def _runtimes():
    spec = importlib.util.spec_from_file_location("readme_runtimes", ROOT / "tools" / "readme_runtimes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_run_time_column_is_the_benchmark_json() -> None:
    rt = _runtimes()
    data = rt.load()
    rows = rt.rows_by_name(data)
    shown = rt.readme_cells(README)
    assert shown, "no chapter rows found in the README"  # that they are exactly the chapters on disk: the test above
    wrong = {nb: (text, rt.cell(rows.get(nb))) for nb, text in shown.items() if text != rt.cell(rows.get(nb))}
    assert not wrong, f"README run times (shown, in the JSON) differ: {wrong}; run python tools/readme_runtimes.py"
    assert rt.rewrite(README, data) == README, "the 'Run times:' paragraph differs from the JSON: run python tools/readme_runtimes.py"


def test_the_run_time_json_times_the_chapters_as_they_are() -> None:
    """Every chapter on disk has a row, and a measured row was timed on the code cells the chapter has now (a chapter
    re-executed or tidied since keeps its hash; one whose code changed does not). A chapter that was not timed says so
    in its row ("not_measured": why), and the README shows "not measured" for it: never a silent gap."""
    rt = _runtimes()
    data = rt.load()
    assert data["profile"] == "cpu"
    issues = rt.problems(data)
    assert not issues, "\n".join(issues)
    for row in data["notebooks"]:
        assert row.get("not_measured") or (row["seconds"] > 0 and row["ok"] is not None and len(row["code_sha256"]) == 64), row
        if row.get("not_measured"):
            assert row.get("seconds") is None and rt.cell(row) == rt.NOT_MEASURED, row


def test_the_code_hash_sees_code_only(tmp_path: Path) -> None:
    rt = _runtimes()
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# title"]},
             {"cell_type": "code", "metadata": {}, "execution_count": 1, "outputs": [{"output_type": "stream", "name": "stdout", "text": ["1\n"]}],
              "source": ["x = 1\n", "print(x)"]}]
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "nb.ipynb"

    def digest(change=lambda n: None) -> str:
        copy = json.loads(json.dumps(nb))
        change(copy)
        path.write_text(json.dumps(copy))
        return rt.code_sha256(path)

    base = digest()
    assert len(base) == 64
    assert digest(lambda n: n["cells"][1].update(outputs=[], execution_count=7)) == base  # re-executed
    assert digest(lambda n: n["metadata"].update(kernelspec={"name": "python3"})) == base  # tidied
    assert digest(lambda n: n["cells"][0].update(source=["# another title"])) == base  # prose edited
    assert digest(lambda n: n["cells"][1].update(source=["x = 2\n", "print(x)"])) != base  # code edited
    assert digest(lambda n: n["cells"].append({"cell_type": "code", "metadata": {}, "outputs": [], "source": []})) != base


def test_rewrite_writes_each_row_from_its_json_row() -> None:
    rt = _runtimes()
    readme = ("| # | notebook | teaches | `cpu` run time |\n| --- | --- | --- | --- |\n"
              "| 00 | [start](notebooks/00_a.ipynb) | a, b | 3 s |\n| 01 | [next](notebooks/01_b.ipynb) | c | 9 s |\n"
              "| 02 | [new](notebooks/02_c.ipynb) | d | 1 s |\n| 03 | [late](notebooks/03_d.ipynb) | e | 1 s |\n\n"
              "Run times: old text\nsecond line.\n\n## Next\n")
    data = {"profile": "cpu", "environment": {"device": "CPU (x86_64, 1 threads)", "torch": "2.x"}, "note": "Shared machine.",
            "notebooks": [{"notebook": "00_a.ipynb", "seconds": 8.8, "ok": True, "load_average": 2.0},
                          {"notebook": "01_b.ipynb", "seconds": 1234.5, "ok": False, "load_average": 5.5},
                          {"notebook": "02_c.ipynb", "seconds": None, "ok": None, "not_measured": "added after the run"}]}
    out = rt.rewrite(readme, data)
    assert rt.readme_cells(out) == {"00_a.ipynb": "9 s", "01_b.ipynb": "failed after 1,234 s", "02_c.ipynb": rt.NOT_MEASURED,
                                    "03_d.ipynb": rt.NOT_MEASURED}
    assert "| a, b | 9 s |" in out and "## Next" in out and "old text" not in out
    block = re.search(r"^Run times: .*?(?=\n\n)", out, re.S | re.M).group(0)
    assert all(len(ln) <= rt.WIDTH and ln.count("`") % 2 == 0 for ln in block.splitlines()), block  # wrapped, code spans whole
    para = " ".join(block.split())
    assert "2 chapters, 21 min in all" in para and "load average 2.0–5.5" in para and "Shared machine." in para
    assert "Not measured: 02 (added after the run)." in para
    assert rt.rewrite(out, data) == out  # idempotent


def test_a_stale_or_missing_row_names_the_command_to_rerun() -> None:
    rt = _runtimes()
    first = rt.notebooks()[0].name
    data = rt.load()
    changed = {**data, "notebooks": [{**r, "code_sha256": "0" * 64} if r["notebook"] == first else r for r in data["notebooks"]]}
    assert any(first in p and f"course_runtime.py --profile cpu {first[:2]}" in p for p in rt.problems(changed)), rt.problems(changed)
    dropped = {**data, "notebooks": [r for r in data["notebooks"] if r["notebook"] != first]}
    assert any(first in p and "--not-measured" in p for p in rt.problems(dropped)), rt.problems(dropped)
    marked = rt.mark_not_measured(dropped, [first[:2]], "being written")
    assert rt.rows_by_name(marked)[first]["not_measured"] == "being written"
    assert not any(first in p for p in rt.problems(marked))
    with pytest.raises(ValueError, match="reason"):
        rt.mark_not_measured(dropped, [first[:2]], " ")
