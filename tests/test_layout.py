"""The package's layout: its import graph has no cycle, the pure-maths modules import nothing that holds networks, data
or weights, the module map in ``diffusion_course.__doc__`` lists exactly the modules on disk, every module opens with a
docstring naming the chapter that teaches it, and progress bars are plain text (never a Jupyter widget).

The graph is read from the source (``ast``), every ``import`` at any depth (a function-level import runs as soon as the
function is called, so it counts), except two kinds that never run when the package is imported or used as a library:
the body of ``if __name__ == "__main__":`` (a command-line entry point) and a module-level ``__getattr__`` (PEP 562),
which this package uses only to keep old names importable from their old module (see ``ALIAS_FORWARDERS``).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import diffusion_course

PKG = "diffusion_course"
PKG_DIR = Path(diffusion_course.__file__).parent

# The groups of the module map. PURE_MATHS may import only each other and the private helpers.
PURE_MATHS = {"schedules", "forward", "posterior", "losses", "samplers", "respacing", "interpolation", "oracles", "metrics",
              "counterexamples", "corruption", "simplified"}
HEAVY = {"models", "train", "data", "pretrained", "quality", "make_weights", "checkpoints", "classifier", "guidance", "evaluation",
         "colour", "diffusers_bridge", "widgets", "viz", "exercises"}
# Modules whose module-level __getattr__ forwards old names to a new home (and the module it forwards to).
ALIAS_FORWARDERS = {"metrics": "quality"}


def _modules_on_disk() -> list[str]:
    """Every module and subpackage under lib/diffusion_course, as dotted names relative to the package ("models.unet")."""
    names = []
    for path in sorted(PKG_DIR.rglob("*.py")):
        rel = path.relative_to(PKG_DIR).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if parts and "__pycache__" not in parts:
            names.append(".".join(parts))
    return names


def _source(name: str) -> Path:
    base = PKG_DIR.joinpath(*name.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _is_main_guard(node: ast.AST) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and isinstance(node.test.left, ast.Name)
            and node.test.left.id == "__name__")


def _imported(name: str, modules: set[str]) -> set[str]:
    """The package modules that module ``name`` imports (with the parent packages each import runs first)."""
    tree = ast.parse(_source(name).read_text())
    is_pkg = _source(name).name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]  # the package the module lives in, relative to PKG
    targets: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if _is_main_guard(child):
                continue
            if isinstance(child, ast.FunctionDef) and child.name == "__getattr__" and node is tree:
                continue
            if isinstance(child, ast.Import):
                for a in child.names:
                    if a.name == PKG or a.name.startswith(PKG + "."):
                        targets.add(a.name[len(PKG) + 1:])
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = here[: len(here) - (child.level - 1)] if child.level > 1 else here
                    mod = ".".join([*base, *(child.module.split(".") if child.module else [])])
                elif child.module and (child.module == PKG or child.module.startswith(PKG + ".")):
                    mod = child.module[len(PKG) + 1:]
                else:
                    continue
                targets.add(mod)
                for a in child.names:  # `from . import viz` imports the module viz
                    sub = f"{mod}.{a.name}" if mod else a.name
                    if sub in modules:
                        targets.add(sub)
            visit(child)

    visit(tree)
    own_parents = {".".join(name.split(".")[:k]) for k in range(1, len(name.split(".")))}  # already being imported
    out = set()
    for t in targets:
        parts = t.split(".")
        out.update(".".join(parts[:k]) for k in range(1, len(parts) + 1))  # importing a.b runs a/__init__ first
    return {t for t in out if t in modules and t != name and t not in own_parents}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = set(_modules_on_disk())
    return {m: _imported(m, modules) for m in sorted(modules)}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (c := dfs(n)):
                return c
        state[m] = 2
        stack.pop()
        return None

    for m in graph:
        if m not in state and (c := dfs(m)):
            return c
    return None


def _closure(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for n in graph[todo.pop()]:
            if n not in seen:
                seen.add(n)
                todo.append(n)
    return seen


def test_the_graph_reader_sees_imports() -> None:
    """The reader finds what is plainly there (so an empty graph cannot pass the tests below)."""
    modules = set(_modules_on_disk())
    assert {"schedules", "forward", "_validate"} <= _imported("posterior", modules) | {"forward"}
    assert "schedules" in _imported("forward", modules)
    assert {"models", "models.unet", "data", "pretrained"} <= _imported("make_weights", modules)
    assert "quality" not in _imported("metrics", modules)  # only through the alias forwarder, skipped on purpose
    assert "make_weights" not in _imported("pretrained", modules)  # only under `if __name__ == "__main__"`
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_is_acyclic(graph: dict[str, set[str]]) -> None:
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_pure_maths_imports_no_networks_data_or_weights(graph: dict[str, set[str]]) -> None:
    assert PURE_MATHS <= set(graph), PURE_MATHS - set(graph)
    bad = {}
    for m in sorted(PURE_MATHS):
        reached = _closure(graph, m)
        heavy = {r for r in reached if r.split(".")[0] in HEAVY}
        outside = {r for r in reached if r not in PURE_MATHS and not r.startswith("_")}
        if heavy or outside:
            bad[m] = sorted(heavy | outside)
    assert not bad, f"pure-maths modules reach: {bad}"


def test_alias_forwarders_only_forward() -> None:
    """The one skipped kind of import, module-level __getattr__, appears only where ALIAS_FORWARDERS says, and the old
    names it serves are the same objects as in their new home."""
    import importlib

    found = {}
    for m in _modules_on_disk():
        tree = ast.parse(_source(m).read_text())
        if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in tree.body):
            found[m] = True
    assert set(found) == set(ALIAS_FORWARDERS)
    for old, new in ALIAS_FORWARDERS.items():
        o, n = importlib.import_module(f"{PKG}.{old}"), importlib.import_module(f"{PKG}.{new}")
        for name in o._MOVED_TO_QUALITY:
            assert getattr(o, name) is getattr(n, name), name
        with pytest.raises(AttributeError, match="no attribute"):
            o.no_such_name  # noqa: B018


def _fresh(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300).stdout


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    """Each module imports (in a new process, in file order), and the pure-maths modules alone load nothing heavy."""
    names = [f"{PKG}.{m}" for m in _modules_on_disk()]
    out = _fresh(f"import importlib, json\nfor n in {names!r}:\n    importlib.import_module(n)\nprint(json.dumps(len({names!r})))")
    assert json.loads(out) == len(names)
    pure = [f"{PKG}.{m}" for m in sorted(PURE_MATHS)]
    loaded = json.loads(_fresh(f"import importlib, json, sys\nfor n in {pure!r}:\n    importlib.import_module(n)\n"
                               f"print(json.dumps(sorted(m for m in sys.modules if m.startswith('{PKG}.'))))"))
    heavy = [m for m in loaded if m.split(".")[1] in HEAVY]
    assert not heavy, f"importing the pure-maths modules loaded {heavy}"


# --- the module map --------------------------------------------------------------------------------------------------

_MAP_LINE = re.compile(r"^ {6}([a-z_][a-z_0-9.]*)\s+(\S+)\s+\S")


def _module_map() -> dict[str, str]:
    """{module: chapters} from the package docstring's lines "      name   chapters   what it holds"."""
    doc = diffusion_course.__doc__ or ""
    out = {}
    for line in doc.splitlines():
        if m := _MAP_LINE.match(line):
            assert m.group(1) not in out, f"{m.group(1)} listed twice"
            out[m.group(1)] = m.group(2)
    return out


