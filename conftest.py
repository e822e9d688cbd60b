"""Shared pytest set-up for unit and notebook tests: every notebook kernel nbval starts
gets the course's notebook environment (offline guard, 2 threads, quiet progress bars;
see ``tests/notebook_env.py``)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "tests"))

from notebook_env import apply_notebook_env  # noqa: E402

apply_notebook_env()
