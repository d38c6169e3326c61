"""The README cannot drift from the project: every make target, module, weights command, file and notebook it names
exists, and every chapter on disk is in its table of notebooks (and nothing else is)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

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
