"""The one environment every notebook kernel runs in, for tests and for re-execution.

Imported by ``scripts/`` (its own folder) and by the tests (``pythonpath`` in
``pyproject.toml``); it imports nothing from ``utils``.

The root ``conftest.py`` applies it (with ``testing=True``) before nbval starts
kernels, and ``scripts/execute_notebooks.py`` applies it (with ``testing=False``)
before re-executing notebooks, so committed outputs and checked outputs come from the
same settings, with one deliberate difference:

* ``make execute`` runs PyTorch with the machine's native CPU kernels (AVX2, AVX-512…);
* the test run adds ``TEST_ENV``: ``ATEN_CPU_CAPABILITY=default`` makes PyTorch use its
  non-vectorised kernels, i.e. behave like another CPU. One nbval run therefore proves
  both that a notebook reruns identically and that its printed numbers and pictures do
  not depend on the CPU's vector instructions.

Both set ``COURSE_PORTABLE_CPU=1``: the notebooks that train in float32 (chapter 5,
lab 3) call ``seed_everything(0, portable=repro.portable_requested())`` and so run in
the portable CPU mode of ``utils.repro`` (MKL_CBWR=COMPATIBLE, ATen's default kernels,
oneDNN and NNPACK off) in ``make execute`` and in the test run alike: their committed outputs
are bit-identical to what any Intel x86 CPU recomputes (AMD Zen: see checking.md), and
nbval compares all of them.
"""

from __future__ import annotations

import os
from pathlib import Path

# The repository's top folder: scripts, tests and benchmarks take it from here.
REPO_ROOT = Path(__file__).resolve().parent.parent
GUARD_DIR = REPO_ROOT / "tests" / "offline_guard"

NOTEBOOK_ENV = {
    "COURSE_BLOCK_NETWORK": "1",  # see tests/offline_guard/sitecustomize.py
    "COURSE_NUM_THREADS": "2",  # the reference machine's cores (utils.repro)
    "OMP_NUM_THREADS": "2",
    "MKL_NUM_THREADS": "2",
    "TQDM_DISABLE": "1",  # progress bars show for readers, not in committed outputs
    "PYTHONHASHSEED": "0",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
    "COURSE_PORTABLE_CPU": "1",  # training notebooks run in utils.repro's portable mode
    "MPLBACKEND": "module://matplotlib_inline.backend_inline",
}

# Added for the test run only (never for `make execute`): PyTorch's portable,
# non-vectorised CPU kernels, so that the comparison with the committed outputs (made
# with the native kernels) is also a comparison across CPUs.
TEST_ENV = {
    "ATEN_CPU_CAPABILITY": "default",
}
# Diagnosis only: `COURSE_TEST_NATIVE_CPU=1 python -m pytest chapters/x.ipynb` tests with
# the native kernels, to tell a rerun difference (fails both ways) from a CPU-kernel
# difference (fails only without the switch).
NATIVE_CPU_SWITCH = "COURSE_TEST_NATIVE_CPU"


def apply_notebook_env(environ: dict | None = None, *, testing: bool = False) -> dict:
    """Set the notebook environment in ``environ`` (default ``os.environ``).

    ``testing=True`` adds ``TEST_ENV`` (the test run, unless ``COURSE_TEST_NATIVE_CPU=1``);
    ``False`` is for re-execution.
    """
    environ = os.environ if environ is None else environ
    environ.update(NOTEBOOK_ENV)
    if testing and environ.get(NATIVE_CPU_SWITCH) != "1":
        environ.update(TEST_ENV)
    paths = [str(GUARD_DIR), str(REPO_ROOT)]
    if environ.get("PYTHONPATH"):
        paths.append(environ["PYTHONPATH"])
    environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
    return environ
