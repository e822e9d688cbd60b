"""Shared pytest set-up for unit and notebook tests.

* Every notebook kernel nbval starts gets the course's notebook environment (offline
  guard, 2 threads, quiet progress bars, and for the test run PyTorch's non-vectorised
  CPU kernels; see ``tests/notebook_env.py``).
* ``tests/nbval_images.py`` extends nbval so that pictures and HTML animations are
  compared too (RMS tolerance, see ``nbval_image_tolerance`` in ``pyproject.toml``).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))

from notebook_env import apply_notebook_env  # noqa: E402

apply_notebook_env(testing=True)

pytest_plugins = ["nbval_images"]
