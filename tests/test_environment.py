"""The install files agree: pyproject.toml's dependencies + the ``test`` extra are exactly environment.yml's pip
list, and CI (.ci/run) runs the README's test command, whose Makefile target runs nbval under the smoke profile."""

from __future__ import annotations

import os
import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the test extra installs tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _normalise(req: str) -> str:
    """'Scikit-Learn >= 1.4' -> 'scikit-learn>=1.4' (PEP 503 name, no spaces)."""
    req = req.split("#", 1)[0].strip().replace(" ", "")
    m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)(.*)", req)
    assert m, req
    return re.sub(r"[-_.]+", "-", m.group(1)).lower() + m.group(2)


def _pyproject_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [_normalise(r) for r in project["dependencies"] + extras["test"] + extras.get("site", [])]


def _environment_pip_list(text: str) -> list[str]:
    """The entries under ``- pip:`` in environment.yml, parsed by hand (checked against PyYAML below)."""
    entries: list[str] = []
    pip_indent: int | None = None
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].rstrip()
        if not stripped.strip():
            continue
        indent = len(stripped) - len(stripped.lstrip())
        if pip_indent is None:
            if stripped.strip() == "- pip:":
                pip_indent = indent
            continue
        if indent <= pip_indent:
            break  # left the pip block
        item = stripped.strip()
        assert item.startswith("- "), f"unexpected line in the pip list: {line!r}"
        entries.append(item[2:].strip())
    return entries


def _environment_requirements() -> list[str]:
    entries = _environment_pip_list((ROOT / "environment.yml").read_text())
    assert "-e ." in entries, "environment.yml should install the course package itself (-e .)"
    assert "-c constraints.txt" in entries, "environment.yml should install the tested versions (-c constraints.txt)"
    return [_normalise(e) for e in entries if e not in ("-e .", "-c constraints.txt")]


def test_hand_parser_agrees_with_yaml() -> None:
    import yaml  # pyyaml: in the test extra
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_blocks = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_blocks) == 1
    assert _environment_pip_list((ROOT / "environment.yml").read_text()) == pip_blocks[0]


def test_pyproject_and_environment_yml_list_the_same_requirements() -> None:
    py, env = _pyproject_requirements(), _environment_requirements()
    assert len(py) == len(set(py)), "duplicate requirement in pyproject.toml"
    assert len(env) == len(set(env)), "duplicate requirement in environment.yml"
    assert set(py) == set(env), f"only in pyproject: {sorted(set(py) - set(env))}; only in environment.yml: {sorted(set(env) - set(py))}"


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version and re.fullmatch(r"[0-9][0-9A-Za-z.+!-]*", version), f"constraints.txt pins exact versions only: {line!r}"
            pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


def test_constraints_pin_every_requirement_inside_its_range() -> None:
    """constraints.txt (what make installs) pins each requirement of pyproject.toml at one version inside the range
    pyproject.toml allows, and torch and torchvision are a matching pair (torchvision 0.(m + 15) ships with torch 2.m)."""
    from packaging.requirements import Requirement

    pins = _constraints()
    for req in map(Requirement, _pyproject_requirements()):
        if req.marker is not None and not req.marker.evaluate():
            continue  # e.g. tomli on Python < 3.11
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"constraints.txt has no pin for {req.name}"
        assert req.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} lies outside pyproject's {req}"
    torch_minor = int(pins["torch"].split(".")[1])
    assert pins["torchvision"].split(".")[:2] == ["0", str(torch_minor + 15)], (pins["torch"], pins["torchvision"])


def test_make_installs_the_tested_set() -> None:
    """make install (and so make test and CI) installs with -c constraints.txt, and reinstalls when it changes."""
    text = (ROOT / "Makefile").read_text()
    install = [ln for ln in text.splitlines() if "pip install" in ln and "-e '.[test]'" in ln]
    assert install and all("-c constraints.txt" in ln for ln in install), install
    assert re.search(r"^\$\(STAMP\): .*constraints\.txt", text, re.M), "the install stamp must depend on constraints.txt"


def test_the_installed_versions_are_the_tested_set() -> None:
    """Where this test runs from the project's own install (make test), every pinned package that is installed has
    its pinned version: the run tests what constraints.txt promises."""
    from importlib.metadata import PackageNotFoundError, version

    pins = _constraints()
    wrong = {}
    for name in ("torch", "torchvision", "numpy", "diffusers", "mlxtend", "scipy", "scikit-learn", "matplotlib", "safetensors"):
        try:
            have = version(name)
        except PackageNotFoundError:
            continue
        if have != pins[name]:
            wrong[name] = (have, pins[name])
    assert not wrong, f"installed vs constraints.txt: {wrong} (run make install, or make constraints after a tested upgrade)"


def test_test_extra_has_the_test_tools() -> None:
    names = {re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0] for r in _pyproject_requirements()}
    assert {"pytest", "nbval", "diffusers", "torch"} <= names


def _makefile_targets(text: str) -> dict[str, tuple[list[str], list[str]]]:
    """target -> (prerequisites, recipe lines); enough of make's syntax for this Makefile."""
    targets: dict[str, tuple[list[str], list[str]]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("\t"):
            if current is not None:
                targets[current][1].append(line.strip())
            continue
        current = None
        m = re.match(r"^([A-Za-z0-9_.$()/-]+)\s*:(?!=)\s*(.*)$", line)
        if m and not line.startswith("#"):
            current = m.group(1)
            targets[current] = (m.group(2).split(), [])
    return targets


def _recipe_closure(targets: dict[str, tuple[list[str], list[str]]], name: str) -> list[str]:
    """Recipe lines of ``name`` and of every prerequisite it pulls in."""
    seen: set[str] = set()
    lines: list[str] = []

    def visit(t: str) -> None:
        if t in seen or t not in targets:
            return
        seen.add(t)
        prereqs, recipe = targets[t]
        for p in prereqs:
            visit(p)
        lines.extend(recipe)

    visit(name)
    return lines


def test_ci_runs_make_test() -> None:
    ci = ROOT / ".ci" / "run"
    assert os.access(ci, os.X_OK), ".ci/run must be executable"
    commands = [line.strip() for line in ci.read_text().splitlines() if line.strip() and not line.strip().startswith("#")]
    assert "make test" in commands


def test_make_test_runs_unit_tests_and_nbval_under_smoke() -> None:
    targets = _makefile_targets((ROOT / "Makefile").read_text())
    assert "test" in targets
    recipe = _recipe_closure(targets, "test")
    nbval = [line for line in recipe if "--nbval" in line]
    assert nbval, f"make test runs no nbval command: {recipe}"
    assert all("COURSE_PROFILE=smoke" in line or "COURSE_SIZES=smoke" in line for line in nbval), "every nbval pass runs at the smoke sizes"
    assert any("notebooks" in line for line in nbval)
    assert any(re.search(r"pytest.*\btests\b", line) for line in recipe), "make test should also run the unit tests"
