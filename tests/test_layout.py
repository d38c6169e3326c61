"""The package's layout: its modules sit in group folders, each group imports only from itself and the groups below
it, the imports form no cycle, the module map in ``diffusion_course.__doc__`` lists exactly the modules on disk, every
module opens with a docstring naming the chapter that teaches it, modules and functions stay small, and progress bars
are plain text (never a Jupyter widget).

The graph is read from the source (``ast``): every ``import`` at any depth, with no exemption. A function-level import
runs as soon as the function is called, the body of ``if __name__ == "__main__":`` when the module is run as a
command, and a module-level ``__getattr__`` on first use of a name, so each of them counts like a top-level import.
The root package's lazy table ``_EXPORTS`` (name -> group) counts as an import of each group it names.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import diffusion_course

PKG = "diffusion_course"
PKG_DIR = Path(diffusion_course.__file__).parent

# The groups from the bottom up: a module may import from its own group and from the groups before it, never from a
# group after it. The root package (the learners' façade) sits above them all and nothing imports it.
GROUPS = ("_internal", "maths", "data", "models", "training", "scoring", "weights", "teaching")
RANK = {g: i for i, g in enumerate(GROUPS)}

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
# Functions a chapter prints whole for teaching (inspect.getsource), allowed to be longer than MAX_FUNCTION_LINES.
PRINTED_WHOLE: dict[str, str] = {}


def _modules_on_disk() -> list[str]:
    """Every module and subpackage under lib/diffusion_course, as dotted names relative to the package ("maths.samplers")."""
    names = []
    for path in sorted(PKG_DIR.rglob("*.py")):
        rel = path.relative_to(PKG_DIR).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if parts and "__pycache__" not in parts:
            names.append(".".join(parts))
    return names


def _source(name: str, root: Path = PKG_DIR) -> Path:
    base = root.joinpath(*name.split(".")) if name else root
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def _exports_table(tree: ast.Module) -> dict[str, str]:
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0] if isinstance(node, ast.Assign) else None
        if isinstance(target, ast.Name) and target.id == "_EXPORTS":
            return ast.literal_eval(node.value)
    return {}


def _imported(name: str, modules: set[str], root: Path = PKG_DIR) -> set[str]:
    """The package modules that module ``name`` ("" for the root) imports anywhere in its source, with the parent
    packages each import runs first."""
    path = _source(name, root)
    tree = ast.parse(path.read_text())
    is_pkg = path.name == "__init__.py"
    parts = name.split(".") if name else []
    here = parts if is_pkg else parts[:-1]  # the package the module lives in, relative to PKG
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name == PKG or a.name.startswith(PKG + "."):
                    targets.add(a.name[len(PKG) + 1:])
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)] if node.level > 1 else here
                mod = ".".join([*base, *(node.module.split(".") if node.module else [])])
            elif node.module and (node.module == PKG or node.module.startswith(PKG + ".")):
                mod = node.module[len(PKG) + 1:]
            else:
                continue
            targets.add(mod)
            for a in node.names:  # `from . import viz` imports the module viz
                sub = f"{mod}.{a.name}" if mod else a.name
                if sub in modules:
                    targets.add(sub)
    targets.update(_exports_table(tree).values())
    own_parents = {".".join(parts[:k]) for k in range(0, len(parts))}  # already being imported (the root included)
    out = set()
    for t in targets:
        tp = t.split(".") if t else []
        out.update(".".join(tp[:k]) for k in range(0, len(tp) + 1))  # importing a.b runs the root and a/__init__ first
    return {t for t in out if (t in modules or t == "") and t != name and t not in own_parents}


def _graph(root: Path = PKG_DIR) -> dict[str, set[str]]:
    modules = set(_modules_on_disk()) if root == PKG_DIR else _modules_under(root)
    return {m: _imported(m, modules, root) for m in sorted(modules | {""})}


def _modules_under(root: Path) -> set[str]:
    names = set()
    for path in root.rglob("*.py"):
        rel = path.relative_to(root).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        if parts and "__pycache__" not in parts:
            names.add(".".join(parts))
    return names


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return _graph()


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


def _group(module: str) -> str:
    return module.split(".")[0]


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """Every import that points up the group order (or at the root façade)."""
    bad = []
    for m, targets in graph.items():
        if m == "":
            continue
        for t in sorted(targets):
            if t == "" or _group(t) not in RANK or _group(m) not in RANK or RANK[_group(t)] > RANK[_group(m)]:
                bad.append(f"{m} -> {t or PKG}")
    return bad


# --- the graph -------------------------------------------------------------------------------------------------------


def test_the_graph_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    """The reader finds what is plainly there, including imports inside functions, under `if __name__ == "__main__"`
    and inside a module-level __getattr__ (so an empty graph, or an exempted kind of import, cannot pass below)."""
    modules = set(_modules_on_disk())
    assert {"maths.schedules", "_internal.validate"} <= _imported("maths.posterior", modules)
    assert {"training.loop", "models.unet", "scoring.quality", "weights.shipped"} <= _imported("weights.make_mnist", modules)
    assert set(GROUPS) - {"_internal"} <= _imported("", modules)  # the root's lazy table names every public group
    pkg = tmp_path / "pkg"
    (pkg / "a").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("")
    for leaf in ("x", "y", "z"):
        (pkg / "a" / f"{leaf}.py").write_text("")
    (pkg / "a" / "m.py").write_text(
        "def f():\n    from .x import g\n\n"
        "def __getattr__(name):\n    from .y import h\n\n"
        "if __name__ == '__main__':\n    from .z import k\n")
    assert _imported("a.m", {"a", "a.m", "a.x", "a.y", "a.z"}, pkg) == {"a.x", "a.y", "a.z"}
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
    assert _upward({"maths.forward": {"training.loop"}, "training.loop": {"maths.forward"}}) == ["maths.forward -> training.loop"]


def test_every_module_sits_in_a_group_folder() -> None:
    loose = [m for m in _modules_on_disk() if _group(m) not in RANK]
    assert not loose, f"modules outside the group folders {GROUPS}: {loose}"
    assert {p.name for p in PKG_DIR.glob("*.py")} == {"__init__.py"}, "only the façade lives at the top"


def test_import_graph_is_acyclic(graph: dict[str, set[str]]) -> None:
    cycle = _find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(c or PKG for c in cycle or [])


def test_imports_point_only_down_the_groups(graph: dict[str, set[str]]) -> None:
    bad = _upward(graph)
    assert not bad, "imports that point up the group order " + " < ".join(GROUPS) + ":\n" + "\n".join(bad)


def test_training_reaches_no_scoring_or_weights(graph: dict[str, set[str]]) -> None:
    for m in (x for x in graph if _group(x) == "training"):
        reached = {_group(r) for r in _closure(graph, m) if r}
        assert not reached & {"scoring", "weights", "teaching"}, (m, sorted(reached))


def test_group_facades_import_only_their_own_modules(graph: dict[str, set[str]]) -> None:
    for g in GROUPS:
        outside = {t for t in graph[g] if t and _group(t) != g}
        assert not outside, f"{g}/__init__.py imports {sorted(outside)}: a group re-exports only its own modules"


def test_the_root_exports_exactly_the_groups_public_names() -> None:
    """Every name in a group's __all__ is importable from diffusion_course (and only those, from their group)."""
    want = {}
    for g in GROUPS[1:]:
        for name in importlib.import_module(f"{PKG}.{g}").__all__:
            assert name not in want, f"{name} is exported by both {want[name]} and {g}"
            want[name] = g
    assert diffusion_course._EXPORTS == want
    for name, g in want.items():
        assert getattr(diffusion_course, name) is getattr(importlib.import_module(f"{PKG}.{g}"), name), name
    with pytest.raises(AttributeError, match="no attribute"):
        diffusion_course.no_such_name  # noqa: B018


