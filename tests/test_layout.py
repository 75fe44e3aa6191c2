"""The package's shape: imports run one way, no function-level imports of project modules, matplotlib in one
module, short functions, a training step a reader can hold in their head, and a map that is true."""
import ast
import inspect
import re
from pathlib import Path

import mtl_utils
from mtl_utils.training import Trainer

PACKAGE = Path(mtl_utils.__file__).parent
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def _tree(name: str) -> ast.Module:
    return ast.parse((PACKAGE / f"{name}.py").read_text())


def _project_imports(node: ast.AST) -> set[str]:
    found = set()
    if isinstance(node, ast.ImportFrom) and node.level == 1:
        if node.module:
            found.add(node.module.split(".")[0])
        else:
            found.update(alias.name for alias in node.names)
    elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mtl_utils"):
        rest = node.module.split(".")[1:]
        found.update(rest[:1] or [alias.name for alias in node.names])
    elif isinstance(node, ast.Import):
        found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("mtl_utils."))
    return found & set(MODULES)


def _graph() -> dict[str, set[str]]:
    return {name: set().union(*[_project_imports(n) for n in _tree(name).body]) for name in MODULES}


def test_imports_form_no_cycle():
    graph, state, order = _graph(), {}, []

    def visit(name, path):
        if state.get(name) == "open":
            raise AssertionError("import cycle: " + " -> ".join(path + [name]))
        if state.get(name) == "done":
            return
        state[name] = "open"
        for dep in sorted(graph[name]):
            visit(dep, path + [name])
        state[name] = "done"
        order.append(name)

    for name in MODULES:
        visit(name, [])
    assert len(order) == len(MODULES)


def test_no_function_level_import_of_a_project_module():
    for name in MODULES:
        for node in ast.walk(_tree(name)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    assert not _project_imports(inner), f"{name}.{node.name} imports a project module inside a function"


def test_only_the_figures_module_imports_matplotlib():
    for name in MODULES:
        for node in ast.walk(_tree(name)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n.startswith("matplotlib") for n in names):
                assert name == "plots", f"{name} imports matplotlib; figures belong in mtl_utils.plots"


def test_functions_are_short():
    for name in MODULES:
        for node in ast.walk(_tree(name)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                assert length <= 80, f"{name}.{node.name} is {length} lines long"


def test_the_training_step_is_short():
    assert len(inspect.getsource(Trainer.train_step).splitlines()) <= 30


def test_the_package_map_lists_every_module_and_only_those():
    listed = set(re.findall(r":mod:`~mtl_utils\.(\w+)`", mtl_utils.__doc__))
    assert listed == set(MODULES), (sorted(set(MODULES) - listed), sorted(listed - set(MODULES)))
