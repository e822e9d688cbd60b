"""The shape of ``utils``: its modules import each other without a circle, no module
reaches into another's private names, and each public function says where the course
explains it."""

import ast
import importlib
from pathlib import Path

import pytest

UTILS = Path(__file__).resolve().parent.parent / "utils"
MODULES = sorted(path.stem for path in UTILS.glob("*.py") if path.stem != "__init__")


def _utils_imports(module: str, root: Path = UTILS) -> list[tuple[str, str | None]]:
    """(imported utils module, imported name or None) for every import in ``module``."""
    tree = ast.parse((root / f"{module}.py").read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module is None:            # from . import x
                found += [(alias.name, None) for alias in node.names]
            elif node.level == 1 or (node.module or "").startswith("utils"):
                target = node.module.removeprefix("utils").lstrip(".") if \
                    node.level == 0 else node.module
                if not target:                                      # from utils import x
                    found += [(alias.name, None) for alias in node.names]
                else:
                    found += [(target, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name.removeprefix("utils."), None) for alias in node.names
                      if alias.name.startswith("utils.")]
    return found


def _graph(root: Path = UTILS, modules: list[str] = MODULES) -> dict[str, set[str]]:
    return {module: {target for target, _ in _utils_imports(module, root)}
            for module in modules}


def _circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (depth-first search), or None."""
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return path[path.index(target):] + [target]
            if target not in state and (found := visit(target, path + [target])):
                return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module, [module])):
            return found
    return None


def test_every_import_names_a_utils_module():
    for module, targets in _graph().items():
        assert targets <= set(MODULES), (module, targets - set(MODULES))


def test_utils_imports_have_no_circle():
    circle = _circle(_graph())
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_no_private_name_is_imported_or_used_across_modules():
    offences = []
    for module in MODULES:
        offences += [f"{module} imports {target}.{name}"
                     for target, name in _utils_imports(module)
                     if name is not None and name.startswith("_")]
        imported_modules = {target for target, name in _utils_imports(module)
                            if name is None}
        tree = ast.parse((UTILS / f"{module}.py").read_text())
        offences += [f"{module} uses {node.value.id}.{node.attr}"
                     for node in ast.walk(tree)
                     if isinstance(node, ast.Attribute) and node.attr.startswith("_")
                     and not node.attr.startswith("__")
                     and isinstance(node.value, ast.Name)
                     and node.value.id in imported_modules]
    assert offences == []


def test_the_circle_check_finds_a_circle(tmp_path):
    # The walk itself must be able to fail: two modules that import each other.
    (tmp_path / "a.py").write_text("from .b import x\n")
    (tmp_path / "b.py").write_text("from . import a\nx = 1\n")
    assert _circle(_graph(tmp_path, ["a", "b"])) == ["a", "b", "a"]
    (tmp_path / "b.py").write_text("x = 1\n")
    assert _circle(_graph(tmp_path, ["a", "b"])) is None


def test_data_knows_nothing_of_models():
    assert "models" not in _graph()["data"] and "weights" not in _graph()["data"]


@pytest.mark.parametrize("module", MODULES)
def test_public_names_are_listed_and_documented(module):
    loaded = importlib.import_module(f"utils.{module}")
    assert hasattr(loaded, "__all__"), module
    for name in loaded.__all__:
        assert not name.startswith("_")
        value = getattr(loaded, name)
        if callable(value) and not isinstance(value, type(loaded)):
            assert value.__doc__, f"utils.{module}.{name} has no docstring"