def test_each_name_has_one_home() -> None:
    """A public name is defined in one module; the others that mention it import it (no second definition, no alias)."""
    homes: dict[str, list[str]] = {}
    for m in _modules_on_disk():
        tree = ast.parse(_source(m).read_text())
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and not node.name.startswith("_") and node.name != "main":
                homes.setdefault(node.name, []).append(m)
    twice = {k: v for k, v in homes.items() if len(v) > 1}
    assert not twice, f"names defined in more than one module: {twice}"


def _fresh(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300).stdout


def test_every_module_imports_in_a_fresh_interpreter() -> None:
    names = [f"{PKG}.{m}" for m in _modules_on_disk()]
    out = _fresh(f"import importlib, json\nfor n in {names!r}:\n    importlib.import_module(n)\nprint(json.dumps(len({names!r})))")
    assert json.loads(out) == len(names)


@pytest.mark.parametrize("group, may_load", [
    ("maths", {"_internal", "maths"}),
    ("training", {"_internal", "maths", "data", "models", "training"}),
    ("", set()),
])
def test_importing_a_group_loads_nothing_above_it(group: str, may_load: set[str]) -> None:
    """Measured in a fresh interpreter: what `import diffusion_course.<group>` really loads (the root alone loads nothing)."""
    target = f"{PKG}.{group}" if group else PKG
    loaded = json.loads(_fresh(f"import json, sys\nimport {target}\n"
                               f"print(json.dumps(sorted(m for m in sys.modules if m.startswith('{PKG}.'))))"))
    above = [m for m in loaded if m.split(".")[1] not in may_load]
    assert not above, f"importing {target} loaded {above}"