def test_module_map_lists_exactly_the_modules_on_disk() -> None:
    listed, on_disk = set(_module_map()), set(_modules_on_disk())
    assert listed == on_disk, f"on disk but not in the map: {sorted(on_disk - listed)}; in the map but not on disk: {sorted(listed - on_disk)}"


def test_module_map_groups_pure_maths_as_the_tests_do() -> None:
    doc = diffusion_course.__doc__ or ""
    block = doc.split("    pure maths", 1)[1].split("\n    models and training", 1)[0]
    assert {m.group(1) for line in block.splitlines() if (m := _MAP_LINE.match(line))} == PURE_MATHS


def test_every_public_module_names_its_chapter() -> None:
    """Each public module opens with a docstring that names the chapter(s) that teach it (the private helpers serve
    the whole package and name none)."""
    missing = []
    for m in _modules_on_disk():
        if any(p.startswith("_") for p in m.split(".")):
            continue
        doc = ast.get_docstring(ast.parse(_source(m).read_text())) or ""
        if not re.search(r"\bchapters?\b|\bnotebooks?\b", doc, re.IGNORECASE):
            missing.append(m)
    assert not missing, f"module docstrings that name no chapter: {missing}"


def test_readme_layout_lists_the_same_modules() -> None:
    readme = (PKG_DIR.parents[1] / "README.md").read_text()
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    top = {m.split(".")[0] for m in _modules_on_disk()}
    missing = sorted(m for m in top if not re.search(rf"`{re.escape(m)}(/|`|\.py`)", section))
    assert not missing, f"README's Layout section does not name: {missing}"


# --- progress bars ---------------------------------------------------------------------------------------------------


def test_no_module_draws_widget_progress_bars() -> None:
    """tqdm is imported in one place, _progress, and never as tqdm.auto / tqdm.notebook / tqdm.autonotebook."""
    users = {}
    for m in _modules_on_disk():
        for node in ast.walk(ast.parse(_source(m).read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for mod in mods:
                if mod == "tqdm" or mod.startswith("tqdm."):
                    users.setdefault(m, set()).add(mod)
    assert users == {"_progress": {"tqdm.std"}}, users


def test_text_progress_bar_is_stored_as_stream_text(tmp_path: Path) -> None:
    """Run a bar in a real Jupyter kernel: the notebook stores it as stream text, with no widget model to lose."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from diffusion_course._progress import progress_bar\n"
                                          "for _ in progress_bar(range(5), desc='demo'):\n    pass")]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert outputs and all(o["output_type"] == "stream" for o in outputs), outputs
    text = "".join(o["text"] for o in outputs)
    assert "demo: 100%" in text and "5/5" in text
    assert "widget" not in json.dumps(outputs)
