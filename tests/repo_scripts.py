"""Import the repository's scripts and benchmarks (not packages) by path, for tests."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from course_env import REPO_ROOT


def load_script(relative_path: str) -> ModuleType:
    """The module at ``REPO_ROOT / relative_path`` (e.g. ``"scripts/make_student.py"``),
    loaded once and registered in ``sys.modules`` under its file name."""
    path = REPO_ROOT / relative_path
    name = path.stem
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