# --- small pieces ----------------------------------------------------------------------------------------------------


def test_modules_and_functions_stay_small() -> None:
    long_modules, long_functions = [], []
    for m in _modules_on_disk():
        text = _source(m).read_text()
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_modules.append(f"{m}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES and f"{m}.{node.name}" not in PRINTED_WHOLE:
                    long_functions.append(f"{m}.{node.name}: {n} lines")
    assert not long_modules, f"modules over {MAX_MODULE_LINES} lines: {long_modules}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def test_no_private_name_is_imported_from_another_module() -> None:
    """`from .x import _name` across modules would tie a module to another's internals (the private helpers of
    _internal are modules with public names; the exercise engine's private names stay inside the exercises package)."""
    bad = []
    for m in _modules_on_disk():
        for node in ast.walk(ast.parse(_source(m).read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(PKG)):
                privates = [a.name for a in node.names if a.name.startswith("_")]
                if privates and not m.startswith("teaching.exercises"):
                    bad.append(f"{m}: from {'.' * node.level}{node.module or ''} import {', '.join(privates)}")
    assert not bad, bad


# --- the module map --------------------------------------------------------------------------------------------------

_MAP_LINE = re.compile(r"^ {4}( {2})?([a-z_][a-z_0-9.]*)\s+(\S+)\s+\S")


def _module_map() -> dict[str, str]:
    """{module: chapters} from the package docstring's lines "    group  chapters  ..." and "      module  chapters  ..."."""
    doc = diffusion_course.__doc__ or ""
    out = {}
    for line in doc.splitlines():
        if m := _MAP_LINE.match(line):
            assert m.group(2) not in out, f"{m.group(2)} listed twice"
            out[m.group(2)] = m.group(3)
    return out


def test_module_map_lists_exactly_the_modules_on_disk() -> None:
    listed, on_disk = set(_module_map()), set(_modules_on_disk())
    assert listed == on_disk, f"on disk but not in the map: {sorted(on_disk - listed)}; in the map but not on disk: {sorted(listed - on_disk)}"


def test_module_map_lists_the_groups_in_their_order() -> None:
    groups = [m for m in _module_map() if "." not in m]
    assert tuple(groups) == GROUPS


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


def test_readme_layout_names_every_group_and_module() -> None:
    readme = (PKG_DIR.parents[1] / "README.md").read_text()
    section = readme.split("## Layout", 1)[1].split("\n## ", 1)[0]
    # every group's modules and subpackages by name (the modules inside a subpackage, such as the exercises, are the
    # subpackage's own business)
    named = [m for m in _modules_on_disk() if m.count(".") == 1 and not m.split(".")[-1].startswith("_")]
    missing = sorted(m for m in named if not re.search(rf"`{re.escape(m.split('.')[-1])}(/|`|\.py`)", section))
    groups = [g for g in GROUPS if not re.search(rf"`{re.escape(g)}/`", section)]
    assert not groups, f"README's Layout section does not name the group folders {groups}"
    assert not missing, f"README's Layout section does not name: {missing}"


# --- progress bars ---------------------------------------------------------------------------------------------------


def test_no_module_draws_widget_progress_bars() -> None:
    """tqdm is imported in one place, _internal.progress, and never as tqdm.auto / tqdm.notebook / tqdm.autonotebook."""
    users = {}
    for m in _modules_on_disk():
        for node in ast.walk(ast.parse(_source(m).read_text())):
            mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for mod in mods:
                if mod == "tqdm" or mod.startswith("tqdm."):
                    users.setdefault(m, set()).add(mod)
    assert users == {"_internal.progress": {"tqdm.std"}}, users


def test_text_progress_bar_is_stored_as_stream_text(tmp_path: Path) -> None:
    """Run a bar in a real Jupyter kernel: the notebook stores it as stream text, with no widget model to lose."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("from diffusion_course._internal.progress import progress_bar\n"
                                          "for _ in progress_bar(range(5), desc='demo'):\n    pass")]
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    assert outputs and all(o["output_type"] == "stream" for o in outputs), outputs
    text = "".join(o["text"] for o in outputs)
    assert "demo: 100%" in text and "5/5" in text
    assert "widget" not in json.dumps(outputs)
