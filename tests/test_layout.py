"""The packages' shape: the teaching package small and apart from the series' machinery (it never imports
it), layers whose imports run one way, no function-level imports of project modules, matplotlib in one module,
short functions and classes, a training step a reader can hold in their head, maps that are true."""
import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import mtl_utils
import series
from mtl_utils.training.trainer import Trainer

PACKAGE = Path(mtl_utils.__file__).parent
SERIES = Path(series.__file__).parent
# The layers, lowest first: a module may import from its own layer and the ones before it, never after.
LAYERS = ("core", "data", "modeling", "evaluation", "training", "serving")
FILES = sorted(p for p in PACKAGE.rglob("*.py"))
MODULES = {".".join(p.relative_to(PACKAGE).with_suffix("").parts).removesuffix(".__init__").removesuffix("__init__"):
           p for p in FILES}
SERIES_MODULES = {"series." + ".".join(p.relative_to(SERIES).with_suffix("").parts): p
                  for p in sorted(SERIES.rglob("*.py"))}
# The teaching package's size, docstrings included: a ceiling that stops machinery creeping back in. Issue 37
# aimed at about 4,500; the split left 5,540 (every module a notebook teaches, and the refusals of issue 38); issue
# 42 added static embeddings, quantized search and its command line (~330 lines) and shorter docstrings paid for them;
# issue 40 added the cross-encoder (~200 lines, its refusals included), and shorter docstrings paid for all but 20;
# then training over two pair sets (pair_sets, 67 lines).
TEACHING_LINES = 5690


def _tree(name: str) -> ast.Module:
    return ast.parse(MODULES[name].read_text())


def _package_of(name: str) -> str:
    return name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]


def _project_imports(name: str, node: ast.AST) -> set[str]:
    """Modules of the package that ``node`` imports from module ``name`` (dotted below ``mtl_utils``)."""
    if isinstance(node, ast.ImportFrom) and node.level:
        parts = _package_of(name).split(".") if _package_of(name) else []
        base = parts[:len(parts) - (node.level - 1)] if node.level > 1 else parts
        base_name = ".".join(base + (node.module.split(".") if node.module else []))
        if node.module:
            return {base_name}
        return {f"{base_name}.{a.name}".strip(".") for a in node.names}
    if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "mtl_utils":
        base = node.module.removeprefix("mtl_utils").strip(".")
        inner = {f"{base}.{a.name}".strip(".") for a in node.names}  # from mtl_utils.training import optim
        return (inner & set(MODULES)) | ({base} if inner - set(MODULES) else set())
    if isinstance(node, ast.Import):
        return {a.name.removeprefix("mtl_utils.") for a in node.names if a.name.startswith("mtl_utils.")}
    return set()


def _graph() -> dict[str, set[str]]:
    return {name: set().union(*[_project_imports(name, n) for n in _tree(name).body]) - {""} for name in MODULES}


def _layer(name: str) -> int:
    return LAYERS.index(name.split(".")[0])


def test_every_module_sits_in_a_layer():
    flat = [name for name in MODULES if name and "." not in name and name not in LAYERS]
    assert not flat, f"modules outside the layers: {flat}; put each in one of {LAYERS}"


def test_imports_run_one_way_through_the_layers():
    back = [f"{name} ({name.split('.')[0]}) imports {dep} ({dep.split('.')[0]})"
            for name, deps in _graph().items() if name
            for dep in deps if _layer(dep) > _layer(name)]
    assert not back, "imports against the layers' order " + " → ".join(LAYERS) + ":\n" + "\n".join(back)


def test_the_layout_test_sees_a_back_edge():
    """The checker itself: a layer-3 module importing from layer 5 is caught, however the import is written."""
    for code in ("from ..training.trainer import train", "from mtl_utils.training.trainer import train",
                 "from mtl_utils.training import trainer"):
        (dep,) = _project_imports("modeling.encoder", ast.parse(code).body[0])
        assert dep == "training.trainer" and _layer(dep) > _layer("modeling.encoder"), code


