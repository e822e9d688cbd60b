"""The one environment every notebook kernel runs in, for tests and for re-execution.

``tests/conftest.py`` applies it before nbval starts kernels and
``scripts/execute_notebooks.py`` applies it before re-executing notebooks, so committed
outputs and checked outputs come from the same settings.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
GUARD_DIR = Path(__file__).resolve().parent / "offline_guard"

NOTEBOOK_ENV = {
    "COURSE_BLOCK_NETWORK": "1",  # see tests/offline_guard/sitecustomize.py
    "COURSE_NUM_THREADS": "2",  # the reference machine's cores (utils.repro)
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "TQDM_DISABLE": "1",  # progress bars show for readers, not in committed outputs
    "PYTHONHASHSEED": "0",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
}


def apply_notebook_env(environ: dict | None = None) -> dict:
    """Set the notebook environment in ``environ`` (default ``os.environ``)."""
    environ = os.environ if environ is None else environ
    environ.update(NOTEBOOK_ENV)
    paths = [str(GUARD_DIR), str(REPO_ROOT)]
    if environ.get("PYTHONPATH"):
        paths.append(environ["PYTHONPATH"])
    environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return environ