def test_imports_form_no_cycle():
    graph, state, order = _graph(), {}, []

    def visit(name, path):
        if state.get(name) == "open":
            raise AssertionError("import cycle: " + " -> ".join(path + [name]))
        if state.get(name) == "done":
            return
        state[name] = "open"
        for dep in sorted(graph.get(name, ())):
            if dep in graph:
                visit(dep, path + [name])
        state[name] = "done"
        order.append(name)

    for name in graph:
        visit(name, [])


def test_the_series_machinery_is_not_in_the_teaching_package():
    for name in ("readme", "book", "run_notebooks"):
        assert not any(n.split(".")[-1] == name for n in MODULES), f"{name} belongs in tools/"
        assert (PACKAGE.parent / "tools" / f"{name}.py").is_file()


def _imports_series(node: ast.AST) -> bool:
    if isinstance(node, ast.Import):
        return any(a.name.split(".")[0] == "series" for a in node.names)
    return isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "series"


def test_the_teaching_package_never_imports_the_series():
    found = [f"{name or 'mtl_utils'} line {node.lineno}" for name, path in MODULES.items()
             for node in ast.walk(ast.parse(path.read_text())) if _imports_series(node)]
    assert not found, f"mtl_utils imports the series' machinery: {found}"


def test_the_check_sees_an_import_of_the_series():
    assert all(_imports_series(ast.parse(code).body[0]) for code in
               ("from series import store", "import series.runs", "from series.runs import run_key"))
    assert not _imports_series(ast.parse("from mtl_utils import series_of").body[0])


def test_importing_the_teaching_package_loads_neither_the_series_nor_matplotlib():
    code = "import sys, mtl_utils; print(sorted({m.split('.')[0] for m in sys.modules} & {'series', 'matplotlib'}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_the_teaching_package_is_small():
    lines = sum(len(p.read_text().splitlines()) for p in FILES)
    assert lines <= TEACHING_LINES, f"mtl_utils has {lines} lines (at most {TEACHING_LINES}): machinery belongs in series"


ALL_MODULES = {**{f"mtl_utils.{n}".strip("."): p for n, p in MODULES.items()}, **SERIES_MODULES}


def test_no_function_level_import_of_a_project_module():
    for name, path in ALL_MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if isinstance(inner, (ast.Import, ast.ImportFrom)):
                        module = inner.module if isinstance(inner, ast.ImportFrom) else inner.names[0].name
                        assert not (getattr(inner, "level", 0) or (module or "").split(".")[0] in ("mtl_utils", "series")), \
                            f"{name}.{node.name} imports a project module inside a function"


def test_only_the_figures_module_imports_matplotlib():
    for name, path in ALL_MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.startswith("matplotlib") for n in names):
                assert name == "series.plots", f"{name} imports matplotlib; figures belong in series.plots"


def test_functions_and_classes_are_short():
    for name, path in ALL_MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            length = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                assert length <= 60, f"{name}.{node.name} is {length} lines long (at most 60)"
            if isinstance(node, ast.ClassDef):
                assert length <= 150, f"class {name}.{node.name} is {length} lines long (at most 150)"


def test_the_training_step_is_short():
    assert len(inspect.getsource(Trainer.train_step).splitlines()) <= 30


def test_each_package_map_lists_its_modules_and_only_those():
    for package in LAYERS:
        modules = {n.split(".")[1] for n in MODULES if n.startswith(package + ".") and n.count(".") == 1}
        listed = set(re.findall(rf":mod:`~mtl_utils\.{package}\.(\w+)`", MODULES[package].read_text()))
        assert listed == modules, (package, sorted(modules - listed), sorted(listed - modules))


def test_the_top_map_lists_every_layer():
    listed = re.findall(r"^\d\. :mod:`mtl_utils\.(\w+)`", mtl_utils.__doc__, flags=re.M)
    assert listed == list(LAYERS)


def test_the_series_map_lists_its_modules_and_only_those():
    modules = {n.split(".")[1] for n in SERIES_MODULES if n != "series.__init__"}
    listed = set(re.findall(r":mod:`~series\.(\w+)`", series.__doc__))
    assert listed == modules, (sorted(modules - listed), sorted(listed - modules))
